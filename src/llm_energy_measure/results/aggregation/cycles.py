"""Repetition statistics: headline metrics per cycle, combined over processes, then MetricStats.

For each cycle index every process's ``CycleMetrics`` are combined like the whole experiment:
tokens summed, throughput = tokens / (latest end - earliest start) of that cycle, energy with
each device once (largest reading; a process whose host leader measured its host adds nothing
of its own), latency p50 over the union of that cycle's requests (ITL over their token
gaps, TPOT over their mean gaps). A serving run (one process) adds its steady-window J per
output token and its goodput (SLO-meeting requests/s), taken from its cycle as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

from llm_energy_measure.domain import (
    CycleMetrics,
    MeasurementWarning,
    MetricStats,
    RawProcessResult,
)
from llm_energy_measure.domain.metrics import percentile, token_gap_samples
from llm_energy_measure.results.aggregation.energy import (
    covered_by_host_leader,
    cycle_energy_j,
)
from llm_energy_measure.results.analysis.stats import metric_stats

#: Headline metrics summarised over cycles (keys of ``AggregatedResult.cycle_stats``).
CYCLE_METRICS = (
    "output_tokens_per_s",
    "energy_per_output_token_j",
    "energy_j",
    "ttft_p50_s",
    "itl_p50_s",
    "tpot_p50_s",
    "steady_energy_per_output_token_j",
    "goodput_per_s",
)


def _p50(values: list[float]) -> float | None:
    return percentile(sorted(values), 50) if values else None


def _combine_cycle(
    cycle: int, raws: Sequence[RawProcessResult], parts: Sequence[CycleMetrics]
) -> dict[str, float | None]:
    output_tokens = sum(p.output_tokens for p in parts)
    window_s = max(p.timestamps.end for p in parts) - min(p.timestamps.start for p in parts)
    covered = [covered_by_host_leader(raw, raws) for raw in raws]
    energy_j = cycle_energy_j([(p.device_energy_j, p.energy_j) for p in parts], covered)
    requests = [r for raw in raws for r in raw.requests if r.cycle == cycle]
    return {
        "output_tokens_per_s": output_tokens / window_s if window_s > 0 else None,
        "energy_per_output_token_j": (
            energy_j / output_tokens if energy_j is not None and output_tokens > 0 else None
        ),
        "energy_j": energy_j,
        "ttft_p50_s": _p50([r.ttft_s for r in requests if r.ttft_s is not None]),
        "itl_p50_s": _p50(token_gap_samples(requests)),
        "tpot_p50_s": _p50([r.tpot_s for r in requests if r.tpot_s is not None]),
        # Serving runs have one process (one load generator): its own figures.
        "steady_energy_per_output_token_j": (
            parts[0].steady_energy_per_output_token_j if len(parts) == 1 else None),
        "goodput_per_s": parts[0].goodput_per_s if len(parts) == 1 else None,
    }


def aggregate_cycle_stats(
    raws: Sequence[RawProcessResult],
) -> tuple[dict[str, MetricStats], list[MeasurementWarning]]:
    """MetricStats over cycles of each headline metric (only with >= 2 cycles).

    Only cycles that every process reported are used (a warning names the others); a metric is
    left out when some cycle has no value for it (e.g. no energy, no request records), with a
    ``cycle_stats_incomplete`` note when other cycles do have one.
    """
    by_process = [{c.cycle: c for c in raw.cycles} for raw in raws]
    all_cycles = set().union(*(set(p) for p in by_process))
    if len(all_cycles) < 2:
        return {}, []
    common = set.intersection(*(set(p) for p in by_process))
    warnings: list[MeasurementWarning] = []
    if common != all_cycles:
        incomplete = ", ".join(str(c) for c in sorted(all_cycles - common))
        warnings.append(
            MeasurementWarning(
                code="incomplete_cycles",
                message=(
                    f"cycles {incomplete} were not reported by every process and are left out "
                    "of the repetition statistics"
                ),
            )
        )
    if len(common) < 2:
        return {}, warnings
    per_cycle = [
        _combine_cycle(c, raws, [p[c] for p in by_process]) for c in sorted(common)
    ]
    stats: dict[str, MetricStats] = {}
    left_out: list[str] = []
    for name in CYCLE_METRICS:
        values = [row[name] for row in per_cycle]
        if all(v is not None for v in values):
            stats[name] = metric_stats([v for v in values if v is not None])
        elif any(v is not None for v in values):
            left_out.append(name)
    if left_out:
        warnings.append(
            MeasurementWarning(
                code="cycle_stats_incomplete",
                severity="info",
                message=(
                    f"{', '.join(left_out)}: some cycles have no value, so these metrics are "
                    "not summarised over cycles"
                ),
            )
        )
    return stats, warnings
