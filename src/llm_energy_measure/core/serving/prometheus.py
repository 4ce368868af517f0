"""Prometheus metrics: a bounded parser of the text exposition format, a bounded scrape, and
the cross-check of a vLLM server's own counters against what the client measured.

The parser reads the text format (version 0.0.4) and the OpenMetrics text that servers
commonly send instead: ``# HELP`` / ``# TYPE`` / ``# EOF`` and other comments are skipped,
label values are unescaped (``\\\\``, ``\\"``, ``\\n``), values may be ``NaN``, ``+Inf`` or
``-Inf``, timestamps and exemplars are ignored. Quoted (UTF-8) metric and label names are
accepted. A malformed line is an error naming its number, not skipped: a figure read from a
half-understood page would be wrong without a sign.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from llm_energy_measure.exceptions import LLMBenchError

#: Largest metrics page read (bytes) and most lines parsed: a page past either is refused.
MAX_BYTES = 10 * 1024 * 1024
MAX_LINES = 200_000

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class MetricsError(LLMBenchError):
    """A metrics page could not be read or parsed; the message names the URL or line."""


class MetricsFetchError(MetricsError):
    """The metrics URL did not answer 200 (connection refused, timeout, HTTP error): may
    succeed when retried."""


@dataclass(frozen=True)
class Sample:
    """One sample of a metrics page: the series ``name{labels}`` and its ``value`` (a
    counter's ``_total`` suffix is part of the name, as on the page)."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    value: float = 0.0


# --------------------------------------------------------------------------- parsing


def _quoted(line: str, start: int, lineno: int) -> tuple[str, int]:
    """The unescaped string whose opening quote is at ``line[start]``; index after it."""
    out: list[str] = []
    i = start + 1
    while i < len(line):
        char = line[i]
        if char == "\\":
            if i + 1 >= len(line):
                break
            nxt = line[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise MetricsError(f"metrics line {lineno}: unterminated quoted string")


def _name(line: str, start: int) -> tuple[str, int]:
    """A bare metric or label name starting at ``start`` (may be empty); index after it."""
    i = start
    while i < len(line) and (line[i].isalnum() or line[i] in "_:"):
        i += 1
    return line[start:i], i


def _skip_spaces(line: str, i: int) -> int:
    while i < len(line) and line[i] in " \t":
        i += 1
    return i


def _labels(line: str, start: int, lineno: int) -> tuple[str | None, dict[str, str], int]:
    """The ``{...}`` block at ``line[start]``: a quoted metric name inside it (or None), the
    labels, and the index after the closing brace."""
    labels: dict[str, str] = {}
    quoted_name: str | None = None
    i = start + 1
    while True:
        i = _skip_spaces(line, i)
        if i >= len(line):
            raise MetricsError(f"metrics line {lineno}: '{{' without '}}'")
        if line[i] == "}":
            return quoted_name, labels, i + 1
        if line[i] == '"':
            key, i = _quoted(line, i, lineno)
        else:
            key, i = _name(line, i)
            if not key:
                raise MetricsError(f"metrics line {lineno}: bad label name at column {i + 1}")
        i = _skip_spaces(line, i)
        if i < len(line) and line[i] == "=":
            i = _skip_spaces(line, i + 1)
            if i >= len(line) or line[i] != '"':
                raise MetricsError(f"metrics line {lineno}: label {key!r} needs a quoted value")
            value, i = _quoted(line, i, lineno)
            labels[key] = value
        elif quoted_name is None and not labels:
            quoted_name = key  # {"my.metric", label="x"}: a quoted metric name
        else:
            raise MetricsError(f"metrics line {lineno}: label {key!r} has no value")
        i = _skip_spaces(line, i)
        if i < len(line) and line[i] == ",":
            i += 1
        elif i < len(line) and line[i] != "}":
            raise MetricsError(f"metrics line {lineno}: expected ',' or '}}' at column {i + 1}")


def _value(token: str, lineno: int) -> float:
    try:
        return float(token)
    except ValueError:
        raise MetricsError(f"metrics line {lineno}: {token[:40]!r} is not a number") from None


def _sample(line: str, lineno: int) -> Sample:
    if line[0] == '"':
        name, i = _quoted(line, 0, lineno)
    else:
        name, i = _name(line, 0)
    labels: dict[str, str] = {}
    if i < len(line) and line[i] == "{":
        quoted_name, labels, i = _labels(line, i, lineno)
        if quoted_name is not None:
            if name:
                raise MetricsError(f"metrics line {lineno}: two metric names")
            name = quoted_name
    if not name:
        raise MetricsError(f"metrics line {lineno}: no metric name")
    rest = line[i:].split()
    if not rest or (i < len(line) and line[i] not in " \t"):
        raise MetricsError(f"metrics line {lineno}: no value after {name!r}")
    # rest[1] (a timestamp) and "# {...} value" (an exemplar) are ignored.
    return Sample(name=name, labels=labels, value=_value(rest[0], lineno))


def parse_metrics(text: str) -> list[Sample]:
    """Every sample of a metrics page in the Prometheus text format, in page order.

    Raises MetricsError for a page over ``MAX_BYTES`` bytes or ``MAX_LINES`` lines, or a
    malformed line (its number in the message).
    """
    too_big = len(text) > MAX_BYTES or (  # a character is 1 to 4 bytes of UTF-8
        4 * len(text) > MAX_BYTES and len(text.encode("utf-8", errors="replace")) > MAX_BYTES
    )
    if too_big:
        raise MetricsError(f"metrics page over {MAX_BYTES // (1024 * 1024)} MiB: refused")
    lines = text.split("\n")
    if len(lines) > MAX_LINES:
        raise MetricsError(f"metrics page of {len(lines)} lines (over {MAX_LINES}): refused")
    samples: list[Sample] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        samples.append(_sample(line, lineno))
    return samples


# --------------------------------------------------------------------------- scraping


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (127.0.0.1, localhost, ::1)."""
    host = urlsplit(url).hostname or ""
    return host in _LOOPBACK


def scrape(url: str, timeout_s: float) -> list[Sample]:
    """GET ``url`` and parse the metrics page; at most ``MAX_BYTES`` bytes are read.

    ``timeout_s`` bounds connecting and each read (seconds). Loopback URLs never go through
    a proxy named in the environment. Raises MetricsFetchError when the URL does not answer
    200, MetricsError for a page too large or malformed.
    """
    import httpx

    chunks: list[bytes] = []
    size = 0
    try:
        with httpx.Client(trust_env=not is_loopback(url), timeout=timeout_s) as client, \
                client.stream("GET", url, headers={"Accept": "text/plain"}) as response:
            if response.status_code != 200:
                raise MetricsFetchError(
                    f"metrics at {url} answered HTTP {response.status_code}"
                )
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise MetricsError(
                        f"metrics page at {url} is over {MAX_BYTES // (1024 * 1024)} MiB: "
                        "refused"
                    )
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise MetricsFetchError(
            f"cannot read metrics at {url}: {type(exc).__name__}: {exc}"
        ) from exc
    text = b"".join(chunks).decode("utf-8", errors="replace")
    try:
        return parse_metrics(text)
    except MetricsError as exc:
        raise MetricsError(f"metrics at {url}: {exc}") from exc


# --------------------------------------------------------------------------- reading


def _matches(sample: Sample, name: str, labels: Mapping[str, str] | None) -> bool:
    if sample.name != name:
        return False
    return not labels or all(sample.labels.get(k) == v for k, v in labels.items())


def metric_sum(
    samples: Iterable[Sample], name: str, labels: Mapping[str, str] | None = None
) -> float | None:
    """Sum of the values of every series named ``name`` whose labels include ``labels``
    (all series with None); None when no series matches."""
    values = [s.value for s in samples if _matches(s, name, labels)]
    return math.fsum(values) if values else None


# --------------------------------------------------------------------------- vLLM


#: Counters of a vLLM server (names on the page, as vLLM 0.32 exports them): snapshot key ->
#: series summed over every label (model, engine, finished_reason).
VLLM_COUNTERS = {
    "prompt_tokens": "vllm:prompt_tokens_total",
    "generation_tokens": "vllm:generation_tokens_total",
    "requests_ok": "vllm:request_success_total",
    "preemptions": "vllm:num_preemptions_total",
}
#: Gauges of a vLLM server: snapshot key -> series names, the first one present is read
#: (``vllm:gpu_cache_usage_perc`` is the name before vLLM 0.10).
VLLM_GAUGES = {
    "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    "running": ("vllm:num_requests_running",),
    "waiting": ("vllm:num_requests_waiting",),
}


def server_snapshot(samples: Iterable[Sample]) -> dict[str, float]:
    """The vLLM figures of a metrics page: counters (``prompt_tokens``,
    ``generation_tokens``, ``requests_ok`` over every finish reason, ``preemptions``) and
    gauges (``kv_cache_usage`` as a fraction 0-1, ``running`` and ``waiting`` requests),
    each summed over engines; a figure the page lacks is absent."""
    listed = list(samples)
    snapshot: dict[str, float] = {}
    for key, name in VLLM_COUNTERS.items():
        value = metric_sum(listed, name)
        if value is not None:
            snapshot[key] = value
    for key, names in VLLM_GAUGES.items():
        for name in names:
            value = metric_sum(listed, name)
            if value is not None:
                snapshot[key] = value
                break
    return snapshot


def cross_check(
    before: Mapping[str, float],
    after: Mapping[str, float],
    *,
    client_prompt_tokens: int,
    client_output_tokens: int,
    client_requests_ok: int,
) -> tuple[dict[str, float], list[str]]:
    """The server's figures over a window, and where they disagree with the client's.

    ``before`` / ``after``: ``server_snapshot`` at the window's edges. Counters become their
    delta (``before`` must be taken after the warm-up, so that warm-up requests fall outside
    the window, and the window must hold only this client's requests); gauges are the
    ``after`` value. Counts are compared exactly: ``prompt_tokens`` with the client's prompt
    tokens, ``generation_tokens`` with its output tokens, ``requests_ok`` with its
    successful requests. Returns (figures, mismatch messages); a counter missing at either
    edge is left out of both, and a counter that went down (server restarted) is a mismatch.
    """
    figures: dict[str, float] = {}
    problems: list[str] = []
    client = {
        "prompt_tokens": (client_prompt_tokens, "prompt tokens"),
        "generation_tokens": (client_output_tokens, "output tokens"),
        "requests_ok": (client_requests_ok, "successful requests"),
    }
    for key in VLLM_COUNTERS:
        if key not in before or key not in after:
            continue
        delta = after[key] - before[key]
        if delta < 0:
            problems.append(
                f"server counter {VLLM_COUNTERS[key]} went down ({before[key]:g} -> "
                f"{after[key]:g}): the server restarted during the window"
            )
            continue
        figures[key] = delta
        if key in client:
            expected, what = client[key]
            if delta != expected:
                problems.append(
                    f"{key}: the server counted {delta:g} ({VLLM_COUNTERS[key]}), the "
                    f"client {expected} {what}"
                )
    for key in VLLM_GAUGES:
        if key in after:
            figures[key] = after[key]
    return figures, problems
