"""Serving figures of a run: windows, steady state, stability, in-flight timeline.

Everything is computed from the per-request records (times relative to the window start)
and the energy reading, so it can be recomputed from the saved records. Definitions
(docs/methodology.md, "Serving"):

- In flight: a request is in flight from its send (``submitted_s``) to its end
  (``submitted_s + e2e_s``), whatever its outcome.
- Whole window: the measured window (the load's start to the last response's end).
- Steady window: from when the in-flight count first reaches its target to when the drain
  starts. The target is ``load.concurrency`` in closed loop (at most the number of
  requests); in open loop it is Little's law, ``rate x mean e2e`` of the successful
  requests, at least 1. The drain starts at the last send (open loop), or at the first end
  after the last send (closed loop: until then every finished request was replaced).
- A window's output tokens are those whose arrival time falls in it; its requests are those
  that ended in it; its energy is the run's energy times the window's share of the sampled
  power's integral (``power_share``), or of the duration when no power was sampled.
- Unstable: the steady window is shorter than ``STEADY_MIN_PERIODS`` periods of the energy
  measurement (counter update period or sampling interval), or the in-flight count sagged in
  it (closed loop: below target more than ``SAG_TIME_FRACTION`` of the time; open loop: mean
  in flight under ``SAG_MEAN_FRACTION`` of the target).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from llm_energy_measure.constants import MIN_WINDOW_COUNTER_PERIODS, NVML_COUNTER_UPDATE_PERIOD_S
from llm_energy_measure.core.types import EnergyReading, ServingRun
from llm_energy_measure.domain import (
    EnergyMetrics,
    LatencyStats,
    RequestRecord,
    ServingMetrics,
    UtilisationSample,
    WindowFigures,
)

#: The steady window must last at least this many periods of the energy measurement.
STEADY_MIN_PERIODS = MIN_WINDOW_COUNTER_PERIODS
#: Closed loop: the in-flight count may be below target at most this share of the window.
SAG_TIME_FRACTION = 0.05
#: Open loop: the mean in-flight count must reach this share of Little's-law target.
SAG_MEAN_FRACTION = 0.8


@dataclass(frozen=True)
class Interval:
    """A request's time in flight (s, window-relative)."""

    start_s: float
    end_s: float


def in_flight_intervals(requests: Sequence[RequestRecord]) -> list[Interval]:
    return [Interval(r.submitted_s, r.submitted_s + r.e2e_s) for r in requests]


def in_flight_steps(intervals: Sequence[Interval]) -> list[tuple[float, int]]:
    """The in-flight count as a step function: (time, count from then on), time-ordered.
    At equal times ends come before starts (a request replaced at once never counts twice)."""
    events = sorted([(i.end_s, -1) for i in intervals] + [(i.start_s, 1) for i in intervals])
    steps: list[tuple[float, int]] = []
    count = 0
    for t, delta in events:
        count += delta
        if steps and steps[-1][0] == t:
            steps[-1] = (t, count)
        else:
            steps.append((t, count))
    return steps


def count_at(steps: Sequence[tuple[float, int]], t: float) -> int:
    """In-flight count at ``t`` (after every event at ``t``)."""
    index = bisect.bisect_right([s[0] for s in steps], t) - 1
    return steps[index][1] if index >= 0 else 0


def time_below(steps: Sequence[tuple[float, int]], start: float, end: float,
               level: float) -> tuple[float, float]:
    """(mean count over [start, end], seconds with the count below ``level``)."""
    if end <= start:
        return 0.0, 0.0
    area = below = 0.0
    cuts = [start, *[t for t, _ in steps if start < t < end], end]
    for a, b in itertools.pairwise(cuts):
        value = count_at(steps, a)
        area += value * (b - a)
        if value < level:
            below += b - a
    return area / (end - start), below


def token_times(record: RequestRecord) -> list[float]:
    """Arrival times (s, window-relative) of a successful request's output tokens: the
    first at its TTFT, the others after each recorded gap (a strided gap stands for
    ``token_gap_stride`` equal gaps)."""
    if not record.ok or record.output_tokens == 0 or record.ttft_s is None:
        return []
    t = record.submitted_s + record.ttft_s
    times = [t]
    for gap in record.token_gaps_s:
        for _ in range(record.token_gap_stride):
            t += gap
            times.append(t)
    # Records without gaps (one token, or an engine without per-token times): the remaining
    # tokens are put at the request's end.
    end = record.submitted_s + (record.completion_s if record.completion_s is not None
                                else record.e2e_s)
    while len(times) < record.output_tokens:
        times.append(end)
    return times[: record.output_tokens]


def _power_integral(samples: Sequence[UtilisationSample], origin: float, start: float,
                    end: float) -> float | None:
    """Trapezoid integral (J) of every device's sampled power over [start, end] (window-
    relative s; ``origin`` is the window start as epoch s); None without power samples."""
    by_device: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        if s.power_w is not None:
            by_device.setdefault(s.device_id, []).append((s.t_s - origin, s.power_w))
    if not by_device:
        return None
    total = 0.0
    for points in by_device.values():
        points.sort()
        for (t0, p0), (t1, p1) in itertools.pairwise(points):
            a, b = max(t0, start), min(t1, end)
            if b <= a or t1 <= t0:
                continue

            def power(t: float, t0: float = t0, p0: float = p0, t1: float = t1,
                      p1: float = p1) -> float:
                return p0 + (p1 - p0) * (t - t0) / (t1 - t0)

            total += (power(a) + power(b)) / 2 * (b - a)
    return total


@dataclass(frozen=True)
class _Energy:
    """The run's energy and what a sub-window's share is computed from."""

    total_j: float | None
    estimated: bool | None
    samples: Sequence[UtilisationSample]
    origin: float
    duration_s: float


def window_figures(
    name: str,
    start: float,
    end: float,
    requests: Sequence[RequestRecord],
    steps: Sequence[tuple[float, int]],
    energy: _Energy,
) -> WindowFigures:
    """Figures of the window [start, end] (window-relative s)."""
    duration = max(0.0, end - start)
    tokens = sum(1 for r in requests for t in token_times(r) if start <= t <= end)
    completed = sum(1 for r in requests
                    if r.ok and start <= r.submitted_s + r.e2e_s <= end)
    mean_in_flight, _ = time_below(steps, start, end, 0)
    energy_j: float | None = None
    method: str | None = None
    if energy.total_j is not None:
        if name == "whole":
            energy_j, method = energy.total_j, "window_total"
        else:
            part = _power_integral(energy.samples, energy.origin, start, end)
            whole = _power_integral(energy.samples, energy.origin, 0.0, energy.duration_s)
            if part is not None and whole:
                energy_j, method = energy.total_j * part / whole, "power_share"
            elif energy.duration_s > 0:
                energy_j, method = energy.total_j * duration / energy.duration_s, "time_share"

    def per(x: float, n: float) -> float | None:
        return x / n if n > 0 else None

    return WindowFigures.model_validate({
        "name": name, "start_s": start, "end_s": end, "duration_s": duration,
        "requests_completed": completed, "output_tokens": tokens,
        "output_tokens_per_s": tokens / duration if duration > 0 else 0.0,
        "requests_per_s": completed / duration if duration > 0 else 0.0,
        "mean_in_flight": mean_in_flight,
        "energy_j": energy_j, "energy_method": method,
        "energy_estimated": energy.estimated if energy_j is not None else None,
        "mean_power_w": per(energy_j, duration) if energy_j is not None else None,
        "energy_per_output_token_j": per(energy_j, tokens) if energy_j is not None else None,
        "energy_per_request_j": per(energy_j, completed) if energy_j is not None else None,
    })


def target_in_flight(run: ServingRun, requests: Sequence[RequestRecord]) -> float:
    """Closed loop: the concurrency (at most the requests sent). Open loop: Little's law,
    rate x mean e2e of the successful requests (at least 1)."""
    if run.concurrency is not None:
        return float(min(run.concurrency, max(1, len(requests))))
    ok = [r.e2e_s for r in requests if r.ok]
    if run.rate_per_s is None or not ok:
        return 1.0
    return max(1.0, run.rate_per_s * sum(ok) / len(ok))


def steady_edges(run: ServingRun, requests: Sequence[RequestRecord],
                 steps: Sequence[tuple[float, int]], target: float) -> tuple[float, float] | None:
    """(start, end) of the steady window, or None when the in-flight count never reached
    its target before the drain."""
    if not requests:
        return None
    # The in-flight count is an integer: it reaches a target of 1.8 when 2 are in flight.
    level = max(1, math.ceil(target - 1e-9))
    start = next((t for t, c in steps if c >= level), None)
    last_send = max(r.submitted_s for r in requests)
    if run.concurrency is not None:
        ends = [r.submitted_s + r.e2e_s for r in requests if r.submitted_s + r.e2e_s > last_send]
        end = min(ends) if ends else last_send
    else:
        end = last_send
    if start is None or end <= start:
        return None
    return start, end


def measurement_period_s(energy: EnergyMetrics | None, sample_interval_ms: float) -> float:
    """The energy measurement's time resolution: the counter update period for counters,
    else the sampling interval."""
    methods = set(energy.methods) if energy is not None else set()
    if methods == {"counter"}:
        return NVML_COUNTER_UPDATE_PERIOD_S
    return max(NVML_COUNTER_UPDATE_PERIOD_S, sample_interval_ms / 1000.0)


def serving_metrics(
    run: ServingRun,
    requests: Sequence[RequestRecord],
    *,
    window_start_epoch_s: float,
    window_s: float,
    energy: EnergyMetrics | None,
    reading: EnergyReading | None,
    sample_interval_ms: float,
) -> ServingMetrics:
    """The serving figures of one cycle (``requests`` of that cycle only)."""
    steps = in_flight_steps(in_flight_intervals(requests))
    run_energy = _Energy(
        total_j=energy.total_energy_j if energy is not None else None,
        estimated=energy.estimated if energy is not None else None,
        samples=reading.timeseries if reading is not None else (),
        origin=window_start_epoch_s, duration_s=window_s,
    )
    whole = window_figures("whole", 0.0, window_s, requests, steps, run_energy)
    target = target_in_flight(run, requests)
    edges = steady_edges(run, requests, steps, target)
    steady = None
    reasons: list[str] = []
    if edges is None:
        reasons.append(f"the in-flight count never reached its target ({target:.2f}) "
                       "before the drain")
    else:
        steady = window_figures("steady", *edges, requests, steps, run_energy)
        period = measurement_period_s(energy, sample_interval_ms)
        if steady.duration_s < STEADY_MIN_PERIODS * period:
            reasons.append(f"the steady window ({steady.duration_s:.3f} s) is shorter than "
                           f"{STEADY_MIN_PERIODS} energy measurement periods "
                           f"({STEADY_MIN_PERIODS * period:.3f} s)")
        mean, below = time_below(steps, *edges, target)
        if run.concurrency is not None and below > SAG_TIME_FRACTION * steady.duration_s:
            reasons.append(f"the in-flight count was below its target ({target:g}) for "
                           f"{below / steady.duration_s:.0%} of the steady window")
        if run.concurrency is None and mean < SAG_MEAN_FRACTION * target:
            reasons.append(f"the mean in-flight count ({mean:.2f}) sagged below "
                           f"{SAG_MEAN_FRACTION:.0%} of its target ({target:.2f})")
    lags = [r.submitted_s - r.scheduled_s for r in requests if r.scheduled_s is not None]
    failed = sum(1 for r in requests if r.status == "error")
    cancelled = sum(1 for r in requests if r.status == "cancelled")
    return ServingMetrics(
        endpoint=run.endpoint, served_model=run.served_model, api=run.api,
        managed_server=run.managed_server, server_command=run.server_command,
        arrival=run.arrival, rate_per_s=run.rate_per_s,
        concurrency=run.concurrency, target_in_flight=target,
        requests_sent=len(requests), requests_ok=len(requests) - failed - cancelled,
        requests_failed=failed, requests_cancelled=cancelled,
        stop_reason=run.stop_reason, partial=run.stop_reason == "stopped",
        send_lag=LatencyStats.from_samples([max(0.0, lag) for lag in lags]),
        chunk_itl=LatencyStats.from_samples(chunk_gap_samples(requests)),
        peak_in_flight=max((c for _, c in steps), default=0),
        token_count_method=run.token_count_method, itl_method=run.itl_method,
        output_length=run.output_length, whole=whole, steady=steady,
        stable=not reasons, unstable_reasons=tuple(reasons), server=run.server,
        records_file=run.records_file,
    )


def chunk_gap_samples(requests: Sequence[RequestRecord]) -> list[float]:
    """Every gap between consecutive streamed chunks of the successful requests (s)."""
    gaps: list[float] = []
    for r in requests:
        if not r.ok:
            continue
        if r.chunk_gaps_s:
            gaps.extend(r.chunk_gaps_s)
        else:  # one token per chunk: the chunk gaps are the token gaps
            gaps.extend(g for g in r.token_gaps_s for _ in range(r.token_gap_stride))
    return gaps


def with_in_flight(samples: Sequence[UtilisationSample], requests: Sequence[RequestRecord],
                   window_start_epoch_s: float) -> list[UtilisationSample]:
    """The samples with the in-flight count at each sample's time."""
    steps = in_flight_steps(in_flight_intervals(requests))
    return [s.model_copy(update={"in_flight": count_at(steps, s.t_s - window_start_epoch_s)})
            for s in samples]


def _sum_windows(parts: Sequence[WindowFigures]) -> WindowFigures:
    """Windows of several cycles as one: durations, tokens, requests and energies summed;
    rates and per-token energies recomputed; mean in flight time-weighted."""
    duration = sum(p.duration_s for p in parts)
    tokens = sum(p.output_tokens for p in parts)
    completed = sum(p.requests_completed for p in parts)
    energies = [p.energy_j for p in parts]
    energy_j = sum(e for e in energies if e is not None) if None not in energies else None
    methods = {p.energy_method for p in parts}
    return parts[0].model_copy(update={
        "start_s": parts[0].start_s, "end_s": parts[-1].end_s, "duration_s": duration,
        "requests_completed": completed, "output_tokens": tokens,
        "output_tokens_per_s": tokens / duration if duration > 0 else 0.0,
        "requests_per_s": completed / duration if duration > 0 else 0.0,
        "mean_in_flight": (sum(p.mean_in_flight * p.duration_s for p in parts) / duration
                           if duration > 0 else 0.0),
        "energy_j": energy_j,
        "energy_method": methods.pop() if len(methods) == 1 else "power_share",
        "mean_power_w": energy_j / duration if energy_j is not None and duration > 0 else None,
        "energy_per_output_token_j": energy_j / tokens if energy_j is not None and tokens
        else None,
        "energy_per_request_j": energy_j / completed if energy_j is not None and completed
        else None,
    })


def combine_serving(parts: Sequence[ServingMetrics],
                    requests: Sequence[RequestRecord]) -> ServingMetrics:
    """The serving figures of every cycle as one (each cycle's windows summed; stable only
    when every cycle is; send lag over every request)."""
    if len(parts) == 1:
        return parts[0]
    steadies = [p.steady for p in parts if p.steady is not None]
    reasons = [f"cycle {i}: {reason}" for i, p in enumerate(parts) for reason in
               p.unstable_reasons]
    lags = [r.submitted_s - r.scheduled_s for r in requests if r.scheduled_s is not None]
    last = parts[-1]
    return last.model_copy(update={
        "requests_sent": sum(p.requests_sent for p in parts),
        "requests_ok": sum(p.requests_ok for p in parts),
        "requests_failed": sum(p.requests_failed for p in parts),
        "requests_cancelled": sum(p.requests_cancelled for p in parts),
        "partial": any(p.partial for p in parts),
        "send_lag": LatencyStats.from_samples([max(0.0, lag) for lag in lags]),
        "chunk_itl": LatencyStats.from_samples(chunk_gap_samples(requests)),
        "peak_in_flight": max(p.peak_in_flight for p in parts),
        "target_in_flight": sum(p.target_in_flight for p in parts) / len(parts),
        "whole": _sum_windows([p.whole for p in parts]),
        "steady": _sum_windows(steadies) if len(steadies) == len(parts) else None,
        "stable": all(p.stable for p in parts),
        "unstable_reasons": tuple(reasons),
    })
