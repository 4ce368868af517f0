"""The real implementations of the orchestrator's collaborators, as ``run`` uses them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.types import LoadedModel, Prompt
from llm_energy_measure.orchestration.orchestrator import Collaborators, ProcessContext
from llm_energy_measure.protocols import EnergyBackend
from llm_energy_measure.storage.workspace import Workspace

if TYPE_CHECKING:
    from llm_energy_measure.core.devices import GPUs


def energy_backend_for(
    config: ExperimentConfig, ctx: ProcessContext, loaded: LoadedModel, gpus: GPUs
) -> EnergyBackend:
    """The configured energy backend, covering only the GPU this process's model sits on
    (every visible GPU when the model is sharded with device_map). ``gpus`` is the run's
    probed collection: the backend measures a subset of it and does not close it."""
    from llm_energy_measure.core.energy_backends import create_energy_backend

    selected = gpus
    if loaded.device.startswith("cuda:"):
        index = int(loaded.device.split(":", 1)[1])
        selected = gpus.select([index]) if index < len(gpus) else gpus.select([])
    return create_energy_backend(
        config.energy, host=ctx.hostname, is_host_leader=ctx.is_host_leader, gpus=selected,
    )


def default_collaborators(
    workspace: Workspace, context: ProcessContext, config: ExperimentConfig
) -> Collaborators:
    """The engine ``config.engine`` names and the real measuring components. The GPUs are
    probed once (one NVML session per run) and closed with the collaborators."""
    from llm_energy_measure.core.compute_metrics import ComputeEstimator
    from llm_energy_measure.core.devices import get_gpus
    from llm_energy_measure.core.energy import build_energy_metrics
    from llm_energy_measure.core.engines import create_engine
    from llm_energy_measure.core.memory import MemoryWindow
    from llm_energy_measure.orchestration.environment import collect_environment
    from llm_energy_measure.orchestration.workload import prepare_prompts

    engine = create_engine(config.engine)
    gpus = get_gpus()

    def backend(cfg: ExperimentConfig, ctx: ProcessContext, loaded: LoadedModel) -> EnergyBackend:
        return energy_backend_for(cfg, ctx, loaded, gpus)

    def prompts(cfg: ExperimentConfig, loaded: LoadedModel) -> tuple[list[Prompt], list[str]]:
        return prepare_prompts(
            cfg, loaded, num_shards=context.num_processes, shard_index=context.process_index
        )

    return Collaborators(
        engine=engine,
        energy_backend=backend,
        memory=MemoryWindow(),
        compute=ComputeEstimator(),
        repository=workspace.repository,
        prompts=prompts,
        energy_builder=build_energy_metrics,
        environment=lambda: collect_environment(gpus),
        close=gpus.close,
    )
