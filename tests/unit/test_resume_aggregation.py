"""An experiment is completed only once aggregated: every rank done but no aggregated result
(aggregation failed or was interrupted) is resumable, and the resume only aggregates; a
finished rank is never marked failed because of the aggregation. Fakes only: no model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.factories import make_raw

import llm_energy_measure.orchestration.experiment as experiment
import llm_energy_measure.results as results
from llm_energy_measure.config.models import ExperimentConfig, LaunchConfig
from llm_energy_measure.exceptions import AggregationError, ConfigurationError, DistributedError
from llm_energy_measure.orchestration.aggregate import aggregate_if_complete
from llm_energy_measure.orchestration.launch.accelerate import LaunchSpec, Supervisor
from llm_energy_measure.orchestration.launch.base import LaunchOutcome, RankJob
from llm_energy_measure.orchestration.resume import plan_resume, save_resolved_config
from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.state import ExperimentState, StateStore, derive_status

EXP = "exp-1"


def _repo(base: Path) -> FileSystemRepository:
    return FileSystemRepository(base, durable=False)


def _all_ranks_done(base: Path, num: int, *, status: str = "interrupted") -> None:
    """State as left by a run whose every rank stored its result (raw + marker) before the
    aggregation stopped: ranks completed, experiment ``status``, no aggregated result."""
    launch = {"num_processes": num} if num > 1 else {}
    config = ExperimentConfig.model_validate({"config_name": "r", "launch": launch})
    store = StateStore(base)
    store.create(EXP, config_name="r", num_processes=num)
    save_resolved_config(base, EXP, config)
    store.mark_running(EXP)
    for rank in range(num):
        _repo(base).save_raw(make_raw(EXP, rank, num))
        store.mark_process(EXP, rank, "completed")
    if status == "interrupted":
        store.mark_interrupted(EXP)
    elif status == "failed":
        store.mark_failed(EXP, "aggregation failed: AggregationError: boom")


class _RefusingLauncher:
    """A launcher that must not be used."""

    def launch(self, job: RankJob, on_progress: Any = None) -> LaunchOutcome:
        raise AssertionError("the resume measured or launched again")


class _StoringLauncher:
    """Stands in for a launch: stores a synthetic raw result (and its marker) for each of
    ``ranks`` as the rank worker would, then reports ``outcome``."""

    def __init__(self, ranks: tuple[int, ...] | None = None,
                 outcome: LaunchOutcome | None = None) -> None:
        self.ranks = ranks
        self.outcome = outcome or LaunchOutcome("completed", 0)
        self.calls = 0

    def launch(self, job: RankJob, on_progress: Any = None) -> LaunchOutcome:
        self.calls += 1
        for rank in self.ranks if self.ranks is not None else job.local_ranks():
            job.workspace.repository.save_raw(make_raw(job.experiment_id, rank, job.num_ranks))
            job.workspace.states.mark_process(job.experiment_id, rank, "completed")
        return self.outcome


def _raw_files(base: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((base / "raw" / EXP).iterdir())}


# ----------------------------------------------------------------------------- status


def _state(*statuses: str, status: str = "running", aggregated: bool = False) -> ExperimentState:
    from datetime import datetime, timezone

    state = ExperimentState.new(EXP, config_name="c", num_processes=len(statuses),
                                now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    for rank, s in enumerate(statuses):
        state.processes[rank].status = s  # type: ignore[assignment]
    state.status = status  # type: ignore[assignment]
    state.aggregated = aggregated
    return state


def test_last_rank_completed_is_not_completed_until_aggregated(tmp_path: Path) -> None:
    assert derive_status(_state("completed", "completed"))[0] == "running"
    assert derive_status(_state("completed", "completed", aggregated=True)) == ("completed", None)
    # A completed mark without aggregation (older versions wrote it) goes back to running.
    assert derive_status(_state("completed", status="completed"))[0] == "running"
    # An aggregation failure keeps its cause.
    failed = _state("completed", status="failed")
    failed.error = "aggregation failed: x"
    assert derive_status(failed) == ("failed", "aggregation failed: x")

    store = StateStore(tmp_path)
    store.create(EXP, config_name="c", num_processes=2)
    store.mark_running(EXP)
    store.mark_process(EXP, 0, "completed")
    state = store.mark_process(EXP, 1, "completed")
    assert state.status == "running" and not state.aggregated
    # Ctrl+C during the aggregation: interrupted, so it can be resumed.
    assert store.mark_interrupted(EXP).status == "interrupted"
    done = store.mark_completed(EXP, aggregated=True)
    assert (done.status, done.aggregated) == ("completed", True)


def test_plan_for_every_rank_done_without_aggregation_is_aggregate_only(tmp_path: Path) -> None:
    _all_ranks_done(tmp_path, 3)
    plan = plan_resume(tmp_path, EXP)
    assert plan.missing_ranks == () and plan.completed_ranks == (0, 1, 2)


# ----------------------------------------------------------------------------- resume


@pytest.mark.parametrize("num", [1, 3])
@pytest.mark.parametrize("left", ["interrupted", "failed"])
def test_resume_with_every_rank_done_only_aggregates(tmp_path: Path, num: int, left: str) -> None:
    _all_ranks_done(tmp_path, num, status=left)
    before = _raw_files(tmp_path)

    done = experiment.resume_experiment(EXP, results_dir=tmp_path, launcher=_RefusingLauncher())

    assert done.aggregated is not None and len(done.aggregated.processes) == num
    assert _repo(tmp_path).has_aggregated(EXP)
    assert _raw_files(tmp_path) == before  # nothing measured again or overwritten
    state = StateStore(tmp_path).load(EXP)
    assert state is not None
    assert (state.status, state.aggregated, state.error) == ("completed", True, None)
    assert all(p.status == "completed" for p in state.processes.values())
    # Now there is nothing left to resume.
    with pytest.raises(ConfigurationError, match="already completed"):
        plan_resume(tmp_path, EXP)


def test_cli_run_resume_aggregates_without_relaunching(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from llm_energy_measure.cli import app

    _all_ranks_done(tmp_path, 2, status="failed")
    before = _raw_files(tmp_path)
    out = CliRunner().invoke(app, ["run", "--resume", EXP, "--results-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert _raw_files(tmp_path) == before  # nothing was measured again
    state = StateStore(tmp_path).load(EXP)
    assert state is not None and state.status == "completed" and state.aggregated
    again = CliRunner().invoke(app, ["run", "--resume", EXP, "--results-dir", str(tmp_path)])
    assert again.exit_code == 2 and "already completed" in again.output


def test_completed_without_aggregated_result_points_to_aggregate(tmp_path: Path) -> None:
    _all_ranks_done(tmp_path, 1)
    StateStore(tmp_path).mark_completed(EXP)  # as older versions left it
    with pytest.raises(ConfigurationError,
                       match=rf"already completed.*llm-energy-measure aggregate {EXP}"):
        plan_resume(tmp_path, EXP)


# ----------------------------------------------------------------------------- in process


@pytest.mark.parametrize("problem", [AggregationError("ranks disagree"), KeyboardInterrupt()])
def test_in_process_aggregation_problem_keeps_the_rank_completed_and_resume_aggregates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: BaseException
) -> None:
    real = results.aggregate_results

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise problem

    monkeypatch.setattr(results, "aggregate_results", broken)
    config = ExperimentConfig.model_validate({"config_name": "r"})
    with pytest.raises(type(problem)):
        experiment.run_experiment(config, experiment_id=EXP, results_dir=tmp_path,
                                  launcher=_StoringLauncher())
    state = StateStore(tmp_path).load(EXP)
    assert state is not None and state.processes[0].status == "completed"
    assert not state.aggregated and state.status != "completed"
    if isinstance(problem, KeyboardInterrupt):
        assert state.status == "interrupted"
    else:
        assert state.status == "failed"
        assert state.error == "aggregation failed: AggregationError: ranks disagree"
    before = _raw_files(tmp_path)

    monkeypatch.setattr(results, "aggregate_results", real)
    done = experiment.resume_experiment(EXP, results_dir=tmp_path, launcher=_RefusingLauncher())
    assert done.aggregated is not None
    assert _raw_files(tmp_path) == before
    state = StateStore(tmp_path).load(EXP)
    assert state is not None and (state.status, state.aggregated) == ("completed", True)


# ----------------------------------------------------------------------------- launched


def _spec(base: Path, num: int) -> LaunchSpec:
    return LaunchSpec(config_file=base / "c.json", experiment_id=EXP, results_dir=base,
                      launch=LaunchConfig(num_processes=num), local_processes=num)


def test_supervisor_blames_the_aggregation_not_a_finished_rank(tmp_path: Path) -> None:
    _all_ranks_done(tmp_path, 2, status="failed")  # rank 0 recorded its aggregation error
    supervisor = Supervisor(_spec(tmp_path, 2))
    outcome = supervisor._ended(1)
    assert (outcome.status, outcome.failed_rank) == ("failed", None)
    assert outcome.cause == "aggregation failed: AggregationError: boom"
    # Even a launch log blaming rank 0 does not mark its complete result failed.
    supervisor._record_failure(LaunchOutcome("failed", 1, cause="exited with status 1",
                                             failed_rank=0))
    state = StateStore(tmp_path).load(EXP)
    assert state is not None and state.status == "failed"
    assert {r: p.status for r, p in state.processes.items()} == {0: "completed", 1: "completed"}
    assert plan_resume(tmp_path, EXP).missing_ranks == ()


def test_a_launch_failing_after_every_rank_finished_is_an_aggregation_error(
    tmp_path: Path,
) -> None:
    failed = LaunchOutcome("failed", 1, cause="aggregation failed: AggregationError: boom")
    config = ExperimentConfig.model_validate({"config_name": "r",
                                              "launch": {"num_processes": 2}})
    with pytest.raises(AggregationError, match=r"every rank finished.*--resume exp-1"):
        experiment.run_experiment(config, experiment_id=EXP, results_dir=tmp_path,
                                  launcher=_StoringLauncher(outcome=failed))
    # A rank that did not finish is still a distributed failure.
    with pytest.raises(DistributedError, match="failed: aggregation failed"):
        experiment.run_experiment(config, experiment_id="exp-2", results_dir=tmp_path,
                                  launcher=_StoringLauncher(ranks=(0,), outcome=failed))


def test_aggregate_if_complete_names_missing_ranks_and_changes_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.create(EXP, config_name="r", num_processes=3)
    store.mark_running(EXP)
    _repo(tmp_path).save_raw(make_raw(EXP, 1, 3))
    done = aggregate_if_complete(_repo(tmp_path), store, EXP, 3)
    assert done.aggregated is None and done.missing_ranks == (0, 2)
    assert not _repo(tmp_path).has_aggregated(EXP)
    state = store.load(EXP)
    assert state is not None and state.status == "running"


def test_manual_aggregate_completes_the_experiment_state(tmp_path: Path) -> None:
    """`llm-energy-measure aggregate ID` after an interrupted aggregation: the result is
    stored and the experiment's state says completed and aggregated."""
    from llm_energy_measure.orchestration.aggregate import aggregate_one

    _all_ranks_done(tmp_path, 2)
    store = StateStore(tmp_path)
    outcome = aggregate_one(_repo(tmp_path), EXP, states=store)
    assert outcome.status == "aggregated"
    state = store.load(EXP)
    assert state is not None and state.status == "completed" and state.aggregated
