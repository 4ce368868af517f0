"""Latency objectives (SLOs), goodput, and the energy of each request.

SLO definitions are in ``config.serving.SloConfig``; attribution (docs/methodology.md,
"Per-request energy"):

- The window is cut at the energy samples' times (one interval for the whole window when no
  power was sampled). Each interval's energy is the trapezoid of the summed sampled power,
  scaled so that the intervals sum to the window's energy (the counter's, when there is one).
- Static energy of an interval = min(its energy, baseline power x its duration); the rest is
  dynamic. No baseline: every joule is dynamic.
- An interval's dynamic energy is split among the requests in flight in it in proportion to
  their work in it: output tokens that arrived in it, plus ``prefill_token_weight`` x input
  tokens, the prefill spread evenly from the send to the first token. Static energy is split
  by time in flight in the interval. An interval with requests in flight but no work splits
  its dynamic energy by time in flight too.
- Energy of intervals with no request in flight (``idle_j``) is shared by every request of
  the window in proportion to its whole time in flight, so the parts sum to the window's
  energy exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from llm_energy_measure.config.serving import SloConfig
from llm_energy_measure.domain import (
    EnergyAttribution,
    EnergyStats,
    PromptBucket,
    RequestRecord,
    SloMetrics,
    SloTarget,
    UtilisationSample,
)
from llm_energy_measure.domain.metrics import percentile, token_gap_samples
from llm_energy_measure.orchestration.serving import token_times

#: Prefill tokens weigh as much as decoded ones by default: each costs about 2 x parameters
#: FLOPs in a forward pass.
DEFAULT_PREFILL_TOKEN_WEIGHT = 1.0
_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}


# SLOs ----------------------------------------------------------------------------------


def _observed(metric: str, ok: Sequence[RequestRecord]) -> list[float]:
    if metric == "ttft":
        return [r.ttft_s for r in ok if r.ttft_s is not None]
    if metric == "itl":
        return token_gap_samples(ok)
    if metric == "tpot":
        return [r.tpot_s for r in ok if r.tpot_s is not None]
    return [r.e2e_s for r in ok]


def thresholds_s(slo: SloConfig) -> dict[str, float]:
    """Per-request thresholds (s): each metric's highest-percentile target; ``itl`` and
    ``tpot`` both bound the request's mean gap (the tighter one wins)."""
    by_metric: dict[str, tuple[float, float]] = {}
    for metric, pct, ms in slo.targets():
        key = "tpot" if metric == "itl" else metric
        q = _PERCENTILES[pct]
        current = by_metric.get(key)
        if current is None or q > current[0] or (q == current[0] and ms / 1000 < current[1]):
            by_metric[key] = (q, ms / 1000)
    return {metric: value for metric, (_, value) in by_metric.items()}


def meets(record: RequestRecord, limits: dict[str, float]) -> dict[str, bool]:
    """Whether ``record`` meets each per-request threshold (a failed request meets none; a
    one-token request has no gap, so meets a gap threshold)."""
    if not record.ok:
        return dict.fromkeys(limits, False)
    values = {"ttft": record.ttft_s, "tpot": record.tpot_s, "e2e": record.e2e_s}
    return {m: (values[m] is None and m == "tpot") or
            (values[m] is not None and values[m] <= limit)  # type: ignore[operator]
            for m, limit in limits.items()}


def slo_metrics(slo: SloConfig, requests: Sequence[RequestRecord], *, window_s: float,
                energy_j: float | None, estimated: bool | None) -> SloMetrics:
    """Run-level and per-request attainment, goodput and energy per SLO-meeting request."""
    ok = [r for r in requests if r.ok]
    targets = []
    for metric, pct, ms in slo.targets():
        values = sorted(_observed(metric, ok))
        observed = percentile(values, _PERCENTILES[pct]) if values else None
        targets.append(SloTarget(metric=metric, percentile=pct,  # type: ignore[arg-type]
                                 target_s=ms / 1000, observed_s=observed,
                                 met=observed is not None and observed <= ms / 1000))
    limits = thresholds_s(slo)
    verdicts = [meets(r, limits) for r in requests]
    meeting = sum(1 for v in verdicts if v and all(v.values()))
    sent = len(requests)
    return SloMetrics(
        targets=tuple(targets), met=all(t.met for t in targets),
        per_request_thresholds_s=limits, requests_meeting=meeting,
        attainment=meeting / sent if sent else 0.0,
        share_meeting={m: sum(1 for v in verdicts if v[m]) / sent if sent else 0.0
                       for m in limits},
        goodput_per_s=meeting / window_s if window_s > 0 else 0.0,
        energy_per_good_request_j=energy_j / meeting if energy_j is not None and meeting
        else None,
        energy_estimated=estimated if energy_j is not None else None,
    )


# attribution ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A piece of the window (s, window-relative) and its energy (J)."""

    start_s: float
    end_s: float
    energy_j: float


def energy_intervals(samples: Sequence[UtilisationSample], origin: float, window_s: float,
                     total_j: float) -> list[Interval]:
    """The window cut at the power samples' times, each piece's energy from the summed
    power (trapezoid), scaled to ``total_j``; one piece when no power was sampled."""
    by_device: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        if s.power_w is not None:
            by_device.setdefault(s.device_id, []).append((s.t_s - origin, s.power_w))
    cuts = sorted({0.0, window_s, *[t for pts in by_device.values() for t, _ in pts
                                     if 0.0 < t < window_s]})

    def power(points: list[tuple[float, float]], t: float) -> float:
        if t <= points[0][0]:
            return points[0][1]
        for (t0, p0), (t1, p1) in itertools.pairwise(points):
            if t0 <= t <= t1:
                return p0 if t1 == t0 else p0 + (p1 - p0) * (t - t0) / (t1 - t0)
        return points[-1][1]

    for points in by_device.values():
        points.sort()
    raw = []
    for a, b in itertools.pairwise(cuts):
        if by_device:
            joules = sum((power(p, a) + power(p, b)) / 2 * (b - a) for p in by_device.values())
        else:
            joules = b - a  # no samples: energy in proportion to time
        raw.append(Interval(a, b, joules))
    whole = sum(i.energy_j for i in raw)
    if whole <= 0:
        return [Interval(a, b, total_j * (b - a) / window_s if window_s > 0 else 0.0)
                for a, b in itertools.pairwise(cuts)]
    return [Interval(i.start_s, i.end_s, total_j * i.energy_j / whole) for i in raw]


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def attribute_energy(
    requests: Sequence[RequestRecord],
    intervals: Sequence[Interval],
    *,
    baseline_w: float | None,
    prefill_token_weight: float = DEFAULT_PREFILL_TOKEN_WEIGHT,
) -> tuple[list[float], float, float, float]:
    """Energy (J) of each request (in order), and the static, dynamic and idle totals."""
    n = len(requests)
    shares = [0.0] * n
    spans = [(r.submitted_s, r.submitted_s + r.e2e_s) for r in requests]
    tokens = [token_times(r) for r in requests]
    static_total = dynamic_total = idle = 0.0
    for iv in intervals:
        dt = iv.end_s - iv.start_s
        static = min(iv.energy_j, (baseline_w or 0.0) * dt)
        dynamic = iv.energy_j - static
        static_total += static
        dynamic_total += dynamic
        times = [_overlap(s, e, iv.start_s, iv.end_s) for s, e in spans]
        if sum(times) <= 0:
            idle += iv.energy_j
            continue
        work = []
        for k, r in enumerate(requests):
            decoded = sum(1 for t in tokens[k] if iv.start_s <= t < iv.end_s
                          or (t == iv.end_s and iv.end_s == intervals[-1].end_s))
            prefill = 0.0
            if r.ok and r.ttft_s is not None and r.ttft_s > 0:
                first = r.submitted_s + r.ttft_s
                prefill = (prefill_token_weight * r.input_tokens
                           * _overlap(r.submitted_s, first, iv.start_s, iv.end_s) / r.ttft_s)
            work.append(decoded + prefill)
        weights = work if sum(work) > 0 else times
        for k in range(n):
            shares[k] += dynamic * weights[k] / sum(weights) + static * times[k] / sum(times)
    if idle > 0 and n:
        total_time = sum(e - s for s, e in spans)
        for k, (s, e) in enumerate(spans):
            shares[k] += idle * ((e - s) / total_time if total_time > 0 else 1 / n)
    return shares, static_total, dynamic_total, idle


def _stats(values: Sequence[float]) -> EnergyStats | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return EnergyStats(count=len(ordered), mean_j=sum(ordered) / len(ordered),
                       p50_j=percentile(ordered, 50), p90_j=percentile(ordered, 90),
                       p99_j=percentile(ordered, 99), min_j=ordered[0], max_j=ordered[-1])


def prompt_buckets(requests: Sequence[RequestRecord]) -> tuple[PromptBucket, ...]:
    """J/token of successful requests grouped by input length: [1, 64], [65, 128], [129,
    256], ... (powers of two)."""
    groups: dict[int, list[RequestRecord]] = {}
    for r in requests:
        if r.ok and r.energy_j is not None:
            upper = 64
            while r.input_tokens > upper:
                upper *= 2
            groups.setdefault(upper, []).append(r)
    buckets = []
    for upper in sorted(groups):
        members = groups[upper]
        out = sum(r.output_tokens for r in members)
        joules = sum(r.energy_j or 0.0 for r in members)
        buckets.append(PromptBucket(min_tokens=1 if upper == 64 else upper // 2 + 1,
                                    max_tokens=upper, requests=len(members),
                                    output_tokens=out, energy_j=joules,
                                    energy_per_output_token_j=joules / out if out else None))
    return tuple(buckets)


def attribution(requests: Sequence[RequestRecord], *, estimated: bool, total_j: float,
                static_j: float, dynamic_j: float, idle_j: float, sampled: bool,
                prefill_token_weight: float) -> EnergyAttribution:
    """The attribution summary of requests that already carry their ``energy_j``."""
    method = ("sampled-power intervals" if sampled else "one interval (no power samples)") + \
        f"; dynamic by tokens (prefill weight {prefill_token_weight:g}), static by time"
    return EnergyAttribution(
        method=method, prefill_token_weight=prefill_token_weight, total_j=total_j,
        static_j=static_j, dynamic_j=dynamic_j, idle_j=idle_j, estimated=estimated,
        per_request=_stats([r.energy_j for r in requests if r.energy_j is not None]),
        by_prompt_length=prompt_buckets(requests),
    )


def attribute_window(
    requests: Sequence[RequestRecord],
    *,
    samples: Sequence[UtilisationSample],
    window_start_epoch_s: float,
    window_s: float,
    total_j: float | None,
    baseline_w: float | None,
    estimated: bool,
) -> tuple[list[RequestRecord], EnergyAttribution | None]:
    """The requests with their ``energy_j`` and the attribution summary (None, requests
    unchanged, when the window's energy is unknown)."""
    if total_j is None or not requests:
        return list(requests), None
    intervals = energy_intervals(samples, window_start_epoch_s, window_s, total_j)
    shares, static, dynamic, idle = attribute_energy(
        requests, intervals, baseline_w=baseline_w)
    updated = [r.model_copy(update={"energy_j": share}) for r, share in
               zip(requests, shares, strict=True)]
    sampled = any(s.power_w is not None for s in samples)
    return updated, attribution(
        updated, estimated=estimated, total_j=total_j, static_j=static, dynamic_j=dynamic,
        idle_j=idle, sampled=sampled, prefill_token_weight=DEFAULT_PREFILL_TOKEN_WEIGHT)


def combine_attributions(parts: Sequence[EnergyAttribution],
                         requests: Sequence[RequestRecord]) -> EnergyAttribution | None:
    """Attribution of several cycles: totals summed, distributions over every request."""
    if not parts:
        return None
    first = parts[0]
    return first.model_copy(update={
        "total_j": sum(p.total_j for p in parts), "static_j": sum(p.static_j for p in parts),
        "dynamic_j": sum(p.dynamic_j for p in parts), "idle_j": sum(p.idle_j for p in parts),
        "estimated": any(p.estimated for p in parts),
        "per_request": _stats([r.energy_j for r in requests if r.energy_j is not None]),
        "by_prompt_length": prompt_buckets(requests),
    })
