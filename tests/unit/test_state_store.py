"""StateStore on a real directory: files, locking, corruption, listing and resume candidates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from filelock import FileLock
from loguru import logger
from pydantic import ValidationError

from llm_energy_measure.exceptions import ConfigurationError, ResultsError
from llm_energy_measure.security import REDACTED
from llm_energy_measure.state import ExperimentState, StateStore
from llm_energy_measure.state.liveness import current_hostname, pid_is_alive

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


class StepClock:
    """Returns T0, T0+1s, T0+2s, ... on successive calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        value = T0 + timedelta(seconds=self.calls)
        self.calls += 1
        return value


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path, clock=StepClock())


@pytest.fixture
def warnings_seen() -> Iterator[list[str]]:
    seen: list[str] = []
    handler_id = logger.add(lambda m: seen.append(m.record["message"]), level="WARNING")
    yield seen
    logger.remove(handler_id)


def dead_pid() -> int:
    """The pid of a child that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- create / load


def test_create_writes_file_and_load_round_trips(store: StateStore, tmp_path: Path) -> None:
    created = store.create(
        "exp-1", config_name="quick", num_processes=2, config_path=Path("c.yaml"), config_hash="ab"
    )
    path = tmp_path / "state" / "exp-1.json"
    assert store.path_for("exp-1") == path
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["schema_version"] == 1
    assert on_disk["status"] == "pending"
    assert on_disk["config_path"] == "c.yaml"
    assert sorted(on_disk["processes"]) == ["0", "1"]
    assert store.load("exp-1") == created
    assert created.created_at == T0


def test_load_missing_is_none(store: StateStore) -> None:
    assert store.load("nothing-here") is None


def test_create_refuses_existing_unless_overwrite(store: StateStore) -> None:
    store.create("exp-1", config_name="a")
    store.update("exp-1", lambda s: setattr(s, "status", "failed"))
    with pytest.raises(ConfigurationError, match="'exp-1' already has state"):
        store.create("exp-1", config_name="b")
    assert store.load("exp-1").status == "failed"  # type: ignore[union-attr]
    fresh = store.create("exp-1", config_name="b", overwrite=True)
    assert store.load("exp-1") == fresh
    assert fresh.status == "pending"


def test_create_rejects_zero_processes(store: StateStore) -> None:
    with pytest.raises(ConfigurationError, match="num_processes"):
        store.create("exp-1", config_name="a", num_processes=0)


@pytest.mark.parametrize("bad_id", ["../escape", ".hidden", "a/b", "", "x" * 200])
def test_unsafe_ids_refused_everywhere(store: StateStore, tmp_path: Path, bad_id: str) -> None:
    for call in (
        lambda: store.create(bad_id, config_name="a"),
        lambda: store.load(bad_id),
        lambda: store.update(bad_id, lambda s: None),
        lambda: store.delete(bad_id),
    ):
        with pytest.raises(ConfigurationError, match="invalid experiment id"):
            call()
    assert list(tmp_path.rglob("*.json")) == []


# ----------------------------------------------------------------------------- update


def test_update_in_place_or_returning_and_sets_updated_at(store: StateStore) -> None:
    store.create("exp-1", config_name="a")  # clock call 0
    after_mutation = store.update("exp-1", lambda s: s.progress.update(done=[1]))  # call 1
    assert after_mutation.progress == {"done": [1]}
    assert after_mutation.updated_at == T0 + timedelta(seconds=1)
    after_return = store.update(
        "exp-1", lambda s: s.model_copy(update={"progress": {**s.progress, "next": 2}})
    )
    assert after_return.progress == {"done": [1], "next": 2}
    assert after_return.updated_at == T0 + timedelta(seconds=2)
    assert after_return.created_at == T0
    assert store.load("exp-1") == after_return


def test_update_missing_state(store: StateStore) -> None:
    with pytest.raises(ResultsError, match="no state for experiment 'ghost'"):
        store.update("ghost", lambda s: None)


def test_failed_or_invalid_update_leaves_file_untouched(store: StateStore) -> None:
    store.create("exp-1", config_name="a")
    before = store.path_for("exp-1").read_bytes()

    def explode(state: ExperimentState) -> None:
        state.progress["half"] = "done"
        raise RuntimeError("crash inside update")

    with pytest.raises(RuntimeError):
        store.update("exp-1", explode)
    with pytest.raises(ValidationError):
        store.update("exp-1", lambda s: s.model_copy(update={"status": "bogus"}))
    with pytest.raises(ResultsError, match="may not change the experiment id"):
        store.update("exp-1", lambda s: setattr(s, "experiment_id", "other"))
    assert store.path_for("exp-1").read_bytes() == before


def test_lock_timeout_names_lock_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path, lock_timeout_s=0.05)
    store.create("exp-1", config_name="a")
    lock_path = f"{store.path_for('exp-1')}.lock"
    with FileLock(lock_path), pytest.raises(ResultsError, match=r"exp-1\.json\.lock"):
        store.update("exp-1", lambda s: None)


# ----------------------------------------------------------------------------- lifecycle


def test_lifecycle_of_two_ranks(store: StateStore) -> None:
    store.create("exp-1", config_name="a", num_processes=2)
    state = store.mark_running("exp-1", pid=100, hostname="node-a")
    assert (state.status, state.pid, state.hostname) == ("running", 100, "node-a")
    store.mark_process("exp-1", 0, "running", pid=101, hostname="node-a")
    store.mark_process("exp-1", 1, "running")
    state = store.mark_process("exp-1", 0, "completed")
    assert state.status == "running"
    assert state.processes[1].pid == os.getpid()
    assert state.processes[1].hostname == current_hostname()
    state = store.mark_process("exp-1", 1, "completed")
    assert state.status == "running"  # every rank done; completed only once aggregated
    assert state.processes[0].pid == 101
    assert state.processes[0].finished_at is not None
    assert store.mark_aggregated("exp-1").aggregated is True
    assert store.load("exp-1").aggregated is True  # type: ignore[union-attr]
    assert store.mark_aggregated("exp-1", False).aggregated is False
    done = store.mark_completed("exp-1", aggregated=True)
    assert (done.status, done.aggregated) == ("completed", True)


def test_rank_failure_fails_experiment_with_cause(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_FAKEfakeFAKEfakeFAKEfake1234")
    store.create("exp-1", config_name="a", num_processes=2)
    store.mark_running("exp-1")
    store.mark_process("exp-1", 0, "completed")
    state = store.mark_process(
        "exp-1", 1, "failed", RuntimeError("token hf_FAKEfakeFAKEfakeFAKEfake1234 rejected")
    )
    assert state.status == "failed"
    assert state.error == f"rank 1 failed: RuntimeError: token {REDACTED} rejected"
    raw = store.path_for("exp-1").read_text(encoding="utf-8")
    assert "hf_FAKE" not in raw


def test_mark_failed_interrupted_completed(store: StateStore) -> None:
    store.create("exp-1", config_name="a")
    assert store.mark_failed("exp-1", "launcher died").error == "launcher died"
    assert store.mark_interrupted("exp-1").status == "interrupted"
    state = store.mark_completed("exp-1")
    assert (state.status, state.error) == ("completed", None)
    assert store.mark_interrupted("exp-1").status == "completed"


def test_mark_process_unknown_rank_writes_nothing(store: StateStore) -> None:
    store.create("exp-1", config_name="a", num_processes=1)
    before = store.path_for("exp-1").read_bytes()
    with pytest.raises(ResultsError, match="not 3"):
        store.mark_process("exp-1", 3, "running")
    assert store.path_for("exp-1").read_bytes() == before


def test_delete_removes_state_and_lock(store: StateStore) -> None:
    store.create("exp-1", config_name="a")
    path = store.path_for("exp-1")
    assert Path(f"{path}.lock").exists()
    assert store.delete("exp-1") is True
    assert not path.exists() and not Path(f"{path}.lock").exists()
    assert store.load("exp-1") is None
    assert store.delete("exp-1") is False


# ----------------------------------------------------------------------------- corruption


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"experiment_id": "exp-1", "stat', "Unterminated string"),
        (b"\xff\xfe garbage", "utf-8"),
        (b"[1, 2]", "file"),
        (b"{}", "experiment_id"),
    ],
)
def test_corrupted_file_raises_results_error_naming_file(
    store: StateStore, content: bytes, reason: str
) -> None:
    path = store.path_for("exp-1")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(ResultsError) as info:
        store.load("exp-1")
    message = str(info.value)
    assert str(path) in message and reason in message
    assert "\n" not in message


def test_unknown_schema_and_mismatched_id_are_errors(store: StateStore) -> None:
    good = store.create("exp-1", config_name="a").model_dump(mode="json")
    path = store.path_for("exp-1")
    path.write_text(json.dumps({**good, "schema_version": 7}), encoding="utf-8")
    with pytest.raises(ResultsError, match="unknown state schema_version 7"):
        store.load("exp-1")
    path.write_text(json.dumps({**good, "experiment_id": "exp-2"}), encoding="utf-8")
    with pytest.raises(ResultsError, match="holds experiment 'exp-2'"):
        store.load("exp-1")


def test_list_states_sorted_and_skips_corrupted(
    store: StateStore, warnings_seen: list[str]
) -> None:
    store.create("zeta", config_name="a")  # created first (T0)
    store.create("alpha", config_name="b")  # T0 + 1 s
    store.create("broken", config_name="c")
    store.path_for("broken").write_text("{not json", encoding="utf-8")
    (store.state_dir / ".zeta.json.1234.tmp").write_text("{", encoding="utf-8")
    assert [s.experiment_id for s in store.list_states()] == ["zeta", "alpha"]
    assert len(warnings_seen) == 1 and "broken.json" in warnings_seen[0]


def test_list_states_on_empty_dir(tmp_path: Path) -> None:
    assert StateStore(tmp_path / "nowhere").list_states() == []


# ----------------------------------------------------------------------------- resume


def test_find_resumable(store: StateStore) -> None:
    host = current_hostname()
    gone = dead_pid()
    assert not pid_is_alive(gone)
    for exp_id in ("done", "failed", "interrupted", "alive", "dead-coord", "dead-rank", "remote"):
        store.create(exp_id, config_name="a", num_processes=1)
    store.mark_completed("done")
    store.mark_failed("failed", "x")
    store.mark_interrupted("interrupted")
    store.mark_running("alive", pid=os.getpid(), hostname=host)
    store.mark_running("dead-coord", pid=gone, hostname=host)
    store.mark_running("dead-rank", pid=os.getpid(), hostname=host)
    store.mark_process("dead-rank", 0, "running", pid=gone, hostname=host)
    store.mark_running("remote", pid=gone, hostname="another-host")
    resumable = {s.experiment_id for s in store.find_resumable()}
    assert resumable == {"failed", "interrupted", "dead-coord", "dead-rank"}


def test_pid_is_alive() -> None:
    assert pid_is_alive(os.getpid())
    assert not pid_is_alive(0)
    assert not pid_is_alive(-5)


# ----------------------------------------------------------------------------- atomic write


def test_crash_during_write_keeps_previous_state_and_no_temp(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create("exp-1", config_name="a")
    path = store.path_for("exp-1")
    before = path.read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.mark_running("exp-1")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["exp-1.json", "exp-1.json.lock"]
    assert store.mark_running("exp-1").status == "running"
