"""Plain-text views of study manifests for the CLI (``study run`` / ``status`` / ``resume``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from llm_energy_measure.console.textable import format_pairs, format_table
from llm_energy_measure.state.study_models import RunStatus, StudyManifest

_STATUSES: tuple[RunStatus, ...] = ("completed", "failed", "timeout", "running", "pending")


def run_counts(manifest: StudyManifest) -> dict[str, int]:
    """Runs by status (every status present, zeros included)."""
    counts = Counter(run.status for run in manifest.runs)
    return {status: counts.get(status, 0) for status in _STATUSES}


def point_rows(manifest: StudyManifest) -> list[list[object]]:
    """One row per valid point: id, label, then its runs by status."""
    rows: list[list[object]] = []
    for point in manifest.points:
        if not point.valid:
            continue
        counts = Counter(r.status for r in manifest.runs if r.point_id == point.point_id)
        rows.append([point.point_id, point.label, *(counts.get(s, 0) for s in _STATUSES)])
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
    parts = [header, "", format_table(["point", "label", *_STATUSES], point_rows(manifest))]
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
    return study_summary_text(manifest, states)
