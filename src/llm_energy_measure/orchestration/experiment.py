"""Running a whole experiment: one start, a launcher for its ranks, one aggregation.

``run_experiment`` and ``resume_experiment`` both go through ``_launch_and_collect``: the
launcher (inline for one process, ``accelerate launch`` for several) runs the rank worker
for each rank, then the stored raw results are aggregated here (or the aggregated result
that rank 0 of a launch wrote is loaded). Both return an ``ExperimentReport``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.domain import AggregatedResult
from llm_energy_measure.exceptions import AggregationError, ConfigurationError, DistributedError
from llm_energy_measure.interrupts import raise_if_stopped
from llm_energy_measure.orchestration.launch.base import Launcher, LaunchOutcome, RankJob
from llm_energy_measure.orchestration.orchestrator import Collaborators
from llm_energy_measure.orchestration.resume import ResumePlan
from llm_energy_measure.orchestration.start import start_experiment
from llm_energy_measure.state.lease import ExperimentLease
from llm_energy_measure.storage.workspace import Workspace

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ExperimentReport:
    """How an experiment ended: its id and aggregated result. ``aggregated`` is None only
    when this machine does not hold every rank's raw result (a multi-node run whose other
    ranks wrote elsewhere); ``note`` then says what to do."""

    experiment_id: str
    aggregated: AggregatedResult | None
    note: str = ""


def needs_launch(config: ExperimentConfig) -> bool:
    """True when the experiment runs as several processes (``accelerate launch``)."""
    return config.launch.num_processes > 1 or config.launch.num_machines > 1


def choose_launcher(config: ExperimentConfig, collaborators: Collaborators | None) -> Launcher:
    """Inline for a single process (or given collaborators), accelerate for several."""
    from llm_energy_measure.orchestration.launch.inline import InlineLauncher

    if collaborators is not None or not needs_launch(config):
        return InlineLauncher(collaborators)
    from llm_energy_measure.orchestration.launch.accelerate import AccelerateLauncher

    return AccelerateLauncher()


def check_launch(config: ExperimentConfig, experiment_id: str | None) -> None:
    """Refuse launch settings that cannot give a meaningful measurement."""
    if needs_launch(config) and config.sharding.strategy == "tensor_parallel":
        raise ConfigurationError(
            "sharding.strategy 'tensor_parallel' with launch.num_processes > 1 is not supported "
            "by `run`: every process would measure a different shard of the prompts; use "
            "sharding.strategy: device_map with launch.num_processes: 1"
        )
    if config.launch.num_machines > 1 and not experiment_id:
        raise ConfigurationError(
            "launch.num_machines > 1: pass the same --experiment-id on every machine so that "
            "their processes join one experiment"
        )


def run_experiment(
    config: ExperimentConfig,
    *,
    experiment_id: str | None = None,
    results_dir: Path | str | None = None,
    config_path: Path | None = None,
    on_progress: Progress | None = None,
    collaborators: Collaborators | None = None,
    launcher: Launcher | None = None,
) -> ExperimentReport:
    """Run ``config``: store raw and aggregated results and report them.

    One process runs inline; ``launch.num_processes > 1`` (or several machines) starts
    ``accelerate launch`` and supervises it. The state moves pending -> running -> completed
    (once aggregated), or to failed (with the cause) / interrupted; raw results already
    written are never removed. A failure in this process re-raises the rank's own error; a
    launched rank's failure raises DistributedError naming the rank and its cause.
    """
    from llm_energy_measure.config import effective_results_dir
    from llm_energy_measure.security import make_experiment_id, sanitize_experiment_id

    check_launch(config, experiment_id)
    workspace = Workspace(effective_results_dir(config, results_dir).absolute())
    world = config.launch.num_processes * config.launch.num_machines
    exp_id = sanitize_experiment_id(experiment_id or make_experiment_id(config.config_name))
    machine = config.launch.machine_rank if config.launch.num_machines > 1 else None
    # The lease comes first: nothing of a live experiment is touched by a refused run.
    with ExperimentLease(workspace.root, exp_id, machine_rank=machine):
        exp_id, config_file = start_experiment(
            workspace, config, experiment_id=exp_id, num_ranks=world,
            config_path=config_path, joinable=config.launch.num_machines > 1,
        )
        job = RankJob(config, exp_id, workspace, config_file, world)
        return _launch_and_collect(job, launcher or choose_launcher(config, collaborators),
                                   on_progress)


def resume_experiment(
    experiment_id: str,
    *,
    results_dir: Path | str | None = None,
    on_progress: Progress | None = None,
    launcher: Launcher | None = None,
) -> ExperimentReport:
    """Run only the ranks of ``experiment_id`` that have no completion marker, then aggregate.

    The config is the one saved when the experiment started (see ``orchestration.resume``);
    when no rank is missing (the aggregation failed or was interrupted) nothing is launched
    or measured: the stored raw results are aggregated. ConfigurationError when the id is
    unknown or the experiment already completed.
    """
    from llm_energy_measure.config import effective_results_dir
    from llm_energy_measure.orchestration.resume import plan_resume

    workspace = Workspace(effective_results_dir(None, results_dir).absolute())
    plan = plan_resume(workspace, experiment_id)
    with ExperimentLease(workspace.root, plan.experiment_id):
        # Planned again under the lease: what another process did meanwhile counts.
        return _resume(workspace, plan_resume(workspace, experiment_id), on_progress,
                       launcher)


def _resume(
    workspace: Workspace, plan: ResumePlan, on_progress: Progress | None,
    launcher: Launcher | None,
) -> ExperimentReport:
    from llm_energy_measure.orchestration.resume import resolved_config_path
    from llm_energy_measure.state.heartbeat import clear_heartbeats

    states = workspace.states
    for rank in plan.completed_ranks:
        states.mark_process(plan.experiment_id, rank, "completed")
    states.mark_running(plan.experiment_id)
    clear_heartbeats(workspace.root, plan.experiment_id)
    job = RankJob(plan.config, plan.experiment_id, workspace,
                  resolved_config_path(workspace.root, plan.experiment_id),
                  plan.num_processes, ranks=plan.missing_ranks)
    if not plan.missing_ranks:
        logger.info(f"resuming {plan.experiment_id}: every rank's result is stored; "
                    "aggregating them")
        return _launch_and_collect(job, None, on_progress)
    logger.info(f"resuming {plan.experiment_id}: running ranks {list(plan.missing_ranks)} of "
                f"{plan.num_processes}")
    if launcher is None:
        inline = not needs_launch(plan.config) and plan.num_processes == 1
        launcher = choose_launcher(plan.config, None) if inline else _accelerate()
    return _launch_and_collect(job, launcher, on_progress)


def _accelerate() -> Launcher:
    from llm_energy_measure.orchestration.launch.accelerate import AccelerateLauncher

    return AccelerateLauncher()


def _launch_and_collect(
    job: RankJob, launcher: Launcher | None, on_progress: Progress | None
) -> ExperimentReport:
    """Launch the job's ranks (nothing when ``launcher`` is None), then aggregate."""
    from llm_energy_measure.logging import add_experiment_log, remove_log_sink

    sink = add_experiment_log(job.workspace.layout.experiment_log(job.experiment_id))
    try:
        if launcher is not None:
            outcome = launcher.launch(job, on_progress)
            _raise_for_failure(job, outcome)
        raise_if_stopped()
        return _collect(job)
    except KeyboardInterrupt:
        job.workspace.states.mark_interrupted(job.experiment_id)
        raise
    finally:
        remove_log_sink(sink)


def _raise_for_failure(job: RankJob, outcome: LaunchOutcome) -> None:
    if outcome.status == "completed":
        return
    if outcome.exception is not None:
        raise outcome.exception
    exp_id = job.experiment_id
    missing = job.workspace.repository.missing_ranks(exp_id, job.num_ranks)
    where = f" (ranks' output: {outcome.log_file})" if outcome.log_file else ""
    if outcome.failed_rank is None and not missing:
        raise AggregationError(
            f"experiment {exp_id}: every rank finished, then it failed: {outcome.cause}; the "
            f"raw results are kept; `llm-energy-measure run --resume {exp_id}` aggregates "
            f"them again{where}"
        )
    rank = f"rank {outcome.failed_rank}: " if outcome.failed_rank is not None else ""
    raise DistributedError(
        f"experiment {exp_id} failed: {rank}{outcome.cause}; finished raw results are kept; "
        f"rerun the rest with `llm-energy-measure run --resume {exp_id}`{where}"
    )


def _collect(job: RankJob) -> ExperimentReport:
    """The aggregated result: the one rank 0 of a launch wrote, else aggregated here from
    the stored raw results (nothing when some ranks' results are on other machines)."""
    from llm_energy_measure.orchestration.aggregate import aggregate_if_complete

    ws, exp_id = job.workspace, job.experiment_id
    aggregated = ws.repository.load_aggregated(exp_id)
    if aggregated is None:
        done = aggregate_if_complete(ws.repository, ws.states, exp_id, job.num_ranks)
        if done.aggregated is None:
            return ExperimentReport(exp_id, None, note=(
                f"experiment {exp_id}: this machine's ranks completed; raw results of ranks "
                f"{list(done.missing_ranks)} are on the other machines: copy them into "
                f"{ws.layout.raw_experiment_dir(exp_id)} and run `llm-energy-measure "
                f"aggregate {exp_id}`"))
        aggregated = done.aggregated
    logger.info(f"experiment {exp_id} completed; results in {ws.root}")
    return ExperimentReport(exp_id, aggregated)
