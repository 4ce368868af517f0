"""A study that searches for the highest load meeting the SLO (``search:`` in the study file).

Each probe is one point of the study (``load.rate_per_s`` or ``load.concurrency`` set to the
probed value) with one run: an experiment of the study's ``cycles`` cycles, so the answer's
figures carry a 95% confidence interval over its cycles. Probes are decided one at a time
by ``bisection.next_step`` and added to the manifest as they are decided (``study status``
lists them; ``study resume`` re-derives the bracket from the completed probes and goes on).
A probe meets the SLO when its aggregated result's ``serving.slo.met`` is true.

At the end ``search_result.json`` (``domain.search.SearchResult``) holds the answer, its
J/token (whole and steady windows) and goodput with their CIs, and every probe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_energy_measure.config.hashing import config_hash
from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.config.study import SearchConfig, StudyConfig
from llm_energy_measure.domain import AggregatedResult
from llm_energy_measure.domain.search import SearchFigure, SearchProbe, SearchResult
from llm_energy_measure.exceptions import ConfigurationError, ResultsError
from llm_energy_measure.orchestration.study.bisection import SearchStep, next_step
from llm_energy_measure.orchestration.study.executors import StudyExecutor
from llm_energy_measure.orchestration.study.expansion import (
    point_config,
    point_label,
    run_experiment_id,
    study_hash,
)
from llm_energy_measure.orchestration.study.runs import run_one, study_cooldown
from llm_energy_measure.orchestration.study.shared_server import StudyServer
from llm_energy_measure.state.study_models import StudyManifest, StudyPoint, StudyRun
from llm_energy_measure.state.study_store import StudyStore
from llm_energy_measure.storage.atomic import atomic_write_text

if TYPE_CHECKING:
    from llm_energy_measure.orchestration.study.runs import StudyHooks

#: Per-cycle statistics (``AggregatedResult.cycle_stats`` keys) of the answer's figures.
_CYCLE_KEYS = {"energy_per_output_token_j": "energy_per_output_token_j",
               "steady_energy_per_output_token_j": "steady_energy_per_output_token_j",
               "goodput_per_s": "goodput_per_s"}


def probe_value(search: SearchConfig, value: float) -> float | int:
    """The value as the config takes it (an int for concurrency)."""
    return int(value) if search.integer else value


def probe_config(base: Mapping[str, Any], search: SearchConfig, value: float, *,
                 source: str, point_id: str) -> ExperimentConfig:
    """The base settings with the searched key set to ``value``, validated."""
    return point_config(base, {search.key: probe_value(search, value)}, base_source=source,
                        point_id=point_id)


def search_base(study: StudyConfig, base_data: Mapping[str, Any], *,
                base_source: str) -> tuple[dict[str, Any], ExperimentConfig, str]:
    """The settings every probe derives from (the base, with the study's ``cycles`` when the
    study sets them), the low bound's config, and the study hash.

    ConfigurationError (one line) when either bound is not a valid config, or the base is
    not a served load with an ``slo`` section.
    """
    search = study.search
    assert search is not None
    base = dict(base_data)
    load = base.get("load")
    # ExperimentConfig's default load is closed loop; a load section's default is poisson.
    arrival = (load.get("arrival", "poisson") if isinstance(load, Mapping) else "concurrency")
    wanted = ("concurrency",) if search.integer else ("poisson", "constant")
    if arrival not in wanted:
        raise ConfigurationError(
            f"{base_source}: search.key {search.key} needs load.arrival "
            f"{' or '.join(wanted)} in the base config (it has {arrival})")
    if "cycles" in study.model_fields_set:
        base["cycles"] = study.cycles
    bounds = [probe_config(base, search, value, source=base_source, point_id=f"search.{name}")
              for name, value in (("low", search.low), ("high", search.high))]
    low = bounds[0]
    if low.engine != "openai":
        raise ConfigurationError(f"{base_source}: search needs engine 'openai' (a served "
                                 f"load), not {low.engine!r}")
    if low.slo is None:
        raise ConfigurationError(f"{base_source}: search needs an slo section in the base "
                                 "config, e.g. slo: {ttft_ms: {p99: 500}}")
    slo = json.dumps(low.slo.model_dump(mode="json"), sort_keys=True)
    digest = study_hash([config_hash(c) for c in bounds] + [search.model_dump_json(), slo],
                        low.cycles, "sequential", 0)
    return base, low, digest


def bound_configs(store: StudyStore, study_id: str,
                  search: SearchConfig) -> dict[str, ExperimentConfig]:
    """The configs of the search's two bounds (probes differ from them only in the load)."""
    base, source = load_search_base(store, study_id)
    return {name: probe_config(base, search, value, source=source, point_id=f"search.{name}")
            for name, value in (("low", search.low), ("high", search.high))}


def save_search_base(store: StudyStore, study_id: str, base: Mapping[str, Any]) -> Path:
    path = store.search_base_path(study_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(base, indent=2, default=str) + "\n")
    return path


def load_search_base(store: StudyStore, study_id: str) -> tuple[dict[str, Any], str]:
    path = store.search_base_path(study_id)
    try:
        return json.loads(path.read_text(encoding="utf-8")), str(path)
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path} cannot be read ({exc}); the search cannot go on") from None


# ------------------------------------------------------------------------- probes


def _value(point: StudyPoint, search: SearchConfig) -> float:
    return float(point.overrides[search.key])


def decided_probes(store: StudyStore, study_id: str, search: SearchConfig,
                   ) -> dict[float, tuple[StudyPoint, AggregatedResult]]:
    """Every completed probe (value -> its point and aggregated result); each point's
    ``slo_met`` is recorded in the manifest for ``study status``."""
    manifest = store.load(study_id)
    repo = store.layout_repository()
    found: dict[float, tuple[StudyPoint, AggregatedResult]] = {}
    for run in manifest.runs:
        if run.status != "completed" or run.experiment_id is None:
            continue
        point = manifest.point(run.point_id)
        result = repo.load_aggregated(run.experiment_id)
        if result is None or result.serving is None or result.serving.slo is None:
            raise ResultsError(f"probe {point.point_id} ({point.label}): its result "
                               f"{run.experiment_id} has no SLO figures")
        found[_value(point, search)] = (point, result)
    met = {p.point_id: r.serving.slo.met for p, r in found.values()
           if r.serving is not None and r.serving.slo is not None}

    def record(m: StudyManifest) -> None:
        for point in m.points:
            if point.point_id in met:
                point.slo_met = met[point.point_id]

    if any(manifest.point(p).slo_met != v for p, v in met.items()):
        store.update(study_id, record)
    return found


def add_probe(store: StudyStore, study_id: str, search: SearchConfig, value: float) -> StudyRun:
    """Add the probe at ``value`` to the manifest (its config stored first)."""
    base, source = load_search_base(store, study_id)
    manifest = store.load(study_id)
    point_id = f"p{len(manifest.points):03d}"
    config = probe_config(base, search, value, source=source, point_id=point_id)
    store.save_point_config(study_id, point_id, config)
    overrides: dict[str, Any] = {search.key: probe_value(search, value)}
    point = StudyPoint(point_id=point_id, label=point_label(overrides), overrides=overrides,
                       config_hash=config_hash(config))
    run = StudyRun(point_id=point_id, cycle=0, order_index=len(manifest.runs),
                   experiment_id=run_experiment_id(study_id, point_id, 0))

    def append(m: StudyManifest) -> None:
        m.points.append(point)
        m.runs.append(run)

    store.update(study_id, append)
    return run


def run_search(store: StudyStore, study_id: str, study: StudyConfig, executor: StudyExecutor,
               hooks: StudyHooks, server: StudyServer | None) -> SearchResult | None:
    """Run the search to its end (or until a probe's run does not complete: the study then
    ends failed, and ``study resume`` runs that probe again); returns the stored result."""
    search = study.search
    assert search is not None
    runs_done = 0
    with study_cooldown(study, executor, hooks) as cooldown:
        while True:
            manifest = store.load(study_id)
            for run in sorted((r for r in manifest.runs if r.status != "completed"),
                              key=lambda r: r.order_index):
                if runs_done:
                    cooldown.wait()
                label = manifest.point(run.point_id).label
                run_one(store, study_id, run, study, executor, hooks,
                        f"[probe {run.order_index + 1}, {label}]", server)
                runs_done += 1
            if any(r.status != "completed" for r in store.load(study_id).runs):
                hooks.on_event("search stopped: a probe did not complete; `study resume` "
                               "runs it again")
                return None
            decided = decided_probes(store, study_id, search)
            step = next_step(search, {v: _met(r) for v, (_, r) in decided.items()})
            if step.next_value is None:
                break
            add_probe(store, study_id, search, step.next_value)
    result = search_result(study_id, study, step, store.load(study_id), decided)
    path = store.search_result_path(study_id)
    atomic_write_text(path, result.model_dump_json(indent=2) + "\n")
    from llm_energy_measure.orchestration.study.status import search_result_text

    hooks.on_event(search_result_text(result) + f"\nsearch result written to {path}")
    return result


def _met(result: AggregatedResult) -> bool:
    return bool(result.serving and result.serving.slo and result.serving.slo.met)


# ------------------------------------------------------------------------- the result


def _figure(result: AggregatedResult, key: str, value: float | None) -> SearchFigure:
    stats = result.cycle_stats.get(_CYCLE_KEYS[key])
    return SearchFigure(value=value, stats=stats)


def _probe_row(point: StudyPoint, result: AggregatedResult, value: float) -> SearchProbe:
    serving = result.serving
    assert serving is not None and serving.slo is not None
    return SearchProbe(
        point_id=point.point_id, experiment_id=result.experiment_id, value=value,
        slo_met=serving.slo.met, attainment=serving.slo.attainment,
        goodput_per_s=serving.slo.goodput_per_s,
        energy_per_output_token_j=serving.whole.energy_per_output_token_j,
        steady_energy_per_output_token_j=(serving.steady.energy_per_output_token_j
                                          if serving.steady is not None else None),
        stable=serving.stable,
    )


def _notes(search: SearchConfig, step: SearchStep, answer: AggregatedResult | None,
           cycles: int) -> list[str]:
    notes: list[str] = []
    if step.outcome == "none_meets":
        notes.append(f"search.low ({search.low:g}) does not meet the SLO: no load in "
                     f"[{search.low:g}, {search.high:g}] meets it")
    if step.outcome == "high_meets":
        notes.append(f"search.high ({search.high:g}) meets the SLO: the highest load meeting "
                     "it may lie above; raise search.high")
    if step.stopped_by == "max_probes" and step.bracket is not None:
        notes.append(f"stopped after search.max_probes={search.max_probes} probes: the limit "
                     f"lies in [{step.bracket[0]:g}, {step.bracket[1]:g})")
    if step.non_monotone:
        values = ", ".join(f"{v:g}" for v in step.non_monotone)
        notes.append(f"non-monotone: {values} met the SLO above a value that failed "
                     "(noise or an unsteady server); the bracket ignores them")
    if answer is not None and cycles < 2:
        notes.append("one cycle per probe: no confidence interval (set the study's cycles "
                     "to 2 or more)")
    if answer is not None and answer.serving is not None and not answer.serving.stable:
        notes.append("the answer's run is unstable: " +
                     "; ".join(answer.serving.unstable_reasons))
    return notes


def search_result(study_id: str, study: StudyConfig, step: SearchStep,
                  manifest: StudyManifest,
                  decided: Mapping[float, tuple[StudyPoint, AggregatedResult]]) -> SearchResult:
    """The stored outcome of a finished search (probes in the order they were run)."""
    search = study.search
    assert search is not None
    order = {p.point_id: i for i, p in enumerate(manifest.points)}
    probes = sorted((_probe_row(p, r, v) for v, (p, r) in decided.items()),
                    key=lambda row: order[row.point_id])
    answer = decided[step.answer][1] if step.answer is not None else None
    cycles = answer.effective_config.get("cycles", 1) if answer is not None else study.cycles
    fields: dict[str, Any] = {}
    if answer is not None and answer.serving is not None:
        serving = answer.serving
        steady = serving.steady
        fields = {
            "point_id": decided[step.answer][0].point_id,  # type: ignore[index]
            "experiment_id": answer.experiment_id,
            "energy_per_output_token_j": _figure(answer, "energy_per_output_token_j",
                                                 serving.whole.energy_per_output_token_j),
            "steady_energy_per_output_token_j": _figure(
                answer, "steady_energy_per_output_token_j",
                steady.energy_per_output_token_j if steady is not None else None),
            "goodput_per_s": _figure(answer, "goodput_per_s",
                                     serving.slo.goodput_per_s if serving.slo else None),
            "energy_estimated": serving.whole.energy_estimated,
        }
    return SearchResult(
        study_id=study_id, key=search.key, low=search.low, high=search.high,
        tolerance=search.tolerance, max_probes=search.max_probes, cycles=int(cycles),
        outcome=step.outcome or "found", stopped_by=step.stopped_by or "tolerance",
        value=step.answer, bracket=step.bracket, probes=tuple(probes),
        notes=tuple(_notes(search, step, answer, int(cycles))), **fields,
    )
