"""The data tables behind the serving figures of the study report, one per figure; the
report draws them and ``study export`` writes them (``<name>.csv`` / ``.parquet``).

Values keep their stored units (s, J, req/s, W), named in the columns; ``<metric>.mean`` is
the mean over the runs of a (config, offered load) group, ``.ci95_low`` / ``.ci95_high`` its
95% CI (empty with one run), as in ``analysis.serving``.

- ``serving_latency_vs_rate``: TTFT and ITL p50/p99 per config and offered load.
- ``serving_energy_per_token_vs_rate``: J/output token, whole and steady windows.
- ``serving_goodput_vs_rate``: goodput, completed requests/s, SLO attainment, whether the
  SLO was met in every run, and the config's highest SLO-meeting load.
- ``serving_pareto``: every (config, load) at its mean TTFT p99 and whole-window J/token,
  and whether it is on the Pareto front (lower both; ``analysis.pareto``).
- ``serving_power_timeline``: one run's power summed over devices per sample time, and the
  requests in flight, against time since the window start (which run: ``timeline_choice``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llm_energy_measure.domain import AggregatedResult, UtilisationSample
from llm_energy_measure.results.analysis.pareto import pareto_mask
from llm_energy_measure.results.analysis.serving import (
    ServingConfig,
    ServingGroup,
    group_serving,
    has_serving,
    slo_text,
)
from llm_energy_measure.results.export.exporters import Scalar

if TYPE_CHECKING:
    from llm_energy_measure.state.study_models import StudyManifest
    from llm_energy_measure.storage.repository import FileSystemRepository

LATENCY = "serving_latency_vs_rate"
ENERGY = "serving_energy_per_token_vs_rate"
GOODPUT = "serving_goodput_vs_rate"
PARETO = "serving_pareto"
TIMELINE = "serving_power_timeline"
#: Every serving figure table, in report order.
FIGURE_TABLES = (LATENCY, ENERGY, GOODPUT, PARETO, TIMELINE)

Row = dict[str, Scalar]
#: Columns of the power timeline table (also when it is empty).
TIMELINE_COLUMNS = ("experiment_id", "t_s", "power_w", "in_flight", "devices")


def _head(config: ServingConfig, group: ServingGroup) -> Row:
    return {
        "config": config.tag, "config_label": config.label, "config_key": config.key,
        "load_kind": group.load_kind, "offered_load": group.offered_load, "runs": group.runs,
    }


def _stat_columns(group: ServingGroup, key: str) -> Row:
    ci = group.ci(key)
    return {f"{key}.mean": group.mean(key), f"{key}.ci95_low": None if ci is None else ci[0],
            f"{key}.ci95_high": None if ci is None else ci[1]}


def _rows(configs: Sequence[ServingConfig], keys: Sequence[str]) -> list[Row]:
    rows = []
    for config in configs:
        for group in config.groups:
            row = _head(config, group)
            for key in keys:
                row.update(_stat_columns(group, key))
            rows.append(row)
    return rows


def latency_rows(configs: Sequence[ServingConfig]) -> list[Row]:
    """TTFT and ITL (per token gap) p50 and p99 (s) per config and offered load."""
    return _rows(configs, ("ttft_p50_s", "ttft_p99_s", "itl_p50_s", "itl_p99_s"))


def energy_rows(configs: Sequence[ServingConfig]) -> list[Row]:
    """J per output token of the whole and the steady window, with ``energy_estimated``."""
    rows = _rows(configs, ("energy_per_output_token_j", "steady_energy_per_output_token_j"))
    groups = [g for c in configs for g in c.groups]
    for row, group in zip(rows, groups, strict=True):
        row["energy_estimated"] = group.energy_estimated
    return rows


def goodput_rows(configs: Sequence[ServingConfig]) -> list[Row]:
    """Goodput (req/s), completed requests/s, SLO attainment, ``slo_met`` (every run met
    it), ``slo_runs_met``, the SLO in words and ``highest_slo_load`` (this row is the config's
    highest offered load meeting the SLO)."""
    rows = []
    for config in configs:
        best = config.sustained()
        for group in config.groups:
            row = _head(config, group)
            for key in ("goodput_per_s", "requests_per_s", "slo_attainment"):
                row.update(_stat_columns(group, key))
            row["slo_met"] = group.slo_met
            row["slo_runs_met"] = group.slo_runs_met
            row["slo"] = slo_text(config.slo) if config.slo is not None else "mixed"
            row["highest_slo_load"] = group is best
            rows.append(row)
    return rows


def pareto_rows(configs: Sequence[ServingConfig]) -> list[Row]:
    """Each (config, offered load) with mean TTFT p99 (s) and whole-window J/token, and
    ``on_front``: not beaten on both by another (config, load) of any config."""
    rows = []
    for config in configs:
        for group in config.groups:
            row = _head(config, group)
            row["ttft_p99_s"] = group.mean("ttft_p99_s")
            row["energy_per_output_token_j"] = group.mean("energy_per_output_token_j")
            row["slo_met"] = group.slo_met
            row["energy_estimated"] = group.energy_estimated
            rows.append(row)
    mask = pareto_mask(rows, minimize=("energy_per_output_token_j", "ttft_p99_s"))
    for row, on in zip(rows, mask, strict=True):
        complete = row["ttft_p99_s"] is not None and row["energy_per_output_token_j"] is not None
        row["on_front"] = on if complete else None
    return rows


@dataclass(frozen=True)
class TimelineChoice:
    """Which run the power timeline shows and why (``reason``, in words)."""

    experiment_id: str
    config_tag: str
    load_label: str
    reason: str


def timeline_candidates(configs: Sequence[ServingConfig], run_order: Sequence[str]
                        ) -> list[TimelineChoice]:
    """Runs for the power timeline, best first: the runs of the highest offered load meeting
    the SLO in every run (over all configs; ties: first config), else the last run in
    ``run_order`` (execution order), then the others from last to first."""
    where = {eid: (c, g) for c in configs for g in c.groups for eid in g.experiment_ids}
    met = [(g.offered_load, -i, c, g) for i, c in enumerate(configs) for g in c.groups
           if g.slo_met]
    out: list[TimelineChoice] = []
    if met:
        _, _, config, group = max(met, key=lambda m: (m[0], m[1]))
        out += [TimelineChoice(eid, config.tag, group.load_label,
                               f"the highest offered load meeting the SLO "
                               f"({slo_text(config.slo or ())})")
                for eid in group.experiment_ids]
    ordered = [eid for eid in run_order if eid in where] or list(where)
    for eid in reversed(ordered):
        config, group = where[eid]
        reason = "the last run (no offered load met the SLO)" if not met else "the last run"
        out.append(TimelineChoice(eid, config.tag, group.load_label, reason))
    first: dict[str, TimelineChoice] = {}
    for choice in out:
        first.setdefault(choice.experiment_id, choice)
    return list(first.values())


@dataclass(frozen=True)
class ServingTimeline:
    """One run's power timeline: ``points`` are (s since the window start, W summed over the
    devices sampled at that time, requests in flight or None, devices summed)."""

    choice: TimelineChoice
    points: tuple[tuple[float, float, int | None, int], ...]


def timeline_points(samples: Sequence[UtilisationSample], window_start_s: float
                    ) -> tuple[tuple[float, float, int | None, int], ...]:
    """Power (W) of every device summed per sample time (the sampler reads all devices at
    one time), with the in-flight count there, at seconds since ``window_start_s`` (epoch)."""
    by_time: dict[float, list[UtilisationSample]] = {}
    for s in samples:
        if s.power_w is not None:
            by_time.setdefault(s.t_s, []).append(s)
    out = []
    for t in sorted(by_time):
        at = by_time[t]
        flights = [s.in_flight for s in at if s.in_flight is not None]
        out.append((t - window_start_s, sum(s.power_w or 0.0 for s in at),
                    max(flights) if flights else None, len(at)))
    return tuple(out)


def load_timeline(configs: Sequence[ServingConfig], run_order: Sequence[str],
                  repo: FileSystemRepository) -> ServingTimeline | None:
    """The timeline of the first candidate (``timeline_candidates``) whose raw results hold
    power samples; None when none does."""
    for choice in timeline_candidates(configs, run_order):
        raws = repo.load_all_raw(choice.experiment_id)
        samples = [s for raw in raws for s in raw.timeseries]
        if raws and samples:
            points = timeline_points(samples, min(r.timestamps.start for r in raws))
            if points:
                return ServingTimeline(choice, points)
    return None


def timeline_rows(timeline: ServingTimeline | None) -> list[Row]:
    """One row per sample time: experiment, t_s (since the window start), power_w (summed),
    in_flight, devices."""
    if timeline is None:
        return []
    eid = timeline.choice.experiment_id
    return [dict(zip(TIMELINE_COLUMNS, (eid, t, p, n, d), strict=True))
            for t, p, n, d in timeline.points]


def figure_tables(configs: Sequence[ServingConfig], timeline: ServingTimeline | None
                  ) -> dict[str, list[Row]]:
    """Every serving figure's table by name (``FIGURE_TABLES`` order)."""
    return {
        LATENCY: latency_rows(configs), ENERGY: energy_rows(configs),
        GOODPUT: goodput_rows(configs), PARETO: pareto_rows(configs),
        TIMELINE: timeline_rows(timeline),
    }


def study_serving(manifest: StudyManifest,
                  results_by_point: Mapping[str, Sequence[AggregatedResult]],
                  repo: FileSystemRepository
                  ) -> tuple[list[ServingConfig], ServingTimeline | None] | None:
    """The study's serving configs (results in manifest point order, then cycle order) and
    the power timeline (runs in execution order); None when no result is a serving run."""
    results = [r for point in manifest.points for r in results_by_point.get(point.point_id, ())]
    if not has_serving(results):
        return None
    configs = group_serving(results)
    run_order = [r.experiment_id for r in sorted(manifest.runs, key=lambda r: r.order_index)
                 if r.status == "completed" and r.experiment_id]
    return configs, load_timeline(configs, run_order, repo)
