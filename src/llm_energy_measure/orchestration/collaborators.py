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
    probed collection: the backend measures a subset of it and does not close it.

    A served model on another host is not measured by this host's devices: its energy is
    null with the reason, unless an energy source for it is configured (``prometheus``)."""
    from llm_energy_measure.core.energy_backends import create_energy_backend

    if config.engine == "openai" and config.energy.backend not in ("prometheus", "none"):
        from llm_energy_measure.core.energy_backends.null import RemoteEndpointBackend
        from llm_energy_measure.core.serving.session import is_local

        base_url = getattr(loaded.model, "base_url", "")
        if not is_local(base_url):
            return RemoteEndpointBackend(base_url)

    selected = gpus
    own_pids = None
    server = getattr(loaded.model, "managed", None)
    if server is not None and getattr(server, "pid", None) is not None:
        import os

        from llm_energy_measure.core.serving.server import group_members

        # The managed server's processes are this run's, not foreign ones on the GPU.
        own_pids = [os.getpid(), *group_members(server.pid)]
    if loaded.device.startswith("cuda:"):
        index = int(loaded.device.split(":", 1)[1])
        selected = gpus.select([index]) if index < len(gpus) else gpus.select([])
    return create_energy_backend(
        config.energy, host=ctx.hostname, is_host_leader=ctx.is_host_leader, gpus=selected,
        own_pids=own_pids,
    )


def default_collaborators(
    workspace: Workspace, context: ProcessContext, config: ExperimentConfig,
    experiment_id: str | None = None,
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

    options: dict[str, object] = {}
    if config.engine == "openai" and experiment_id is not None:
        layout = workspace.layout
        options = {"records_path": layout.requests_file(experiment_id, context.process_index),
                   "server_log": layout.server_log(experiment_id)}
    engine = create_engine(config.engine, **options)
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
