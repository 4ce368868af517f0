"""What a serving run (an endpoint under load) adds to a result.

Times are seconds relative to the start of the measured window; energies in joules. Every
figure here is computed from the per-request records (and the energy reading) by
``orchestration.serving``, and can be recomputed from the saved records.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llm_energy_measure.domain.base import Count, FrozenModel, NonNegative
from llm_energy_measure.domain.metrics import LatencyStats

#: How a window's energy is obtained from the run's energy: the run's own figure when the
#: window is the whole run (``window_total``: a counter delta, sampled power or an estimate,
#: as ``energy.methods`` says); else the share of the window in the integral of the sampled
#: power (``power_share``), or in its duration when no power was sampled (``time_share``).
WindowEnergyMethod = Literal["window_total", "power_share", "time_share"]


class WindowFigures(FrozenModel):
    """Throughput and energy over one window of a serving run.

    Tokens are counted where they were produced: an output token belongs to the window that
    holds its arrival time; a request to the window that holds its end.
    """

    name: Literal["whole", "steady"]
    start_s: float
    end_s: float
    duration_s: NonNegative
    requests_completed: Count
    output_tokens: Count
    output_tokens_per_s: NonNegative
    requests_per_s: NonNegative
    mean_in_flight: NonNegative
    energy_j: NonNegative | None = None
    energy_method: WindowEnergyMethod | None = None
    energy_estimated: bool | None = None
    mean_power_w: NonNegative | None = None
    energy_per_output_token_j: NonNegative | None = None
    energy_per_request_j: NonNegative | None = None


class ServerCheck(FrozenModel):
    """The server's own counts (Prometheus ``/metrics``, scraped right before and after the
    window) beside ours. ``counts``: counter deltas and gauge values after the run;
    ``mismatches``: each disagreement, in words (also a ``server_count_mismatch`` warning)."""

    metrics_url: str
    counts: dict[str, float] = Field(default_factory=dict)
    mismatches: tuple[str, ...] = ()


class OutputLength(FrozenModel):
    """How the output length was asked for and whether the server did as asked.

    ``requested``: ``fixed`` (exactly ``max_tokens``, EOS ignored) or ``up_to`` max_tokens.
    ``extensions``: the non-standard request fields sent (e.g. ``ignore_eos``,
    ``min_tokens``); ``honoured``: every successful request had exactly ``max_tokens``
    output tokens (None when not ``fixed``)."""

    requested: Literal["fixed", "up_to"]
    max_tokens: Count
    extensions: tuple[str, ...] = ()
    honoured: bool | None = None


class SloTarget(FrozenModel):
    """One latency objective: ``metric`` at ``percentile`` at most ``target_s``."""

    metric: Literal["ttft", "itl", "tpot", "e2e"]
    percentile: Literal["p50", "p90", "p95", "p99"]
    target_s: NonNegative
    observed_s: NonNegative | None = None
    met: bool


class SloMetrics(FrozenModel):
    """How a run did against its latency objectives (``config.slo``).

    ``met``: every run-level target met. ``requests_meeting``: successful requests whose own
    TTFT, mean ITL and e2e meet the per-request thresholds (``per_request_thresholds_s``);
    ``attainment`` is their share of the requests sent; ``share_meeting`` the share meeting
    each metric's threshold alone. ``goodput_per_s`` = requests meeting / whole window (s);
    ``energy_per_good_request_j`` = whole-window energy / requests meeting.
    """

    targets: tuple[SloTarget, ...]
    met: bool
    per_request_thresholds_s: dict[str, NonNegative]
    requests_meeting: Count
    attainment: NonNegative
    share_meeting: dict[str, NonNegative]
    goodput_per_s: NonNegative
    energy_per_good_request_j: NonNegative | None = None
    energy_estimated: bool | None = None


class EnergyStats(FrozenModel):
    """Distribution of per-request energies (J)."""

    count: Count
    mean_j: NonNegative
    p50_j: NonNegative
    p90_j: NonNegative
    p99_j: NonNegative
    min_j: NonNegative
    max_j: NonNegative


class PromptBucket(FrozenModel):
    """Requests whose input length is in [min_tokens, max_tokens]: their attributed energy."""

    min_tokens: Count
    max_tokens: Count
    requests: Count
    output_tokens: Count
    energy_j: NonNegative
    energy_per_output_token_j: NonNegative | None = None


class EnergyAttribution(FrozenModel):
    """The window's energy split among its requests (``RequestRecord.energy_j``); see
    docs/methodology.md. The parts sum to ``total_j`` exactly (up to float rounding).

    ``idle_j``: energy of intervals with no request in flight, shared by time in flight.
    """

    method: str
    prefill_token_weight: NonNegative
    total_j: NonNegative
    static_j: NonNegative
    dynamic_j: NonNegative
    idle_j: NonNegative
    estimated: bool
    per_request: EnergyStats | None = None
    by_prompt_length: tuple[PromptBucket, ...] = ()


StopReason = Literal["completed", "duration", "circuit_open", "stopped", "server_failed"]


class ServingMetrics(FrozenModel):
    """The serving figures of a result: the load, the windows, stability, the server.

    ``steady`` runs from when the in-flight count first reaches its target to when the drain
    starts (the last request is sent, or the first request ends after the last send in closed
    loop): see docs/methodology.md. ``stable`` is false, with reasons, when the steady window
    is short against the energy counter's resolution, or the in-flight count sagged below
    target within it.
    """

    endpoint: str
    served_model: str
    api: Literal["completions", "chat"]
    managed_server: bool
    server_command: tuple[str, ...] = ()
    arrival: Literal["poisson", "constant", "concurrency"]
    rate_per_s: NonNegative | None = None
    concurrency: Count | None = None
    target_in_flight: NonNegative
    requests_sent: Count
    requests_ok: Count
    requests_failed: Count
    requests_cancelled: Count = 0
    stop_reason: StopReason = "completed"
    partial: bool = False
    send_lag: LatencyStats | None = None
    #: ITL per streamed chunk gap (what ``vllm bench serve`` reports as ITL): equal to ITL per
    #: token gap when every chunk held one token; larger when the server packed several.
    chunk_itl: LatencyStats | None = None
    peak_in_flight: Count = 0
    token_count_method: str
    itl_method: str
    output_length: OutputLength
    whole: WindowFigures
    steady: WindowFigures | None = None
    stable: bool
    unstable_reasons: tuple[str, ...] = ()
    server: ServerCheck | None = None
    records_file: str | None = None
    slo: SloMetrics | None = None
    attribution: EnergyAttribution | None = None
