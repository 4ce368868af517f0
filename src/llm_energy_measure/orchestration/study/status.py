"""Plain-text views of study manifests for the CLI (``study run`` / ``status`` / ``resume``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from llm_energy_measure.console.textable import format_pairs, format_table
from llm_energy_measure.domain import MetricStats
from llm_energy_measure.domain.search import SearchFigure, SearchResult
from llm_energy_measure.state.study_models import RunStatus, StudyManifest

_STATUSES: tuple[RunStatus, ...] = ("completed", "failed", "timeout", "running", "pending")


def run_counts(manifest: StudyManifest) -> dict[str, int]:
    """Runs by status (every status present, zeros included)."""
    counts = Counter(run.status for run in manifest.runs)
    return {status: counts.get(status, 0) for status in _STATUSES}


def point_rows(manifest: StudyManifest, *, slo_column: bool = False) -> list[list[object]]:
    """One row per valid point: id, label, then its runs by status (and, for a search's
    probes, whether the SLO was met)."""
    rows: list[list[object]] = []
    for point in manifest.points:
        if not point.valid:
            continue
        counts = Counter(r.status for r in manifest.runs if r.point_id == point.point_id)
        row: list[object] = [point.point_id, point.label,
                             *(counts.get(s, 0) for s in _STATUSES)]
        if slo_column:
            row.append({True: "yes", False: "no", None: "-"}[point.slo_met])
        rows.append(row)
    return rows


def study_summary_text(manifest: StudyManifest, job_states: dict[str, str] | None = None) -> str:
    """Header, a table of points by run status, invalid points and failed runs with causes.

    ``job_states`` (job id -> scheduler state) adds the live state of runs with a job id.
    """
    counts = run_counts(manifest)
    valid = sum(p.valid for p in manifest.points)
    header = format_pairs([
        ("study", f"{manifest.study_id} ({manifest.study_name})"),
        ("status", manifest.status + (f": {manifest.error}" if manifest.error else "")),
        ("study hash", manifest.study_hash),
        ("executor", manifest.executor),
        ("points", f"{valid} valid, {len(manifest.points) - valid} invalid"),
        ("runs", ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"),
    ])
    probes = any(p.slo_met is not None for p in manifest.points)
    headers = ["point", "label", *_STATUSES] + (["SLO met"] if probes else [])
    parts = [header, "", format_table(headers, point_rows(manifest, slo_column=probes))]
    invalid = [p for p in manifest.points if not p.valid]
    if invalid:
        parts += ["", "invalid points (skipped):"]
        parts += [f"  {p.point_id} ({p.label}): {p.error}" for p in invalid]
    problems = [r for r in sorted(manifest.runs, key=lambda r: r.order_index)
                if r.status in ("failed", "timeout") or (job_states and r.job_id in job_states)]
    if problems:
        parts += ["", "runs to look at:" if not job_states else "runs (with job states):"]
        for run in problems:
            job = f" job {run.job_id}" if run.job_id else ""
            state = f" [{job_states[run.job_id]}]" if job_states and run.job_id in job_states \
                else ""
            cause = f": {run.error}" if run.error else ""
            parts.append(f"  {run.point_id} c{run.cycle} {run.experiment_id} {run.status}"
                         f"{job}{state} (attempts {run.attempts}){cause}")
    return "\n".join(parts)


def _with_ci(value: float | None, stats: MetricStats | None, unit: str) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.4g} {unit}"
    if stats is not None:
        text += (f" (mean {stats.mean:.4g}, 95% CI {stats.ci95_low:.4g} .. "
                 f"{stats.ci95_high:.4g}, n={stats.n})")
    return text


def _figure_text(figure: SearchFigure | None, unit: str) -> str:
    return _with_ci(figure.value, figure.stats, unit) if figure is not None else "n/a"


def search_result_text(result: SearchResult) -> str:
    """The answer of a search (with its figures and 95% CIs), its notes and every probe."""
    bounds = f"{result.key} in [{result.low:g}, {result.high:g}]"
    if result.value is None:
        head = f"search {bounds}: no value meets the SLO"
    else:
        head = f"search {bounds}: highest {result.key} meeting the SLO = {result.value:g}"
        if result.bracket is not None:
            head += f" (the next failed: {result.bracket[1]:g})"
        elif result.outcome == "high_meets":
            head += " (search.high itself: the bound was met)"
    lines = [head, f"stopped by: {result.stopped_by}"]
    if result.value is not None:
        estimated = " (estimated)" if result.energy_estimated else ""
        lines += [format_pairs([
            ("J/token (whole)", _figure_text(result.energy_per_output_token_j, "J")
             + estimated),
            ("J/token (steady)", _figure_text(result.steady_energy_per_output_token_j, "J")
             + estimated),
            ("goodput", _figure_text(result.goodput_per_s, "req/s")),
            ("run", result.experiment_id),
        ])]
    lines += [f"note: {note}" for note in result.notes]
    rows = [[p.point_id, f"{p.value:g}", "yes" if p.slo_met else "no",
             f"{p.attainment:.3f}" if p.attainment is not None else None,
             f"{p.goodput_per_s:.4g}" if p.goodput_per_s is not None else None,
             f"{p.energy_per_output_token_j:.4g}" if p.energy_per_output_token_j is not None
             else None,
             f"{p.steady_energy_per_output_token_j:.4g}"
             if p.steady_energy_per_output_token_j is not None else None]
            for p in result.probes]
    lines += ["", format_table(["probe", result.key, "SLO met", "attainment", "goodput/s",
                                "J/token whole", "J/token steady"], rows)]
    return "\n".join(lines)


def study_list_text(manifests: list[StudyManifest]) -> str:
    """One row per study: id, name, status, completed/total runs."""
    if not manifests:
        return "no studies"
    rows = [[m.study_id, m.study_name, m.status,
             f"{run_counts(m)['completed']}/{len(m.runs)}"] for m in manifests]
    return format_table(["study", "name", "status", "completed"], rows)


def poll_job_states(
    manifest: StudyManifest, submitit_dir: Path, state_of: Callable[[Path, str], str] | None = None
) -> dict[str, str]:
    """Scheduler states of the study's not-completed runs that have a Slurm job id.

    Only Slurm jobs can be queried after the submitting process ended (through sacct);
    other executors give an empty mapping.
    """
    if manifest.executor != "slurm":
        return {}
    if state_of is None:
        from llm_energy_measure.orchestration.study.executors.submitit_executor import (
            job_state,
        )

        state_of = job_state
    return {run.job_id: state_of(submitit_dir, run.job_id)
            for run in manifest.runs if run.job_id and run.status != "completed"}


def describe_study(study_id: str | None, results_dir: Path | None, *, poll_jobs: bool) -> str:
    """The text `study status` prints: one study's summary, or the list of studies."""
    from llm_energy_measure.config.precedence import effective_results_dir
    from llm_energy_measure.state.study_store import StudyStore

    store = StudyStore(effective_results_dir(flag_value=results_dir))
    if study_id is None:
        return study_list_text(store.list_studies())
    manifest = store.load(study_id)
    states = poll_job_states(manifest, store.submitit_dir(study_id)) if poll_jobs else None
    text = study_summary_text(manifest, states)
    result_path = store.search_result_path(study_id)
    if result_path.is_file():
        result = SearchResult.model_validate_json(result_path.read_text(encoding="utf-8"))
        text += "\n\n" + search_result_text(result)
    return text
