"""Creating an experiment: its id, its state and the resolved config its ranks read."""

from __future__ import annotations

from pathlib import Path

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.storage.workspace import Workspace


def start_experiment(
    workspace: Workspace,
    config: ExperimentConfig,
    *,
    experiment_id: str | None,
    num_ranks: int,
    config_path: Path | None,
    joinable: bool = False,
) -> tuple[str, Path]:
    """Create the experiment: its id, its state (pending -> running) and the resolved config
    saved for the ranks and for resume. Returns the id and the saved config's path.

    ``joinable``: another machine of the same multi-node run may have created the state
    already (same config hash and rank count): join it. When set-up fails half-way (e.g. the
    disk is full), the state it created is removed, so no unusable state is left behind.
    """
    from llm_energy_measure.config import config_hash
    from llm_energy_measure.orchestration.resume import save_resolved_config
    from llm_energy_measure.security import make_experiment_id, sanitize_experiment_id

    states = workspace.states
    exp_id = sanitize_experiment_id(experiment_id or make_experiment_id(config.config_name))
    digest = config_hash(config)
    created = False
    try:
        states.create(
            exp_id, config_name=config.config_name, config_hash=digest,
            num_processes=num_ranks, config_path=str(config_path) if config_path else None,
        )
        created = True
    except ConfigurationError:
        existing = states.load(exp_id)
        if not joinable or existing is None or existing.config_hash != digest or \
                existing.num_processes != num_ranks:
            raise
        repo = workspace.repository
        if existing.status not in ("pending", "running") or existing.aggregated or \
                repo.completed_ranks(exp_id) or repo.has_aggregated(exp_id):
            raise ConfigurationError(
                f"experiment {exp_id} already has results ({existing.status}); a multi-node "
                "run joins only an experiment that has not measured yet: choose a new "
                "--experiment-id, or `llm-energy-measure run --resume` it"
            ) from None
    try:
        config_file = save_resolved_config(
            workspace.root, exp_id, config, machine_rank=config.launch.machine_rank)
        states.mark_running(exp_id)
    except BaseException:
        if created:
            states.delete(exp_id)
        raise
    return exp_id, config_file
