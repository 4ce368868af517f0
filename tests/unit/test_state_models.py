"""State models, status derivation and lifecycle transitions (no files)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from llm_energy_measure.exceptions import ConfigurationError, ResultsError
from llm_energy_measure.security import REDACTED
from llm_energy_measure.state import ExperimentState, ProcessState, derive_status
from llm_energy_measure.state.transitions import (
    describe_error,
    fail,
    finish,
    interrupt,
    set_process_status,
    start_run,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def make_state(num_processes: int = 2, *statuses: str) -> ExperimentState:
    state = ExperimentState.new("exp-1", config_name="cfg", num_processes=num_processes, now=T0)
    for rank, status in enumerate(statuses):
        state.processes[rank].status = status  # type: ignore[assignment]
    return state


def test_new_state_has_pending_ranks() -> None:
    state = make_state(3)
    assert state.status == "pending"
    assert sorted(state.processes) == [0, 1, 2]
    assert all(p.status == "pending" and p.rank == r for r, p in state.processes.items())
    assert state.created_at == state.updated_at == T0
    assert state.progress == {} and state.aggregated is False


@pytest.mark.parametrize(
    ("experiment_status", "ranks", "expected"),
    [
        ("pending", ("pending", "pending"), "pending"),
        ("pending", ("running", "pending"), "running"),
        ("pending", ("completed", "pending"), "running"),
        ("running", ("completed", "running"), "running"),
        # Every rank done is not "completed" until the experiment is aggregated.
        ("running", ("completed", "completed"), "running"),
        ("running", ("completed", "failed"), "failed"),
        ("running", ("failed", "running"), "failed"),
        ("interrupted", ("completed", "pending"), "interrupted"),
        ("interrupted", ("completed", "completed"), "interrupted"),
    ],
)
def test_derive_status(experiment_status: str, ranks: tuple[str, str], expected: str) -> None:
    state = make_state(2, *ranks)
    state.status = experiment_status  # type: ignore[assignment]
    assert derive_status(state)[0] == expected


def test_failed_cause_names_lowest_failed_rank_and_is_kept() -> None:
    state = make_state(3, "completed", "failed", "failed")
    state.processes[1].error = "CUDA OOM"
    state.processes[2].error = "other"
    assert derive_status(state) == ("failed", "rank 1 failed: CUDA OOM")
    state.error = "launcher crashed first"
    assert derive_status(state) == ("failed", "launcher crashed first")


def test_set_process_status_records_times_pid_and_derives() -> None:
    state = make_state(2)
    set_process_status(state, 0, "running", now=T0, pid=111, hostname="node-a")
    assert state.status == "running"
    p0 = state.processes[0]
    assert (p0.started_at, p0.finished_at, p0.pid, p0.hostname) == (T0, None, 111, "node-a")

    later = T0 + timedelta(seconds=30)
    set_process_status(state, 0, "completed", now=later, pid=999, hostname="ignored")
    assert state.processes[0].finished_at == later
    assert state.processes[0].pid == 111  # only "running" records the pid
    assert state.status == "running"

    set_process_status(state, 1, "failed", now=later, pid=1, hostname="h", error=MemoryError("oom"))
    assert state.processes[1].error == "MemoryError: oom"
    assert state.status == "failed"
    assert state.error == "rank 1 failed: MemoryError: oom"


def test_set_process_status_all_completed() -> None:
    state = make_state(2)
    for rank in (0, 1):
        set_process_status(state, rank, "completed", now=T0, pid=1, hostname="h")
    assert state.status == "running"  # completed only once aggregated
    assert state.error is None


def test_set_process_status_unknown_rank() -> None:
    with pytest.raises(ResultsError, match=r"ranks 0\.\.1, not 2"):
        set_process_status(make_state(2), 2, "running", now=T0, pid=1, hostname="h")


def test_start_run_resets_unfinished_ranks_only() -> None:
    state = make_state(3, "completed", "failed", "running")
    state.processes[1].error = "boom"
    state.status, state.error = "failed", "rank 1 failed: boom"
    start_run(state, pid=42, hostname="node-b")
    assert state.status == "running" and state.error is None
    assert (state.pid, state.hostname) == (42, "node-b")
    assert [state.processes[r].status for r in range(3)] == ["completed", "pending", "pending"]
    assert state.processes[1].error is None


def test_finish_fail_interrupt() -> None:
    state = make_state(1)
    fail(state, ValueError("bad"))
    assert (state.status, state.error) == ("failed", "ValueError: bad")
    interrupt(state)
    assert state.status == "interrupted"
    finish(state)
    assert (state.status, state.error) == ("completed", None)
    interrupt(state)
    assert state.status == "completed"  # an interrupt after completion changes nothing


def test_describe_error_redacts_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_FAKEfakeFAKEfakeFAKEfake1234")
    text = describe_error(RuntimeError("401 for hf_FAKEfakeFAKEfakeFAKEfake1234"))
    assert text == f"RuntimeError: 401 for {REDACTED}"


def test_validation_rejects_bad_states() -> None:
    data = make_state(2).model_dump()
    with pytest.raises(ValidationError, match=r"ranks 0\.\.1"):
        ExperimentState.model_validate({**data, "processes": {0: data["processes"][0]}})
    with pytest.raises(ValidationError, match="unknown state schema_version"):
        ExperimentState.model_validate({**data, "schema_version": 99})
    with pytest.raises(ValidationError):
        ExperimentState.model_validate({**data, "status": "done"})
    with pytest.raises(ValidationError):
        ExperimentState.model_validate({**data, "surprise": 1})
    with pytest.raises(ConfigurationError):
        ExperimentState.model_validate({**data, "experiment_id": "../x"})
    with pytest.raises(ValidationError):
        make_state(1).processes[0].status = "exploded"  # type: ignore[assignment]


def test_json_round_trip_keeps_int_rank_keys() -> None:
    state = make_state(2, "completed")
    state.progress = {"completed_cycles": [0, 1]}
    again = ExperimentState.model_validate_json(state.model_dump_json())
    assert again == state
    assert isinstance(next(iter(again.processes)), int)
    assert isinstance(again.processes[0], ProcessState)
