"""From what the load generator saw of a request to the result's request record.

Token counts come from the server's ``usage`` when it sent one (``usage``), else from the
model's tokenizer (``tokenizer``), else the content chunks are counted (``chunks``, one
token each: a lower bound when the server packs several tokens in a chunk). The method is
recorded with the result.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from llm_energy_measure.core.serving.client import RequestResult
from llm_energy_measure.core.serving.tokens import chunk_token_counts, token_gaps
from llm_energy_measure.core.timing import bounded_gaps
from llm_energy_measure.domain import RequestRecord

Counter = Callable[[str], int]


@dataclass(frozen=True)
class Converted:
    """A request record, how its tokens were counted and how its gaps were split."""

    record: RequestRecord
    token_method: str
    itl_method: str


def convert(
    result: RequestResult,
    *,
    prompt: str,
    cycle: int,
    origin_s: float = 0.0,
    count: Counter | None = None,
    save_text: bool = False,
) -> Converted:
    """The record of ``result`` (times shifted by ``origin_s`` so that they are relative to
    the measured window's start)."""
    if result.completion_tokens is not None:
        output_tokens, token_method = result.completion_tokens, "usage"
    elif count is not None:
        output_tokens, token_method = (count(result.text) if result.text else 0), "tokenizer"
    else:
        output_tokens, token_method = len(result.chunk_times_s), "chunks"
    if result.prompt_tokens is not None:
        input_tokens = result.prompt_tokens
    elif count is not None:
        input_tokens = count(prompt)
    else:
        input_tokens, token_method = 0, f"{token_method}; input unknown"
    ttft = tpot = completion = None
    gaps: tuple[float, ...] = ()
    chunk_gaps: tuple[float, ...] = ()
    stride = 1
    itl_method = "per-chunk"
    if result.first_token_s is not None and result.chunk_times_s:
        ttft = result.first_token_s - result.sent_s
        completion = result.chunk_times_s[-1] - result.sent_s
        if output_tokens >= 1:
            counts, itl_method = chunk_token_counts(
                result.chunk_texts, output_tokens if result.status == "ok" else None, count)
            all_gaps = token_gaps(result.first_token_s, result.chunk_times_s, counts)
            if len(all_gaps) >= 1:
                tpot = sum(all_gaps) / len(all_gaps)
            gaps, stride = bounded_gaps(all_gaps)
            if any(c > 1 for c in counts):
                times = result.chunk_times_s
                chunk_gaps = bounded_gaps([b - a for a, b in itertools.pairwise(times)])[0]
    record = RequestRecord(
        request_id=result.request_id, cycle=cycle,
        input_tokens=input_tokens, output_tokens=max(0, output_tokens),
        submitted_s=result.sent_s - origin_s,
        scheduled_s=None if result.scheduled_s is None else result.scheduled_s - origin_s,
        ttft_s=ttft, tpot_s=tpot, token_gaps_s=gaps, token_gap_stride=stride,
        chunk_gaps_s=chunk_gaps,
        e2e_s=max(0.0, result.end_s - result.sent_s), completion_s=completion,
        output_text=result.text if save_text else None,
        status=result.status, http_status=result.http_status, error=result.error,
    )
    return Converted(record, token_method, itl_method)


class RecordsFile:
    """The per-request records of a run, one JSON line each, appended (and flushed) as each
    request ends, so that a crash keeps every request finished before it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def open(self) -> None:
        if self.path is not None and self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def append(self, data: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(data, separators=(",", ":")) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
