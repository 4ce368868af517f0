"""Planning `run --resume`: which ranks are missing, which config, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.factories import make_raw

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration.resume import (
    load_resolved_config,
    plan_resume,
    resolved_config_path,
    save_resolved_config,
)
from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.state import StateStore


def _experiment(base: Path, *, done: tuple[int, ...], num: int = 3, **cfg: object) -> str:
    config = ExperimentConfig.model_validate({"config_name": "r", **cfg})
    StateStore(base).create("exp-1", config_name="r", num_processes=num)
    save_resolved_config(base, "exp-1", config)
    repo = FileSystemRepository(base, durable=False)
    for rank in done:
        repo.save_raw(make_raw("exp-1", rank, num))
    return "exp-1"


def test_missing_ranks_are_those_without_a_completion_marker(tmp_path: Path) -> None:
    _experiment(tmp_path, done=(0, 2), num=4, launch={"num_processes": 4})
    # A raw file without its marker (killed between the two writes) does not count.
    (tmp_path / "raw" / "exp-1" / "process_3.json").write_text("{}")
    plan = plan_resume(tmp_path, "exp-1")
    assert plan.missing_ranks == (1, 3) and plan.completed_ranks == (0, 2)
    assert plan.num_processes == 4 and plan.config.launch.num_processes == 4


def test_saved_config_round_trips_exactly(tmp_path: Path) -> None:
    config = ExperimentConfig.model_validate(
        {"config_name": "x", "decoder": {"preset": "benchmark", "max_new_tokens": 7},
         "launch": {"num_processes": 2, "process_timeout_s": 12}})
    path = save_resolved_config(tmp_path, "exp-9", config)
    assert path == resolved_config_path(tmp_path, "exp-9")
    assert load_resolved_config(path) == config
    other = save_resolved_config(tmp_path, "exp-9", config, machine_rank=1)
    assert other.name == "config.machine1.json" and load_resolved_config(other) == config


@pytest.mark.parametrize("setup, needle", [
    ("unknown", "no such experiment"),
    ("completed", "already completed"),
    ("no_config", "no saved config"),
    ("multinode", "one machine only"),
])
def test_resume_refuses_with_a_clear_reason(tmp_path: Path, setup: str, needle: str) -> None:
    if setup == "completed":
        _experiment(tmp_path, done=(0,), num=1)
        StateStore(tmp_path).mark_completed("exp-1")
    elif setup == "no_config":
        StateStore(tmp_path).create("exp-1", config_name="r", num_processes=2)
    elif setup == "multinode":
        _experiment(tmp_path, done=(), num=2,
                    launch={"num_processes": 1, "num_machines": 2, "machine_rank": 0})
    with pytest.raises(ConfigurationError, match=needle):
        plan_resume(tmp_path, "exp-1")


def test_a_damaged_saved_config_is_a_configuration_error(tmp_path: Path) -> None:
    _experiment(tmp_path, done=(), num=2)
    resolved_config_path(tmp_path, "exp-1").write_text(json.dumps({"launch": {"bogus": 1}}))
    with pytest.raises(ConfigurationError, match="not a valid resolved config"):
        plan_resume(tmp_path, "exp-1")


def test_cli_resume_takes_no_config_and_run_needs_one(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from llm_energy_measure.cli import app

    runner = CliRunner()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("config_name: c\n")
    both = runner.invoke(app, ["run", str(cfg), "--resume", "exp-1"])
    assert both.exit_code == 2 and "--resume uses the experiment's saved config" in both.output
    neither = runner.invoke(app, ["run"])
    assert neither.exit_code == 2 and "--resume ID" in neither.output
    unknown = runner.invoke(app, ["run", "--resume", "exp-1", "--results-dir", str(tmp_path)])
    assert unknown.exit_code == 2 and "no such experiment" in unknown.output
    # A dry run never runs anything: with --resume it is refused, not ignored.
    dry = runner.invoke(app, ["run", "--resume", "exp-1", "--dry-run",
                              "--results-dir", str(tmp_path)])
    assert dry.exit_code == 2 and "--dry-run" in dry.output
