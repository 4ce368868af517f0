"""Resuming a launched experiment: which ranks are missing, with which config.

How a resume works: the parent saved the resolved config before launching
(``<results>/state/<id>.launch/config.json``). A rank is done when its completion marker
exists (its raw result was fully written). The experiment is done once its aggregated
result exists; when every rank is done but the aggregation is not (it failed, or was
interrupted), ``run --resume ID`` launches nothing and only aggregates. Otherwise it
launches one process per missing rank and nothing else: launched process ``i`` measures the
shard of missing rank ``ranks[i]`` out of the original ``num_processes`` shards, so every
prompt is measured exactly once over all attempts (no duplicated or lost request ids). The
resumed ranks measure a later window than the ranks that finished before; aggregation then
reports that the windows do not overlap, and counts host-level energy measured in separate
windows once per window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llm_energy_measure.bounded import read_regular_file
from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.constants import MAX_CONFIG_BYTES
from llm_energy_measure.exceptions import ConfigurationError, ResultsError
from llm_energy_measure.security import first_secret_key
from llm_energy_measure.storage.atomic import atomic_write_text
from llm_energy_measure.storage.layout import LAUNCH_DIR_SUFFIX, ResultsLayout

if TYPE_CHECKING:
    from llm_energy_measure.storage.workspace import Workspace


def resolved_config_path(base_dir: Path, experiment_id: str) -> Path:
    """Where the resolved config of a launched experiment is saved."""
    return ResultsLayout(base_dir).resolved_config(experiment_id)


def save_resolved_config(
    base_dir: Path, experiment_id: str, config: ExperimentConfig, *, machine_rank: int = 0
) -> Path:
    """Store the fully resolved config (defaults, presets, overrides applied) atomically.

    Machines other than machine 0 of a multi-node run (whose configs differ only in
    ``launch.machine_rank``) write ``config.machine<k>.json`` beside it, so that machines
    sharing a results directory do not replace each other's file.

    The file never holds a secret: validation refuses values that look like credentials,
    and a value that redaction would change here (it equals the value of a secret
    environment variable such as ``HF_TOKEN``, which validation cannot know) is refused with
    ConfigurationError naming the key, before anything is written. Refusing, rather than
    writing a redacted copy, keeps the ranks (and a later resume) on the exact config that
    was validated; the tokens themselves reach the ranks through their environment.
    """
    path = ResultsLayout(base_dir).resolved_config(experiment_id, machine_rank)
    data = config.model_dump(mode="json")
    key = first_secret_key(data)
    if key is not None:
        raise ConfigurationError(
            f"{key}: the value is a secret (it is the value of a secret environment variable "
            "or looks like a credential) and would be saved with the experiment; a config "
            "never holds credentials"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, config.model_dump_json(indent=2) + "\n")
    return path


def load_resolved_config(path: Path) -> ExperimentConfig:
    """Read a config saved by ``save_resolved_config`` (or any full config JSON/YAML file)."""
    from llm_energy_measure.config import load_config

    if path.suffix == ".json" and path.name.startswith("config") and \
            path.parent.name.endswith(LAUNCH_DIR_SUFFIX):
        try:
            return ExperimentConfig.model_validate(
                json.loads(read_regular_file(path, MAX_CONFIG_BYTES)))
        except FileNotFoundError:
            raise ConfigurationError(f"--config {path}: file not found") from None
        except OSError as exc:
            raise ConfigurationError(f"--config {path}: cannot be read ({exc.strerror})") \
                from None
        except (ValueError, RecursionError) as exc:
            raise ConfigurationError(f"--config {path}: not a valid resolved config ({exc})") \
                from None
    return load_config(path)


@dataclass(frozen=True)
class ResumePlan:
    """What a resume runs: ``missing_ranks`` of ``num_processes`` under ``config`` (no
    missing ranks: nothing to run, only the aggregation)."""

    experiment_id: str
    config: ExperimentConfig
    num_processes: int
    missing_ranks: tuple[int, ...]
    completed_ranks: tuple[int, ...]


def plan_resume(base_dir: Path | Workspace, experiment_id: str) -> ResumePlan:
    """The ranks of ``experiment_id`` still to run (none: only aggregate), and its saved config.

    Raises ConfigurationError when the id is unknown, the experiment already completed (it
    is marked so, or every rank is done and its aggregated result exists), it was not launched
    by ``run`` (no saved config), or ranks are missing and it spans several machines.
    """
    from llm_energy_measure.security import sanitize_experiment_id
    from llm_energy_measure.storage.workspace import Workspace

    workspace = base_dir if isinstance(base_dir, Workspace) else Workspace(base_dir)
    base_dir = workspace.root
    exp_id = sanitize_experiment_id(experiment_id)
    try:
        state = workspace.states.load(exp_id)
    except ResultsError as exc:
        raise ConfigurationError(str(exc)) from None
    if state is None:
        raise ConfigurationError(
            f"--resume {exp_id}: no such experiment in {base_dir}/state; see "
            "`llm-energy-measure results list --all` (or pass the right --results-dir)"
        )
    repo = workspace.repository
    missing = repo.missing_ranks(exp_id, state.num_processes)
    done = sorted(set(range(state.num_processes)) - set(missing))
    has_aggregated = repo.has_aggregated(exp_id)
    if state.status == "completed" or (not missing and has_aggregated):
        hint = "" if has_aggregated or missing else (
            f"; it has no aggregated result: run `llm-energy-measure aggregate {exp_id}`")
        raise ConfigurationError(
            f"--resume {exp_id}: the experiment already completed; nothing to resume{hint}"
        )
    config_file = resolved_config_path(base_dir, exp_id)
    if not config_file.is_file():
        raise ConfigurationError(
            f"--resume {exp_id}: no saved config at {config_file}; only experiments started "
            "by `llm-energy-measure run` can be resumed"
        )
    config = load_resolved_config(config_file)
    if missing and config.launch.num_machines > 1:
        raise ConfigurationError(
            f"--resume {exp_id}: the experiment ran on {config.launch.num_machines} machines; "
            "resume runs on one machine only: rerun it with a new experiment id"
        )
    return ResumePlan(exp_id, config, state.num_processes, missing, tuple(done))
