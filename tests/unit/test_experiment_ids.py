"""An id with stored results is taken, state file or not: finished results are never overwritten.

`run --experiment-id ID` of an id whose raw/aggregated files existed but whose state file was
missing used to measure again and overwrite them without a word.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.factories import make_raw
from typer.testing import CliRunner

from llm_energy_measure.cli import app
from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration.launch.rank import agree_on_experiment_id
from llm_energy_measure.results import FileSystemRepository, aggregate_results
from llm_energy_measure.state import StateStore

runner = CliRunner()


def _stored(base: Path, exp_id: str, *, aggregated: bool = True) -> FileSystemRepository:
    repo = FileSystemRepository(base)
    raw = make_raw(exp_id, 0, 1)
    repo.save_raw(raw)
    if aggregated:
        repo.save_aggregated(aggregate_results([raw]))
    return repo


def _digest(base: Path) -> str:
    files = sorted(p for p in base.rglob("*") if p.is_file() and "summary" not in p.name)
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def test_creating_state_for_an_id_with_raw_results_is_refused(tmp_path: Path) -> None:
    repo = _stored(tmp_path, "done-1", aggregated=False)
    with pytest.raises(ConfigurationError) as caught:
        StateStore(tmp_path).create("done-1", config_name="x")
    assert str(caught.value) == (
        f"experiment id 'done-1' is taken: results exist at {repo.raw_dir / 'done-1'}; "
        "choose another id (stored results are never overwritten)")
    assert StateStore(tmp_path).load("done-1") is None


def test_an_aggregated_file_alone_takes_the_id(tmp_path: Path) -> None:
    repo = _stored(tmp_path, "done-2")
    for path in (repo.raw_dir / "done-2").iterdir():
        path.unlink()
    with pytest.raises(ConfigurationError, match=r"is taken: results exist at .*done-2\.json"):
        StateStore(tmp_path).create("done-2", config_name="x")


def test_a_fresh_id_is_created(tmp_path: Path) -> None:
    _stored(tmp_path, "other")
    state = StateStore(tmp_path).create("new-1", config_name="x", num_processes=2)
    assert (state.status, len(state.processes)) == ("pending", 2)


@pytest.mark.parametrize("processes", [1, 2])
def test_run_with_the_id_of_stored_results_exits_2_and_changes_nothing(
        tmp_path: Path, processes: int) -> None:
    base = tmp_path / "results"
    repo = _stored(base, "done-3")
    before = _digest(base)
    config = tmp_path / "c.yaml"
    config.write_text(f"launch:\n  num_processes: {processes}\nprompts:\n  num_prompts: 4\n")
    result = runner.invoke(app, ["run", str(config), "--experiment-id", "done-3",
                                 "--results-dir", str(base)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: experiment id 'done-3' is taken: results exist at "
        f"{repo.raw_dir.absolute() / 'done-3' if processes > 1 else repo.raw_dir / 'done-3'}; "
        "choose another id (stored results are never overwritten)")
    assert _digest(base) == before
    assert StateStore(base).load("done-3") is None


@dataclass
class _Info:
    is_main: bool = True


class _SoloGroup:
    """A control group of one rank: broadcast returns what rank 0 sent."""

    info = _Info()

    def broadcast(self, message: tuple[str, str]) -> tuple[str, str]:
        return message


def test_a_directly_launched_rank_refuses_an_id_with_stored_results(tmp_path: Path) -> None:
    _stored(tmp_path, "done-4")
    with pytest.raises(ConfigurationError, match=(
            "rank 0 could not set up the experiment: experiment id 'done-4' is taken")):
        agree_on_experiment_id(_SoloGroup(), "done-4", ExperimentConfig(), tmp_path, 2,  # type: ignore[arg-type]
                               tmp_path / "c.yaml")
    assert StateStore(tmp_path).load("done-4") is None
