"""Running a whole experiment: id, state, the orchestrator, aggregation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from llm_energy_measure.config import effective_results_dir
from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.types import EnergyReading, LoadedModel
from llm_energy_measure.domain import AggregatedResult
from llm_energy_measure.orchestration.runner import (
    Collaborators,
    ExperimentOrchestrator,
    ProcessContext,
)
from llm_energy_measure.protocols import EnergyBackend


def default_collaborators(results_dir: Path, context: ProcessContext) -> Collaborators:
    """The real implementations of every protocol, as used by ``run``."""
    from llm_energy_measure.core.compute_metrics import ComputeMetricsCollector
    from llm_energy_measure.core.energy import build_energy_metrics
    from llm_energy_measure.core.inference import TransformersEngine
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


def run_experiment(
    config: ExperimentConfig,
    *,
    experiment_id: str | None = None,
    results_dir: Path | str | None = None,
    config_path: Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    collaborators: Collaborators | None = None,
) -> AggregatedResult:
    """Run ``config`` in this process, store raw and aggregated results, return the latter.

    The experiment's state moves pending -> running -> completed, or to failed (with the
    cause) / interrupted; raw results already written are never removed.
    """
    from llm_energy_measure.config import config_hash
    from llm_energy_measure.logging import add_experiment_log, experiment_log_file, remove_log_sink
    from llm_energy_measure.results import aggregate_results
    from llm_energy_measure.security import make_experiment_id, sanitize_experiment_id
    from llm_energy_measure.state import StateStore

    base = effective_results_dir(config, results_dir)
    exp_id = sanitize_experiment_id(experiment_id or make_experiment_id(config.config_name))
    context = ProcessContext()
    collab = collaborators or default_collaborators(base, context)
    states = StateStore(base)
    states.create(
        exp_id,
        config_name=config.config_name,
        config_hash=config_hash(config),
        num_processes=1,
        config_path=str(config_path) if config_path else None,
    )
    sink = add_experiment_log(experiment_log_file(base, exp_id))
    try:
        states.mark_running(exp_id)
        states.mark_process(exp_id, 0, "running")
        raw = ExperimentOrchestrator(collab, context, on_progress=on_progress).run(config, exp_id)
        states.mark_process(exp_id, 0, "completed")
        aggregated = aggregate_results([raw], expected_processes=1)
        collab.repository.save_aggregated(aggregated)
        states.mark_completed(exp_id, aggregated=True)
        logger.info(f"experiment {exp_id} completed; results in {base}")
        return aggregated
    except KeyboardInterrupt:
        states.mark_interrupted(exp_id)
        raise
    except BaseException as exc:
        states.mark_process(exp_id, 0, "failed", error=str(exc))
        states.mark_failed(exp_id, str(exc))
        raise
    finally:
        remove_log_sink(sink)
