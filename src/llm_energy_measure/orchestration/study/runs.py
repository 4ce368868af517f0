"""Running one run of a study: its worker through the executor, every transition in the
manifest, retries of transient failures, and the pause between runs.

Shared by the sweep loop (``runner``) and the search (``search``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from loguru import logger

from llm_energy_measure.config.study import StudyConfig
from llm_energy_measure.exceptions import RetryableError
from llm_energy_measure.orchestration.study.cooldown import Cooldown, gpu_temperature_reader
from llm_energy_measure.orchestration.study.executors import RunOutcome, RunSpec, StudyExecutor
from llm_energy_measure.orchestration.study.shared_server import StudyServer
from llm_energy_measure.resilience import retry
from llm_energy_measure.state.study_models import StudyManifest, StudyRun
from llm_energy_measure.state.study_store import StudyStore

#: Backoff between attempts of a run that failed transiently.
RETRY_BASE_DELAY_S = 5.0
RETRY_MAX_DELAY_S = 120.0
#: How often a parallel (job array) study checks its jobs.
ARRAY_POLL_INTERVAL_S = 2.0


@dataclass
class StudyHooks:
    """What the runner reports to and waits with (injected by the CLI and by tests)."""

    on_event: Callable[[str], None] = field(default=lambda line: logger.info(line))
    sleep: Callable[[float], None] = time.sleep
    executor: StudyExecutor | None = None
    poll_interval_s: float = ARRAY_POLL_INTERVAL_S


def set_run(store: StudyStore, study_id: str, order_index: int, **changes: object) -> StudyRun:
    """Change one run (found by its order index) in the stored manifest."""
    found: list[StudyRun] = []

    def change(manifest: StudyManifest) -> None:
        run = next(r for r in manifest.runs if r.order_index == order_index)
        for key, value in changes.items():
            setattr(run, key, value)
        found.append(run)

    store.update(study_id, change)
    return found[0]


def run_spec(store: StudyStore, study_id: str, run: StudyRun, study: StudyConfig,
          server: StudyServer | None = None) -> RunSpec:
    assert run.experiment_id is not None
    return RunSpec(
        experiment_id=run.experiment_id,
        config_path=store.point_config_path(study_id, run.point_id).resolve(),
        results_dir=store.results_dir,
        log_path=store.run_log_path(study_id, run.experiment_id).resolve(),
        timeout_s=study.timeout_s,
        env=server.env if server is not None else {},
    )


def checked(outcome: RunOutcome, store: StudyStore, run: StudyRun) -> RunOutcome:
    """A worker that exited cleanly must have left an aggregated result."""
    assert run.experiment_id is not None
    if outcome.status == "completed" and \
            not store.layout_repository().has_aggregated(run.experiment_id):
        return RunOutcome("failed", "worker exited cleanly but left no aggregated result",
                          duration_s=outcome.duration_s)
    return outcome


def finish_run(store: StudyStore, study_id: str, run: StudyRun, outcome: RunOutcome,
                hooks: StudyHooks, position: str) -> None:
    from llm_energy_measure.security import redact_text

    error = redact_text(outcome.error) if outcome.error else None
    set_run(store, study_id, run.order_index, status=outcome.status, error=error,
             finished_at=time.time())
    took = f" in {outcome.duration_s:.1f} s" if outcome.duration_s is not None else ""
    cause = f": {error}" if error else ""
    hooks.on_event(f"{position} {run.point_id} c{run.cycle} {outcome.status}{took}{cause}")


def run_one(store: StudyStore, study_id: str, run: StudyRun, study: StudyConfig,
            executor: StudyExecutor, hooks: StudyHooks, position: str,
            server: StudyServer | None = None) -> None:
    """Run one run to its end, retrying transient failures up to ``study.retries`` times
    (on the study's shared ``server``, started again first if it died)."""

    def attempt() -> RunOutcome:
        if server is not None:
            server.ensure_running()
        spec = run_spec(store, study_id, run, study, server)
        current = set_run(store, study_id, run.order_index, status="running", error=None,
                           started_at=time.time(), finished_at=None, job_id=None,
                           attempts=attempts_of(store, study_id, run) + 1)
        hooks.on_event(f"{position} {run.point_id} c{run.cycle} running "
                       f"(attempt {current.attempts}) {run.experiment_id}")

        def record_job(job_id: str) -> None:
            set_run(store, study_id, run.order_index, job_id=job_id)

        outcome = executor.run(spec, record_job)
        outcome = checked(outcome, store, run)
        if outcome.status == "failed" and outcome.retryable:
            set_run(store, study_id, run.order_index, status="failed", error=outcome.error,
                     finished_at=time.time())
            raise RetryableError(outcome.error or "transient failure")
        return outcome

    try:
        outcome = retry(attempt, attempts=study.retries + 1, base_delay_s=RETRY_BASE_DELAY_S,
                        max_delay_s=RETRY_MAX_DELAY_S, sleep=hooks.sleep,
                        on_retry=lambda n, exc, delay_s: hooks.on_event(
                            f"{position} {run.point_id} c{run.cycle} attempt {n} failed "
                            f"({exc}); retrying in {delay_s:.0f} s"))
    except RetryableError as exc:
        outcome = RunOutcome("failed", f"{exc} (after {study.retries + 1} attempt(s))")
    finish_run(store, study_id, run, outcome, hooks, position)


def attempts_of(store: StudyStore, study_id: str, run: StudyRun) -> int:
    stored = store.load(study_id)
    return next(r.attempts for r in stored.runs if r.order_index == run.order_index)


def todo_runs(manifest: StudyManifest) -> list[StudyRun]:
    return sorted((r for r in manifest.runs if r.status != "completed"),
                  key=lambda r: r.order_index)


@contextlib.contextmanager
def study_cooldown(study: StudyConfig, executor: StudyExecutor,
                   hooks: StudyHooks) -> Iterator[Cooldown]:
    """The pause between runs, with the idle temperatures measured (when asked) first."""
    until_idle = study.cooldown_until_idle
    if until_idle.enabled and executor.name == "slurm":
        hooks.on_event("note: cooldown_until_idle is not applied to Slurm jobs (this host's "
                       "GPUs are not the compute nodes')")
        until_idle = until_idle.model_copy(update={"enabled": False})
    reader = gpu_temperature_reader() if until_idle.enabled else contextlib.nullcontext(None)
    with reader as read:
        cooldown = Cooldown(study.cooldown_s, until_idle, read, sleep=hooks.sleep)
        cooldown.measure_idle()
        yield cooldown
