"""Per-point statistics of a study: headline metrics over the runs of each point.

Two kinds of repetition exist and are kept apart:

- **Study cycles (this module).** A study runs every point ``cycles`` times; each completed run
  is a separate experiment (own process, model load, warm-up and idle baseline). Statistics
  over these runs describe run-to-run variation, including load and thermal state, and are the
  ones to publish for a configuration.
- **Internal cycles** (``AggregatedResult.cycle_stats``). One experiment may repeat its
  measured workload several times after a single load and warm-up (``cycles`` in the
  experiment config). Those statistics describe repetition inside one process only; they are
  computed at aggregation time and never mixed into the per-point figures here.

Every statistic is a ``MetricStats`` from ``results.stats.metric_stats`` (sample std, Student t
95% CI, ``high_variance`` when cv > 10%). A metric is summarised over the runs that report it;
a point with fewer than two such runs has its values (``point_values``) but no statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llm_energy_measure.domain import AggregatedResult, LatencyStats, MetricStats
from llm_energy_measure.exceptions import ResultsError
from llm_energy_measure.results.analysis.stats import metric_stats

if TYPE_CHECKING:
    from llm_energy_measure.state.study_models import StudyManifest
    from llm_energy_measure.storage.repository import FileSystemRepository


@dataclass(frozen=True)
class HeadlineMetric:
    """A headline metric: its key, a human label, its unit and how to read it from a result."""

    key: str
    label: str
    unit: str
    read: Callable[[AggregatedResult], float | None]
    #: Derived from the energy figures: an estimate wherever the energy is (marked so).
    from_energy: bool = False


def _latency(name: str, field: str) -> Callable[[AggregatedResult], float | None]:
    def read(result: AggregatedResult) -> float | None:
        stats: LatencyStats | None = getattr(result.inference, name)
        return None if stats is None else float(getattr(stats, field))

    return read


def _energy(field: str) -> Callable[[AggregatedResult], float | None]:
    def read(result: AggregatedResult) -> float | None:
        if result.energy is None:
            return None
        value = getattr(result.energy, field)
        return None if value is None else float(value)

    return read


#: Headline metrics summarised per point, in report order. Units: tok/s, J, W, s, fraction.
HEADLINE_METRICS: tuple[HeadlineMetric, ...] = (
    HeadlineMetric("output_tokens_per_s", "output throughput", "tok/s",
                   lambda r: r.inference.output_tokens_per_s),
    HeadlineMetric("total_tokens_per_s", "total throughput", "tok/s",
                   lambda r: r.inference.total_tokens_per_s),
    HeadlineMetric("energy_per_output_token_j", "energy per output token", "J",
                   _energy("energy_per_output_token_j"), from_energy=True),
    HeadlineMetric("total_energy_j", "total energy", "J", _energy("total_energy_j"),
                   from_energy=True),
    HeadlineMetric("mean_power_w", "mean power", "W", _energy("mean_power_w"),
                   from_energy=True),
    HeadlineMetric("ttft_p50_s", "TTFT p50", "s", _latency("ttft", "p50_s")),
    HeadlineMetric("ttft_p99_s", "TTFT p99", "s", _latency("ttft", "p99_s")),
    HeadlineMetric("itl_p50_s", "ITL p50 (per token gap)", "s", _latency("itl", "p50_s")),
    HeadlineMetric("itl_p99_s", "ITL p99 (per token gap)", "s", _latency("itl", "p99_s")),
    HeadlineMetric("tpot_p50_s", "TPOT p50 (per request)", "s", _latency("tpot", "p50_s")),
    HeadlineMetric("tpot_p99_s", "TPOT p99 (per request)", "s", _latency("tpot", "p99_s")),
    HeadlineMetric("e2e_p50_s", "e2e latency p50 (batch return)", "s",
                   _latency("e2e", "p50_s")),
    HeadlineMetric("mfu", "MFU", "fraction", lambda r: r.compute.mfu),
)
METRICS_BY_KEY: dict[str, HeadlineMetric] = {m.key: m for m in HEADLINE_METRICS}


def headline_values(result: AggregatedResult) -> dict[str, float | None]:
    """Every headline metric of one result (None when the result does not have it)."""
    out: dict[str, float | None] = {}
    for metric in HEADLINE_METRICS:
        value = metric.read(result)
        out[metric.key] = value if value is not None and math.isfinite(value) else None
    return out


def energy_estimated(results: Sequence[AggregatedResult]) -> bool | None:
    """Whether any run's energy is an estimate (None when no run measured energy)."""
    energies = [r.energy for r in results if r.energy is not None]
    return any(e.estimated for e in energies) if energies else None


def point_values(
    results_by_point: Mapping[str, Sequence[AggregatedResult]],
) -> dict[str, dict[str, list[float]]]:
    """``{point_id: {metric: [value of each run that reports it, in run order]}}``."""
    out: dict[str, dict[str, list[float]]] = {}
    for point_id, results in results_by_point.items():
        per_metric: dict[str, list[float]] = {m.key: [] for m in HEADLINE_METRICS}
        for result in results:
            for key, value in headline_values(result).items():
                if value is not None:
                    per_metric[key].append(value)
        out[point_id] = per_metric
    return out


def point_statistics(
    results_by_point: Mapping[str, Sequence[AggregatedResult]],
) -> dict[str, dict[str, MetricStats]]:
    """``{point_id: {metric: MetricStats}}`` over each point's runs (one run = one cycle).

    A metric appears only when at least two runs of the point report it; ``n`` says how many
    did. Units are those of ``HEADLINE_METRICS``. Internal cycles of single experiments
    (``AggregatedResult.cycle_stats``) are not used here (see the module docstring).
    """
    stats: dict[str, dict[str, MetricStats]] = {}
    for point_id, per_metric in point_values(results_by_point).items():
        stats[point_id] = {
            key: metric_stats(values) for key, values in per_metric.items() if len(values) >= 2
        }
    return stats


def internal_cycle_stats(
    results_by_point: Mapping[str, Sequence[AggregatedResult]],
) -> dict[str, dict[str, dict[str, MetricStats]]]:
    """``{point_id: {experiment_id: cycle_stats}}`` for runs that repeated their workload
    internally (within-experiment statistics, kept apart from ``point_statistics``)."""
    return {
        point_id: {r.experiment_id: dict(r.cycle_stats) for r in results if r.cycle_stats}
        for point_id, results in results_by_point.items()
    }


def load_study_results(
    manifest: StudyManifest, repo: FileSystemRepository
) -> dict[str, list[AggregatedResult]]:
    """The aggregated result of every completed run, grouped by point (cycle order).

    Raises ResultsError when a run is marked completed but its aggregated result is missing,
    so that a report or export never silently drops a run.
    """
    out: dict[str, list[AggregatedResult]] = {}
    for point_id, experiment_ids in manifest.experiments_by_point().items():
        results = []
        for experiment_id in experiment_ids:
            result = repo.load_aggregated(experiment_id)
            if result is None:
                raise ResultsError(
                    f"study {manifest.study_id!r}: run {experiment_id!r} of point {point_id!r} "
                    f"is completed but has no aggregated result; run `llm-energy-measure "
                    f"aggregate {experiment_id}`"
                )
            results.append(result)
        out[point_id] = results
    return out


def load_manifest(results_dir: Path | str, study_id: str) -> StudyManifest:
    """The manifest of ``study_id`` under ``results_dir`` (through the StudyStore)."""
    from llm_energy_measure.state.study_store import StudyStore

    return StudyStore(results_dir).load(study_id)
