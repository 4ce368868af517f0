"""Running a whole experiment: id, state, the orchestrator (in this process, or launched as
several processes and supervised), aggregation, resume."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from llm_energy_measure.config import effective_results_dir
from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.types import EnergyReading, LoadedModel
from llm_energy_measure.domain import AggregatedResult
from llm_energy_measure.exceptions import AggregationError, ConfigurationError, DistributedError
from llm_energy_measure.orchestration.orchestrator import (
    Collaborators,
    ExperimentOrchestrator,
    ProcessContext,
)
from llm_energy_measure.protocols import EnergyBackend


def default_collaborators(results_dir: Path, context: ProcessContext) -> Collaborators:
    """The real implementations of every protocol, as used by ``run``."""
    from llm_energy_measure.core.compute_metrics import ComputeMetricsCollector
    from llm_energy_measure.core.energy import build_energy_metrics
    from llm_energy_measure.core.engines.transformers import TransformersEngine
    from llm_energy_measure.core.model_loader import HFModelLoader
    from llm_energy_measure.orchestration.environment import collect_environment
    from llm_energy_measure.orchestration.workload import prepare_prompts
    from llm_energy_measure.results import FileSystemRepository

    def backend(config: ExperimentConfig, ctx: ProcessContext, loaded: LoadedModel):  # type: ignore[no-untyped-def]
        return energy_backend_for(config, ctx, loaded)

    def prompts(config: ExperimentConfig, loaded):  # type: ignore[no-untyped-def]
        return prepare_prompts(
            config, loaded, num_shards=context.num_processes, shard_index=context.process_index
        )

    return Collaborators(
        loader=HFModelLoader(),
        engine=TransformersEngine(),
        energy_backend=backend,
        metrics=ComputeMetricsCollector(),
        repository=FileSystemRepository(results_dir),
        prompts=prompts,
        energy_builder=build_energy_metrics,
        environment=collect_environment,
    )


class _OwningBackend:
    """An energy backend plus the GPU collection it was given, closed together."""

    def __init__(self, inner: EnergyBackend, owned: Any) -> None:
        self._inner = inner
        self._owned = owned
        self.name = inner.name

    def measure_baseline(self, duration_s: float) -> dict[str, float]:
        return self._inner.measure_baseline(duration_s)

    def start(self) -> None:
        self._inner.start()

    def stop(self) -> EnergyReading:
        return self._inner.stop()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._owned.close()


def energy_backend_for(
    config: ExperimentConfig, ctx: ProcessContext, loaded: LoadedModel
) -> EnergyBackend:
    """The configured energy backend, covering only the GPU this process's model sits on
    (every visible GPU when the model is sharded with device_map)."""
    from llm_energy_measure.core.devices import get_gpus
    from llm_energy_measure.core.energy_backends import create_energy_backend

    if loaded.device.startswith("cuda:"):
        visible = get_gpus()
        index = int(loaded.device.split(":", 1)[1])
        if index < len(visible):
            inner = create_energy_backend(
                config.energy, host=ctx.hostname, is_host_leader=ctx.is_host_leader,
                gpus=visible.select([index]),
            )
            return _OwningBackend(inner, visible)
        visible.close()
    return create_energy_backend(
        config.energy, host=ctx.hostname, is_host_leader=ctx.is_host_leader
    )


def needs_launch(config: ExperimentConfig) -> bool:
    """True when the experiment runs as several processes (``accelerate launch``)."""
    return config.launch.num_processes > 1 or config.launch.num_machines > 1


def run_experiment(
    config: ExperimentConfig,
    *,
    experiment_id: str | None = None,
    results_dir: Path | str | None = None,
    config_path: Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    collaborators: Collaborators | None = None,
) -> AggregatedResult:
    """Run ``config``, store raw and aggregated results, return the latter.

    With ``launch.num_processes > 1`` (or several machines) the processes are started with
    ``accelerate launch`` and supervised (see ``launch_experiment``); otherwise the experiment
    runs in this process. The experiment's state moves pending -> running -> completed (once
    aggregated), or to failed (with the cause) / interrupted; raw results already written are
    never removed.
    """
    if collaborators is None and needs_launch(config):
        launched = launch_experiment(
            config, experiment_id=experiment_id, results_dir=results_dir,
            config_path=config_path, on_progress=on_progress,
        )
        if launched.aggregated is None:
            raise AggregationError(launched.note or "the experiment was not aggregated")
        return launched.aggregated
    from llm_energy_measure.config import config_hash
    from llm_energy_measure.security import make_experiment_id, sanitize_experiment_id
    from llm_energy_measure.state import StateStore

    base = effective_results_dir(config, results_dir)
    exp_id = sanitize_experiment_id(experiment_id or make_experiment_id(config.config_name))
    StateStore(base).create(
        exp_id,
        config_name=config.config_name,
        config_hash=config_hash(config),
        num_processes=1,
        config_path=str(config_path) if config_path else None,
    )
    return _run_in_process(config, exp_id, base, ProcessContext(), on_progress, collaborators)


def _run_in_process(
    config: ExperimentConfig,
    exp_id: str,
    base: Path,
    context: ProcessContext,
    on_progress: Callable[[str, int, int], None] | None,
    collaborators: Collaborators | None,
) -> AggregatedResult:
    """Measure one rank in this process and aggregate (the experiment has a single rank).

    A measurement failure marks the rank failed; an aggregation failure is recorded as the
    experiment's error only (the rank's result is complete, ``run --resume`` aggregates).
    """
    from llm_energy_measure.logging import add_experiment_log, experiment_log_file, remove_log_sink
    from llm_energy_measure.orchestration.aggregate import aggregate_and_complete
    from llm_energy_measure.orchestration.resume import save_resolved_config
    from llm_energy_measure.state import StateStore

    collab = collaborators or default_collaborators(base, context)
    states = StateStore(base)
    rank = context.process_index
    save_resolved_config(base, exp_id, config)
    sink = add_experiment_log(experiment_log_file(base, exp_id))
    try:
        states.mark_running(exp_id)
        states.mark_process(exp_id, rank, "running")
        try:
            raw = ExperimentOrchestrator(collab, context, on_progress=on_progress).run(
                config, exp_id)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            states.mark_process(exp_id, rank, "failed", error=str(exc))
            states.mark_failed(exp_id, str(exc))
            raise
        states.mark_process(exp_id, rank, "completed")
        aggregated = aggregate_and_complete(collab.repository, states, exp_id, [raw], 1)
        logger.info(f"experiment {exp_id} completed; results in {base}")
        return aggregated
    except KeyboardInterrupt:
        states.mark_interrupted(exp_id)
        raise
    finally:
        remove_log_sink(sink)


@dataclass(frozen=True)
class LaunchedRun:
    """A launched experiment that completed: its id, the aggregated result when this machine
    holds every rank's raw result (else None, and ``note`` says what to do)."""

    experiment_id: str
    aggregated: AggregatedResult | None
    note: str = ""


def launch_experiment(
    config: ExperimentConfig,
    *,
    experiment_id: str | None = None,
    results_dir: Path | str | None = None,
    config_path: Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> LaunchedRun:
    """Run ``config`` as ``launch.num_processes`` processes per machine under supervision.

    The id and state exist before the launch (so ``run --resume`` knows them) and the
    resolved config is saved beside the state. Raises DistributedError naming the failed
    rank and its cause when the launch fails (finished raw results are kept);
    KeyboardInterrupt after stopping every rank and marking the experiment interrupted.
    """
    from llm_energy_measure.config import config_hash
    from llm_energy_measure.orchestration.resume import save_resolved_config
    from llm_energy_measure.security import make_experiment_id, sanitize_experiment_id
    from llm_energy_measure.state import StateStore

    launch = config.launch
    if config.sharding.strategy == "tensor_parallel":
        raise ConfigurationError(
            "sharding.strategy 'tensor_parallel' with launch.num_processes > 1 is not supported "
            "by `run`: every process would measure a different shard of the prompts; use "
            "sharding.strategy: device_map with launch.num_processes: 1"
        )
    if launch.num_machines > 1 and not experiment_id:
        raise ConfigurationError(
            "launch.num_machines > 1: pass the same --experiment-id on every machine so that "
            "their processes join one experiment"
        )
    base = effective_results_dir(config, results_dir).absolute()
    exp_id = sanitize_experiment_id(experiment_id or make_experiment_id(config.config_name))
    states = StateStore(base)
    world = launch.num_processes * launch.num_machines
    digest = config_hash(config)
    try:
        states.create(
            exp_id, config_name=config.config_name, config_hash=digest,
            num_processes=world, config_path=str(config_path) if config_path else None,
        )
    except ConfigurationError:
        # Several machines sharing one results directory: the first one created the state.
        existing = states.load(exp_id)
        if launch.num_machines == 1 or existing is None or \
                existing.config_hash != digest or existing.num_processes != world:
            raise
    config_file = save_resolved_config(base, exp_id, config, machine_rank=launch.machine_rank)
    states.mark_running(exp_id)
    return _supervise(
        config, exp_id, base, config_file, local_processes=launch.num_processes,
        ranks=None, num_ranks=world, on_progress=on_progress,
    )


def resume_experiment(
    experiment_id: str,
    *,
    results_dir: Path | str | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> LaunchedRun:
    """Run only the ranks of ``experiment_id`` that have no completion marker, then aggregate.

    The config is the one saved when the experiment started. See ``orchestration.resume``
    for how the missing ranks are run; when none is missing (the aggregation failed or was
    interrupted) nothing is launched or measured: the stored raw results are aggregated.
    ConfigurationError when the id is unknown or the experiment already completed.
    """
    from llm_energy_measure.logging import add_experiment_log, experiment_log_file, remove_log_sink
    from llm_energy_measure.orchestration.resume import plan_resume, resolved_config_path
    from llm_energy_measure.state import StateStore
    from llm_energy_measure.state.heartbeat import clear_heartbeats

    base = effective_results_dir(flag_value=results_dir).absolute()
    plan = plan_resume(base, experiment_id)
    states = StateStore(base)
    for rank in plan.completed_ranks:
        states.mark_process(plan.experiment_id, rank, "completed")
    states.mark_running(plan.experiment_id)
    clear_heartbeats(base, plan.experiment_id)
    if not plan.missing_ranks:
        logger.info(f"resuming {plan.experiment_id}: every rank's result is stored; "
                    "aggregating them")
        sink = add_experiment_log(experiment_log_file(base, plan.experiment_id))
        try:
            return _collect(plan.experiment_id, base, plan.num_processes)
        finally:
            remove_log_sink(sink)
    logger.info(f"resuming {plan.experiment_id}: running ranks {list(plan.missing_ranks)} of "
                f"{plan.num_processes}")
    if not needs_launch(plan.config) and plan.num_processes == 1:
        aggregated = _run_in_process(
            plan.config, plan.experiment_id, base, ProcessContext(), on_progress, None
        )
        return LaunchedRun(plan.experiment_id, aggregated)
    return _supervise(
        plan.config, plan.experiment_id, base, resolved_config_path(base, plan.experiment_id),
        local_processes=len(plan.missing_ranks), ranks=plan.missing_ranks,
        num_ranks=plan.num_processes, on_progress=on_progress,
    )


def _supervise(
    config: ExperimentConfig,
    exp_id: str,
    base: Path,
    config_file: Path,
    *,
    local_processes: int,
    ranks: tuple[int, ...] | None,
    num_ranks: int,
    on_progress: Callable[[str, int, int], None] | None,
) -> LaunchedRun:
    from llm_energy_measure.logging import add_experiment_log, experiment_log_file, remove_log_sink
    from llm_energy_measure.orchestration.launch.accelerate import LaunchSpec, Supervisor

    spec = LaunchSpec(
        config_file=config_file, experiment_id=exp_id, results_dir=base, launch=config.launch,
        local_processes=local_processes, ranks=ranks, num_ranks=num_ranks,
    )
    supervisor = Supervisor(spec, on_progress=on_progress)
    sink = add_experiment_log(experiment_log_file(base, exp_id))
    try:
        logger.info(f"experiment {exp_id}: launching {local_processes} process(es) on this "
                    f"machine; ranks' output in {supervisor.log_file}")
        outcome = supervisor.run()
        if outcome.status != "completed" and outcome.failed_rank is None and \
                not _missing_ranks(base, exp_id, num_ranks):
            raise AggregationError(
                f"experiment {exp_id}: every rank finished, then it failed: {outcome.cause}; "
                f"the raw results are kept; `llm-energy-measure run --resume {exp_id}` "
                f"aggregates them again (ranks' output: {outcome.log_file})"
            )
        if outcome.status != "completed":
            raise DistributedError(
                f"experiment {exp_id} failed: "
                + (f"rank {outcome.failed_rank}: " if outcome.failed_rank is not None else "")
                + f"{outcome.cause}; finished raw results are kept; rerun the rest with "
                f"`llm-energy-measure run --resume {exp_id}` (ranks' output: "
                f"{outcome.log_file})"
            )
        return _collect(exp_id, base, num_ranks)
    finally:
        remove_log_sink(sink)


def _missing_ranks(base: Path, exp_id: str, num_ranks: int) -> list[int]:
    """Ranks of the experiment without a completion marker in ``base``."""
    from llm_energy_measure.results import FileSystemRepository

    return sorted(set(range(num_ranks)) - FileSystemRepository(base).completed_ranks(exp_id))


def _collect(exp_id: str, base: Path, num_ranks: int) -> LaunchedRun:
    """The aggregated result rank 0 wrote; aggregate here if it could not (shared storage
    filled by another machine meanwhile) or nothing was launched (a resume with every rank
    done)."""
    from llm_energy_measure.orchestration.aggregate import aggregate_if_complete
    from llm_energy_measure.results import FileSystemRepository
    from llm_energy_measure.state import StateStore

    repo = FileSystemRepository(base)
    aggregated = repo.load_aggregated(exp_id)
    if aggregated is None:
        done = aggregate_if_complete(repo, StateStore(base), exp_id, num_ranks)
        if done.aggregated is None:
            return LaunchedRun(exp_id, None, note=(
                f"experiment {exp_id}: this machine's ranks completed; raw results of ranks "
                f"{list(done.missing_ranks)} are on the other machines: copy them into "
                f"{repo.raw_dir / exp_id} and run `llm-energy-measure aggregate {exp_id}`"))
        aggregated = done.aggregated
    logger.info(f"experiment {exp_id} completed; results in {base}")
    return LaunchedRun(exp_id, aggregated)
