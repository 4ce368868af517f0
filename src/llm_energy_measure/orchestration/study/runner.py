"""Running a study: create its manifest, run every (point, cycle) in its own worker, resume.

Every transition of a run (pending -> running -> completed / failed / timeout) is written to
the manifest at once, atomically and under its file lock, so a killed ``study run`` loses at
most the run in flight, and ``study resume`` finishes the study with no run done twice: runs
keep fixed experiment ids, and a run whose experiment already has an aggregated result
(finished just before the kill) is marked completed without running again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.config.precedence import effective_results_dir
from llm_energy_measure.config.study import STUDY_EXECUTORS, StudyConfig, load_study_config
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration.study.executors import (
    ArrayStudyExecutor,
    StudyExecutor,
    create_executor,
)
from llm_energy_measure.orchestration.study.expansion import (
    base_config_data,
    plan_study,
    run_experiment_id,
)
from llm_energy_measure.orchestration.study.runs import (
    StudyHooks,
    attempts_of,
    checked,
    finish_run,
    run_one,
    run_spec,
    set_run,
    study_cooldown,
    todo_runs,
)
from llm_energy_measure.orchestration.study.shared_server import StudyServer, study_server
from llm_energy_measure.state.liveness import current_hostname, pid_is_alive
from llm_energy_measure.state.study_models import StudyManifest, StudyPoint, StudyRun
from llm_energy_measure.state.study_store import StudyStore
from llm_energy_measure.storage.repository import ensure_results_dir

#: Longest name part of a study id, leaving room for "-<timestamp>-<hex>-pNNN-cNNN".
_STUDY_SLUG_MAX = 64
def _check_executor(name: str | None) -> None:
    if name is not None and name not in STUDY_EXECUTORS:
        raise ConfigurationError(
            f"--executor must be one of {', '.join(STUDY_EXECUTORS)}, got {name!r}"
        )


def create_study(
    study_path: Path | str,
    *,
    results_dir: Path | str | None = None,
    executor: str | None = None,
) -> tuple[StudyStore, StudyManifest]:
    """Expand the study file and store its manifest, configs and policy; run nothing.

    The results directory is ``--results-dir`` > $LLM_ENERGY_MEASURE_RESULTS_DIR > the base
    config's ``results_dir`` > ./results.
    """
    from llm_energy_measure.config.study import resolve_base_path
    from llm_energy_measure.security import make_experiment_id

    _check_executor(executor)
    study = load_study_config(study_path)
    if executor is not None:
        study = study.model_copy(update={"executor": executor})
    base_data, base_source = base_config_data(study, study_path)
    study_id = make_experiment_id(study.study_name[:_STUDY_SLUG_MAX])
    if study.search is not None:
        from llm_energy_measure.orchestration.study.search import save_search_base, search_base

        base, first, digest = search_base(study, base_data, base_source=base_source)
        store = StudyStore(ensure_results_dir(effective_results_dir(first, results_dir))
                           .resolve())
        save_search_base(store, study_id, base)
        points: list[StudyPoint] = []
        runs: list[StudyRun] = []
    else:
        plan = plan_study(study, base_data, base_source=base_source)
        first = next(iter(plan.configs.values()))
        store = StudyStore(ensure_results_dir(effective_results_dir(first, results_dir))
                           .resolve())
        for run in plan.runs:
            run.experiment_id = run_experiment_id(study_id, run.point_id, run.cycle)
        for point_id, config in plan.configs.items():
            store.save_point_config(study_id, point_id, config)
        points, runs, digest = plan.points, plan.runs, plan.study_hash
    store.save_study_config(study_id, study)
    now = time.time()
    base_path = resolve_base_path(study, study_path)
    manifest = StudyManifest(
        study_id=study_id, study_name=study.study_name, study_hash=digest,
        base_config_path=str(base_path) if base_path else None, created_at=now,
        updated_at=now, executor=study.executor, points=points, runs=runs,
    )
    return store, store.create(manifest)


def run_study(
    study_path: Path | str,
    *,
    results_dir: Path | str | None = None,
    executor: str | None = None,
    hooks: StudyHooks | None = None,
) -> StudyManifest:
    """Create a study from its file and run it to the end; returns the final manifest.

    A failed or timed-out run does not stop the study (the manifest records why); the study
    ends ``completed`` only when every run completed, else ``failed``.
    """
    hooks = hooks or StudyHooks()
    store, manifest = create_study(study_path, results_dir=results_dir, executor=executor)
    search = store.load_study_config(manifest.study_id).search
    if search is not None:
        hooks.on_event(
            f"study {manifest.study_id}: search {search.key} in [{search.low:g}, "
            f"{search.high:g}], at most {search.max_probes} probe(s), executor "
            f"{manifest.executor}; manifest {store.manifest_path(manifest.study_id)}")
        return execute_study(store, manifest.study_id, hooks=hooks)
    invalid = [p for p in manifest.points if not p.valid]
    valid = len(manifest.points) - len(invalid)
    hooks.on_event(
        f"study {manifest.study_id}: {valid} point(s) x {len(manifest.runs) // valid} "
        f"cycle(s) = {len(manifest.runs)} run(s), executor {manifest.executor}; manifest "
        f"{store.manifest_path(manifest.study_id)}"
    )
    for point in invalid:
        hooks.on_event(f"skipped invalid point {point.point_id} ({point.label}): {point.error}")
    return execute_study(store, manifest.study_id, hooks=hooks)


def resume_study(
    study_id: str,
    *,
    results_dir: Path | str | None = None,
    executor: str | None = None,
    hooks: StudyHooks | None = None,
) -> StudyManifest:
    """Run every run of a stored study that is not completed (pending, failed, timed out, or
    left running by a coordinator that died)."""
    _check_executor(executor)
    store = StudyStore(effective_results_dir(flag_value=results_dir).resolve())
    manifest = store.load(study_id)
    refuse_active_jobs(store, manifest)
    if executor is not None and executor != manifest.executor:
        store.update(study_id, lambda m: setattr(m, "executor", executor))
    return execute_study(store, study_id, hooks=hooks or StudyHooks())


def refuse_active_jobs(
    store: StudyStore, manifest: StudyManifest,
    state_of: Callable[[Path, str], str] | None = None,
) -> None:
    """ConfigurationError when a run left ``running`` still has a live Slurm job (resuming
    would run it twice). Only Slurm jobs can be checked; see ``poll_job_states``."""
    from llm_energy_measure.orchestration.study.executors.submitit_executor import (
        ACTIVE_JOB_STATES,
    )
    from llm_energy_measure.orchestration.study.status import poll_job_states

    running = StudyManifest.model_validate(
        {**manifest.model_dump(), "runs": [r.model_dump() for r in manifest.runs
                                           if r.status == "running"]})
    states = poll_job_states(running, store.submitit_dir(manifest.study_id), state_of)
    active = sorted(job for job, state in states.items()
                    if state.split()[0].upper() in ACTIVE_JOB_STATES)
    if active:
        raise ConfigurationError(
            f"study {manifest.study_id}: Slurm job(s) {', '.join(active)} still active; wait "
            f"for them or cancel them (scancel {' '.join(active)}), then resume"
        )


# ---------------------------------------------------------------------- the run loop


def _claim(store: StudyStore, study_id: str) -> StudyManifest:
    """Record this process as the study's coordinator, refusing when another one is alive."""
    host = current_hostname()

    def change(manifest: StudyManifest) -> None:
        pid = manifest.coordinator_pid
        if pid is not None and manifest.coordinator_host == host and pid != os.getpid() \
                and pid_is_alive(pid):
            raise ConfigurationError(
                f"study {study_id} is being run by process {pid} on this host; wait for it "
                "or stop it before resuming"
            )
        manifest.coordinator_pid = os.getpid()
        manifest.coordinator_host = host
        manifest.status = "running"
        manifest.error = None

    return store.update(study_id, change)


def reconcile(store: StudyStore, study_id: str) -> StudyManifest:
    """Before running: a not-completed run whose experiment has an aggregated result is marked
    completed (it finished but the manifest write was lost); one left ``running`` by a dead
    coordinator goes back to ``pending``."""
    repo = store.layout_repository()

    def change(manifest: StudyManifest) -> None:
        for run in manifest.runs:
            if run.status == "completed" or run.experiment_id is None:
                continue
            if repo.has_aggregated(run.experiment_id):
                run.status, run.error = "completed", None
                run.finished_at = run.finished_at or time.time()
            elif run.status == "running":
                run.status = "pending"

    return store.update(study_id, change)


def _run_sequential(store: StudyStore, study_id: str, study: StudyConfig,
                    executor: StudyExecutor, hooks: StudyHooks,
                    server: StudyServer | None) -> None:
    manifest = store.load(study_id)
    todo = todo_runs(manifest)
    total = len(manifest.runs)
    with study_cooldown(study, executor, hooks) as cooldown:
        for number, run in enumerate(todo):
            if number > 0:
                cooldown.wait()
            position = f"[{total - len(todo) + number + 1}/{total}]"
            run_one(store, study_id, run, study, executor, hooks, position, server)


def _run_parallel(store: StudyStore, study_id: str, study: StudyConfig,
                  executor: ArrayStudyExecutor, hooks: StudyHooks) -> None:
    """Submit every pending run at once; resubmit transient failures up to ``retries``."""
    if study.cooldown_s > 0 or study.cooldown_until_idle.enabled:
        hooks.on_event("note: cool-downs do not apply to a job array (runs are parallel); "
                       "set slurm.job_array: false to run jobs one after another")
    todo = todo_runs(store.load(study_id))
    for round_number in range(study.retries + 1):
        if not todo:
            return
        specs = [run_spec(store, study_id, run, study) for run in todo]
        handles = executor.submit_many(specs)
        waiting = {}
        for run, handle in zip(todo, handles, strict=True):
            set_run(store, study_id, run.order_index, status="running", error=None,
                     started_at=time.time(), finished_at=None, job_id=handle.job_id,
                     attempts=attempts_of(store, study_id, run) + 1)
            waiting[run.order_index] = (run, handle)
        hooks.on_event(f"submitted {len(handles)} run(s) (round {round_number + 1}): job ids "
                       f"{', '.join(h.job_id for h in handles)}")
        retry_next: list[StudyRun] = []
        try:
            while waiting:
                for key, (run, handle) in list(waiting.items()):
                    if not handle.done():
                        continue
                    del waiting[key]
                    outcome = checked(handle.outcome(), store, run)
                    last_round = round_number == study.retries
                    if outcome.retryable and outcome.status == "failed" and not last_round:
                        retry_next.append(run)
                    finish_run(store, study_id, run, outcome, hooks, f"[job {handle.job_id}]")
                if waiting:
                    hooks.sleep(hooks.poll_interval_s)
        except BaseException:
            for run, handle in waiting.values():
                handle.cancel()
                set_run(store, study_id, run.order_index, status="pending")
            raise
        todo = sorted(retry_next, key=lambda r: r.order_index)


def server_configs(store: StudyStore, study_id: str,
                   study: StudyConfig) -> dict[str, ExperimentConfig]:
    """The configs whose servers decide whether one server is shared: every valid point's
    (a search: its two bounds', which differ from every probe only in the load)."""
    from llm_energy_measure.config.validation import validate_config

    if study.search is not None:
        from llm_energy_measure.orchestration.study.search import bound_configs

        return bound_configs(store, study_id, study.search)
    manifest = store.load(study_id)
    configs: dict[str, ExperimentConfig] = {}
    for point in manifest.points:
        if point.valid:
            path = store.point_config_path(study_id, point.point_id)
            configs[point.point_id] = validate_config(
                json.loads(path.read_text(encoding="utf-8")), source=str(path))
    return configs


def execute_study(store: StudyStore, study_id: str, *, hooks: StudyHooks) -> StudyManifest:
    """Run the study's runs that are not completed; returns the final manifest.

    Ctrl+C stops the run in flight (its worker is stopped), puts it back to ``pending`` and
    marks the study ``interrupted``; ``study resume`` continues from there.
    """
    study = store.load_study_config(study_id)
    manifest = _claim(store, study_id)
    study = study.model_copy(update={"executor": manifest.executor})
    try:
        reconcile(store, study_id)
        executor = hooks.executor or create_executor(study, store.submitit_dir(study_id))
        with study_server(server_configs(store, study_id, study), executor=executor.name,
                          owner=f"study {study_id}", log_path=store.server_log_path(study_id),
                          on_event=hooks.on_event) as server:
            if study.search is not None:
                from llm_energy_measure.orchestration.study.search import run_search

                run_search(store, study_id, study, executor, hooks, server)
            elif executor.parallel and isinstance(executor, ArrayStudyExecutor):
                _run_parallel(store, study_id, study, executor, hooks)
            else:
                _run_sequential(store, study_id, study, executor, hooks, server)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        cause = None if interrupted else (str(exc).splitlines() or [type(exc).__name__])[0]

        def stop(m: StudyManifest) -> None:
            for run in m.runs:
                if run.status == "running":
                    run.status = "pending"
            m.status = "interrupted" if interrupted else "failed"
            m.error = cause
            m.coordinator_pid = None

        store.update(study_id, stop)
        raise

    def finish(m: StudyManifest) -> None:
        m.status = "completed" if all(r.status == "completed" for r in m.runs) else "failed"
        failed = [r for r in m.runs if r.status != "completed"]
        m.error = f"{len(failed)} run(s) not completed" if failed else None
        m.coordinator_pid = None

    return store.update(study_id, finish)
