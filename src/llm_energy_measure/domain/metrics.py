"""Measurement value objects: latency, inference, energy, compute, memory, time.

Units live in field names: ``_s`` seconds, ``_j`` joules, ``_w`` watts, ``_bytes`` bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from llm_energy_measure.domain.base import Count, FrozenModel, NonNegative


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of already sorted values; q in [0, 100]."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


class LatencyStats(FrozenModel):
    """Distribution of one latency quantity over requests, in seconds."""

    count: Count
    mean_s: float
    p50_s: float
    p90_s: float
    p95_s: float
    p99_s: float
    min_s: float
    max_s: float

    @classmethod
    def from_samples(cls, samples_s: Sequence[float]) -> LatencyStats | None:
        """Stats of the samples; None when there are none."""
        values = sorted(float(v) for v in samples_s)
        if not values:
            return None
        return cls(
            count=len(values),
            mean_s=sum(values) / len(values),
            p50_s=percentile(values, 50),
            p90_s=percentile(values, 90),
            p95_s=percentile(values, 95),
            p99_s=percentile(values, 99),
            min_s=values[0],
            max_s=values[-1],
        )


class RequestRecord(FrozenModel):
    """One request (prompt) as measured.

    Times are relative to the start of the measured window, in seconds. ``ttft_s`` runs from
    submission (arrival in traffic mode, batch start otherwise) to the first generated token.
    ``token_gaps_s`` are the gaps between this sequence's consecutive tokens (the source of
    ITL per token gap); ``tpot_s`` is their mean (time per output token after the first; None
    with one token). ``e2e_s`` is the latency the caller sees: submission to the return of
    the request's generate call (with static batching the answer returns with its batch);
    ``completion_s`` runs from submission to this sequence's own last token (at most e2e_s).

    ``token_gaps_s`` is bounded: rounded to 1 us and, beyond ``MAX_TOKEN_GAPS`` gaps, every
    ``token_gap_stride``-th gap is kept (each standing for ``token_gap_stride`` gaps).

    Served requests (engine ``openai``) also record ``scheduled_s`` (when the load's schedule
    said to send; None in closed loop), and their outcome: ``status`` ``error`` (with the
    HTTP status and the error in one line) or ``cancelled`` (stopped in flight). Only ``ok``
    requests enter token counts, throughput and latency; the others are counted and kept.
    """

    request_id: int
    cycle: int = 0
    input_tokens: Count
    output_tokens: Count
    submitted_s: float
    ttft_s: NonNegative | None = None
    tpot_s: NonNegative | None = None
    token_gaps_s: tuple[NonNegative, ...] = ()
    token_gap_stride: int = Field(1, ge=1)
    e2e_s: NonNegative
    completion_s: NonNegative | None = None
    output_text: str | None = None
    scheduled_s: float | None = None
    status: Literal["ok", "error", "cancelled"] = "ok"
    http_status: int | None = None
    error: str | None = None
    #: Serving runs: this request's share of the window's energy (J), see EnergyAttribution.
    energy_j: NonNegative | None = None
    #: Serving runs where a streamed chunk held several tokens: the gaps between consecutive
    #: chunks (s; bounded like ``token_gaps_s``, a uniform sample beyond the limit). Empty when
    #: every chunk held one token (the chunk gaps are then ``token_gaps_s``).
    chunk_gaps_s: tuple[NonNegative, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


#: Token gaps kept per request record (beyond, a strided sample: see RequestRecord).
MAX_TOKEN_GAPS = 2048


def token_gap_samples(requests: Sequence[RequestRecord]) -> list[float]:
    """Every token gap of every request (s), each kept gap repeated ``token_gap_stride``
    times: the population of ITL per token gap (as serving benchmarks report it)."""
    return [
        gap for r in requests for gap in r.token_gaps_s for _ in range(r.token_gap_stride)
    ]


class Timestamps(FrozenModel):
    """A measured window. ``start``/``end`` are Unix epoch seconds (wall clock, comparable
    across processes and hosts); ``duration_s`` comes from a monotonic clock."""

    start: float
    end: float
    duration_s: float = Field(ge=0)


class InferenceMetrics(FrozenModel):
    """Token counts and throughput over a measured window.

    Tokens follow the design rules: input = attention-mask sum (no padding), output = generated
    tokens up to and including EOS. Throughputs divide by ``inference_time_s``: in a process's
    raw result, its compute time (the generate calls; tokenization and simulated traffic waits
    excluded); in an aggregated result, the system window (latest end - earliest start of the
    processes' measured windows), which includes simulated arrival gaps when traffic
    simulation is on (a ``traffic_in_system_window`` note says so).

    Latency (seconds): ``ttft`` time to first token; ``itl`` ITL per token gap (over every
    gap between consecutive tokens, as vLLM's ``bench serve`` reports it); ``tpot`` TPOT per
    request (over each request's mean gap); ``e2e`` what the caller sees (submission to the
    return of the request's batch); ``completion`` submission to the request's own last token.
    """

    num_requests: Count
    input_tokens: Count
    output_tokens: Count
    total_tokens: Count
    inference_time_s: NonNegative
    output_tokens_per_s: NonNegative
    total_tokens_per_s: NonNegative
    requests_per_s: NonNegative
    ttft: LatencyStats | None = None
    itl: LatencyStats | None = None
    tpot: LatencyStats | None = None
    e2e: LatencyStats | None = None
    completion: LatencyStats | None = None
    failed_requests: Count = 0

    @classmethod
    def from_requests(
        cls, requests: Sequence[RequestRecord], inference_time_s: float
    ) -> InferenceMetrics:
        """Totals, rates over ``inference_time_s`` and latency stats of the given requests.

        Latency percentiles come from the union of the requests (never averaged percentiles):
        ``itl`` over every token gap of every request (ITL per token gap), ``tpot`` over each
        request's mean gap (TPOT per request), ``e2e`` over the caller-visible latencies
        (batch return), ``completion`` over each request's own last token. Only successful
        requests count; ``failed_requests`` counts the others (failed or cancelled).
        """
        failed = sum(1 for r in requests if not r.ok)
        requests = [r for r in requests if r.ok]
        input_tokens = sum(r.input_tokens for r in requests)
        output_tokens = sum(r.output_tokens for r in requests)
        total = input_tokens + output_tokens

        def rate(x: float) -> float:
            return x / inference_time_s if inference_time_s > 0 else 0.0

        return cls(
            num_requests=len(requests),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=total,
            inference_time_s=inference_time_s,
            output_tokens_per_s=rate(output_tokens),
            total_tokens_per_s=rate(total),
            requests_per_s=rate(len(requests)),
            failed_requests=failed,
            **latency_stats(requests),
        )


def latency_stats(requests: Sequence[RequestRecord]) -> dict[str, LatencyStats | None]:
    """The latency fields of InferenceMetrics (ttft, itl, tpot, e2e, completion) over the
    union of the successful ``requests``."""
    requests = [r for r in requests if r.ok]
    return {
        "ttft": LatencyStats.from_samples([r.ttft_s for r in requests if r.ttft_s is not None]),
        "itl": LatencyStats.from_samples(token_gap_samples(requests)),
        "tpot": LatencyStats.from_samples([r.tpot_s for r in requests if r.tpot_s is not None]),
        "e2e": LatencyStats.from_samples([r.e2e_s for r in requests]),
        "completion": LatencyStats.from_samples(
            [r.completion_s for r in requests if r.completion_s is not None]
        ),
    }


EnergyMethod = Literal["counter", "sampled_power", "estimate"]
DeviceKind = Literal["gpu", "cpu", "dram", "system"]
DeviceScope = Literal["device", "host"]


class DeviceEnergy(FrozenModel):
    """Energy of one physical device (or host-level domain) over one window, with provenance.

    ``device_id`` is the physical identity used to count each device exactly once when
    processes are aggregated: ``gpu:<UUID>`` for GPUs, ``<host>:rapl:package-0`` for host
    domains. ``scope`` is ``host`` for domains shared by every process of a host.
    """

    device_id: str
    kind: DeviceKind
    scope: DeviceScope
    host: str
    name: str = ""
    method: EnergyMethod
    estimated: bool
    source: str = Field(description="backend that produced the figure, e.g. nvml, rapl")
    sampling_interval_ms: NonNegative | None = None
    energy_j: NonNegative
    duration_s: NonNegative
    mean_power_w: NonNegative | None = None
    peak_power_w: NonNegative | None = None
    baseline_power_w: NonNegative | None = None
    static_energy_j: NonNegative | None = None
    dynamic_energy_j: NonNegative | None = None
    dynamic_clamped: bool = False


class UnmeasuredEnergy(FrozenModel):
    """Why an energy figure is None: one reason per field of EnergyMetrics that can be
    unmeasured (None where the figure was measured). A fixed set of fields, so that every
    export has the same columns."""

    gpu_energy_j: str | None = None
    cpu_energy_j: str | None = None
    ram_energy_j: str | None = None
    static_energy_j: str | None = None
    dynamic_energy_j: str | None = None
    peak_power_w: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The reasons given, by field name."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class EnergyMetrics(FrozenModel):
    """Energy over a window: per-device figures plus totals and derived ratios.

    ``estimated`` is true when any figure is an estimate. Static energy = idle baseline power x
    window; dynamic = total - static (clamped at zero and flagged when negative; static +
    dynamic = total). A figure of a device or domain that was not measured (``gpu_energy_j`` on
    a host without GPU, static/dynamic without a baseline) is None, never 0, and
    ``unmeasured`` gives the reason under its field name.
    """

    devices: tuple[DeviceEnergy, ...] = ()
    backend: str
    total_energy_j: NonNegative
    gpu_energy_j: NonNegative | None = None
    cpu_energy_j: NonNegative | None = None
    ram_energy_j: NonNegative | None = None
    static_energy_j: NonNegative | None = None
    dynamic_energy_j: NonNegative | None = None
    estimated: bool
    methods: tuple[str, ...] = ()
    duration_s: NonNegative
    mean_power_w: NonNegative | None = None
    peak_power_w: NonNegative | None = None
    energy_per_output_token_j: NonNegative | None = None
    energy_per_request_j: NonNegative | None = None
    output_tokens_per_j: NonNegative | None = None
    emissions_g: NonNegative | None = None
    carbon_intensity_g_per_kwh: NonNegative | None = None
    carbon_intensity_source: str | None = None
    pue: float = 1.0
    unmeasured: UnmeasuredEnergy = UnmeasuredEnergy()


FlopsMethod = Literal["analytic", "flop_counter", "calflops", "parameter_estimate"]


class FlopsResult(FrozenModel):
    """FLOPs of a workload (1 multiply-add = 2 FLOPs)."""

    total_flops: NonNegative
    prefill_flops: NonNegative
    decode_flops: NonNegative
    flops_per_output_token: NonNegative | None = None
    method: FlopsMethod
    confidence: Literal["high", "medium", "low"]
    architecture: str | None = None
    notes: str = ""


class ComputeMetrics(FrozenModel):
    """Compute efficiency. MFU/MBU are None (not zero) when the device peak is unknown."""

    flops: FlopsResult | None = None
    achieved_flops_per_s: NonNegative | None = None
    peak_flops_per_s: NonNegative | None = None
    mfu: NonNegative | None = None
    peak_memory_bandwidth_bytes_per_s: NonNegative | None = None
    mbu: NonNegative | None = None
    device_name: str | None = None


class MemoryStats(FrozenModel):
    """Memory over the measured window. GPU peaks are reset at the window start; they are
    None (never 0) without a CUDA device, and ``gpu_unmeasured`` then says why."""

    model_weights_bytes: Count | None = None
    gpu_peak_allocated_bytes: Count | None = None
    gpu_peak_reserved_bytes: Count | None = None
    cpu_peak_rss_bytes: Count | None = None
    gpu_unmeasured: str | None = None


class UtilisationSample(FrozenModel):
    """One sample of the background power/temperature/utilisation sampler."""

    t_s: float
    device_id: str
    power_w: float | None = None
    temperature_c: float | None = None
    utilisation_pct: float | None = None
    memory_used_bytes: int | None = None
    sm_clock_mhz: float | None = None
    #: Serving runs: requests in flight at ``t_s`` (the request timeline beside the power).
    in_flight: int | None = None


CiMethod = Literal["student_t", "log_scale", "student_t_floor"]


class MetricStats(FrozenModel):
    """Statistics of a headline metric over repeated cycles or runs, with a 95% CI.

    ``ci_method``: ``student_t`` (mean +- t x std / sqrt(n)) where that interval stays within
    what the quantity can be; for a positive quantity whose t interval crosses zero,
    ``log_scale`` (the t interval of log(mean): mean / f .. mean x f, f = exp(t x cv /
    sqrt(n))), or ``student_t_floor`` (lower bound 0) when some value is 0. ``too_noisy``
    flags those points: the spread is as large as the mean, too noisy to rank.
    """

    n: int
    mean: float
    std: float
    cv: float | None
    ci95_low: float
    ci95_high: float
    high_variance: bool = False
    ci_method: CiMethod = "student_t"
    too_noisy: bool = False


class CycleMetrics(FrozenModel):
    """Headline figures of one cycle of the measured workload.

    ``device_energy_j`` maps each physical device id to its energy in this cycle, so that
    aggregation can count every device once per cycle too. ``energy_window`` holds the
    wall-clock edges of this process's energy window (taken after its backend started and
    before it stopped), against which aggregation checks every process's ``timestamps``.
    """

    cycle: int
    timestamps: Timestamps
    energy_window: Timestamps | None = None
    input_tokens: Count
    output_tokens: Count
    num_requests: Count
    energy_j: NonNegative | None = None
    device_energy_j: dict[str, NonNegative] = Field(default_factory=dict)
    output_tokens_per_s: NonNegative
    energy_per_output_token_j: NonNegative | None = None
    ttft_p50_s: float | None = None
    itl_p50_s: float | None = None
    tpot_p50_s: float | None = None
    #: Serving runs: J per output token of the cycle's steady window, and its goodput
    #: (SLO-meeting requests per second of its whole window; with an ``slo`` section).
    steady_energy_per_output_token_j: NonNegative | None = None
    goodput_per_s: NonNegative | None = None


class MeasurementWarning(FrozenModel):
    """A named warning attached to a result (e.g. ``short_window``, ``estimated_energy``)."""

    code: str
    message: str
    severity: Literal["info", "warning", "error"] = "warning"
    process_index: int | None = None
