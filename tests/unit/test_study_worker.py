"""The study worker and the local executor's subprocess handling (no model is loaded)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.factories import make_raw

from llm_energy_measure.orchestration.study.executors import (
    EXIT_ORPHANED,
    EXIT_RETRYABLE,
    RunSpec,
)
from llm_energy_measure.orchestration.study.executors.local import (
    outcome_for_exit,
    run_worker,
)
from llm_energy_measure.orchestration.study.worker import main, previous_attempt
from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.state import StateStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")


def _fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for the interpreter: runs ``body`` whatever its arguments."""
    path = tmp_path / "fake-python"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def _spec(tmp_path: Path, timeout_s: float | None = None) -> RunSpec:
    return RunSpec(experiment_id="exp-1", config_path=tmp_path / "c.json",
                   results_dir=tmp_path / "r", log_path=tmp_path / "logs" / "exp-1.log",
                   timeout_s=timeout_s)


def _running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_timeout_stops_the_whole_process_group(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    child_file = tmp_path / "child.pid"
    monkeypatch.setenv("CHILD_PID_FILE", str(child_file))
    # Ignores SIGINT (as a worker stuck in C code would), so SIGKILL must follow.
    python = _fake_python(tmp_path, "trap '' INT\nsleep 300 &\necho $! > \"$CHILD_PID_FILE\"\n"
                          "wait")
    started = time.monotonic()
    outcome = run_worker(_spec(tmp_path, timeout_s=1.0), python=python, grace_s=0.5)
    assert time.monotonic() - started < 10
    assert outcome.status == "timeout" and not outcome.retryable
    assert outcome.error == "no result within timeout_s=1 s; the worker was stopped"
    child = int(child_file.read_text())
    deadline = time.monotonic() + 5
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child), "the worker's child survived the timeout"


def test_exit_codes_map_to_outcomes_with_the_cause_from_the_log(tmp_path: Path) -> None:
    ok = run_worker(_spec(tmp_path), python=_fake_python(tmp_path, "exit 0"))
    assert ok.status == "completed" and ok.error is None
    failed = run_worker(_spec(tmp_path), python=_fake_python(
        tmp_path, "echo 'Traceback ...'\necho 'error: model not found: x' >&2\nexit 1"))
    assert (failed.status, failed.error, failed.retryable) == (
        "failed", "model not found: x", False)
    transient = run_worker(_spec(tmp_path), python=_fake_python(
        tmp_path, f"echo 'error: NVML busy' >&2\nexit {EXIT_RETRYABLE}"))
    assert (transient.status, transient.error, transient.retryable) == (
        "failed", "NVML busy", True)
    killed = run_worker(_spec(tmp_path), python=_fake_python(tmp_path, "kill -9 $$"))
    assert killed.error == "worker killed by signal SIGKILL (out of memory?)"
    # One log per run, every attempt appended (4 headers).
    log = (tmp_path / "logs" / "exp-1.log").read_text()
    assert log.count("--- ") == 4 and "error: model not found: x" in log


def test_outcome_without_an_error_line_points_at_the_log(tmp_path: Path) -> None:
    outcome = outcome_for_exit(3, tmp_path / "missing.log", 1.0)
    assert outcome.error == f"worker exited with code 3; see {tmp_path / 'missing.log'}"
    assert outcome_for_exit(-signal.SIGTERM, tmp_path / "x", 1.0).error == (
        "worker killed by signal SIGTERM")
    assert outcome_for_exit(EXIT_ORPHANED, tmp_path / "x", 1.0).error == (
        "worker stopped: the process that started it is gone")


def test_previous_attempt_skips_finished_resumes_stored_and_clears_the_rest(
        tmp_path: Path) -> None:
    repo = FileSystemRepository(tmp_path)
    states = StateStore(tmp_path)
    states.create("exp-a", config_name="x")
    states.mark_running("exp-a")
    assert previous_attempt(tmp_path, "exp-a") == "fresh"
    assert states.load("exp-a") is None  # the earlier attempt's state is gone: id reusable
    states.create("exp-b", config_name="x")
    path = repo.aggregated_path("exp-b")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    assert previous_attempt(tmp_path, "exp-b") == "done"
    assert states.load("exp-b") is not None  # a finished experiment is left alone
    states.create("exp-c", config_name="x")
    repo.save_raw(make_raw("exp-c", 0, 1))  # measured, then the aggregation failed
    assert previous_attempt(tmp_path, "exp-c") == "resume"
    assert states.load("exp-c") is not None  # kept: the resume needs it


def test_invalid_config_ends_with_one_error_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "p000.json"
    config.write_text(json.dumps({"batching": {"batch_size": 0}}))
    code = main(["--config", str(config), "--experiment-id", "e", "--results-dir",
                 str(tmp_path / "r")])
    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"error: {config}: batching.batch_size: must be >= 1, got 0"


def test_a_worker_whose_parent_is_gone_does_not_start(tmp_path: Path) -> None:
    code = main(["--config", str(tmp_path / "c.json"), "--experiment-id", "e",
                 "--results-dir", str(tmp_path), "--parent-pid", str(os.getppid() + 1)])
    assert code == EXIT_ORPHANED


def test_watchdog_exits_when_the_parent_changes() -> None:
    code = ("import time\n"
            "from llm_energy_measure.orchestration.study.worker import _exit_when_orphaned\n"
            "_exit_when_orphaned(parent_pid=-1, interval_s=0.05)\n"
            "time.sleep(20)\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == EXIT_ORPHANED and time.monotonic() - started < 15
    assert "error: the process that started this worker is gone" in proc.stderr
