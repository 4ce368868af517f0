"""start_experiment: id, state and resolved config together, or nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.orchestration.start import start_experiment
from llm_energy_measure.state import StateStore
from llm_energy_measure.storage.workspace import Workspace


def test_a_start_creates_a_running_state_and_the_resolved_config(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    exp_id, config_file = start_experiment(
        ws, ExperimentConfig(config_name="c"), experiment_id="e1", num_ranks=2, config_path=None)
    assert exp_id == "e1" and config_file == ws.layout.resolved_config("e1")
    assert ExperimentConfig.model_validate_json(config_file.read_text()).config_name == "c"
    state = StateStore(tmp_path).load("e1")
    assert state is not None and (state.status, state.num_processes) == ("running", 2)


def test_a_start_that_fails_half_way_leaves_no_state(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    launch_dir = ws.layout.launch_dir("e1")
    launch_dir.parent.mkdir(parents=True)
    launch_dir.write_text("a file where the launch folder must go")  # like a full disk: the
    with pytest.raises(OSError):  # resolved config cannot be written
        start_experiment(ws, ExperimentConfig(), experiment_id="e1", num_ranks=1,
                         config_path=None)
    assert StateStore(tmp_path).load("e1") is None  # the id can be used again
