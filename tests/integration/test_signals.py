"""Stopping the `run` process of a 2-process CPU run by signal: nothing survives it, the state
says interrupted, and only one resume at a time may measure the experiment."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.integration.multiprocess_support import (
    cli_command,
    cli_env,
    load_state,
    only_experiment,
    write_config,
)
from tests.integration.test_faults import _beats, _no_rank_alive, _resume_and_check

pytestmark = pytest.mark.slow


def _start_hanging_run(tmp_path: Path, cache: Path) -> tuple[subprocess.Popen[str], Path, str]:
    """A run whose rank 1 hangs inside its measured window, once both ranks are measuring."""
    cfg = write_config(tmp_path, backend="null", timeout_s=600)
    results = tmp_path / "results"
    proc = subprocess.Popen(
        cli_command("run", str(cfg), "--results-dir", str(results)),
        env=cli_env(cache, fault="rank=1:after=window_open:kind=hang"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        states = list((results / "state").glob("*.json")) if (results / "state").is_dir() else []
        if states and len(beats := _beats(results, states[0].stem)) == 2 and \
                any("window_open" in str(b["stage"]) for b in beats.values()):
            return proc, results, states[0].stem
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the ranks did not start within 180 s")


def _wait_no_rank_alive(results: Path, exp_id: str, within_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if _no_rank_alive(results, exp_id):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"a rank of {exp_id} was still alive {within_s} s later")


def test_sigterm_stops_every_rank_and_only_one_resume_runs(
    tmp_path: Path, session_cache_dir: Path
) -> None:
    proc, results, exp_id = _start_hanging_run(tmp_path, session_cache_dir)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted (SIGTERM)" in err
    _wait_no_rank_alive(results, exp_id, within_s=10)
    state = load_state(results, exp_id)
    assert state["status"] == "interrupted"
    assert all(p["status"] in ("pending", "completed") for p in state["processes"].values())

    # Two resumes at once: exactly one measures, the other is refused naming the live PID.
    first, second = (subprocess.Popen(
        cli_command("run", "--resume", exp_id, "--results-dir", str(results)),
        env=cli_env(session_cache_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for _ in range(2))
    outs = [(p, *p.communicate(timeout=300)) for p in (first, second)]
    codes = sorted(p.returncode for p, _, _ in outs)
    assert codes == [0, 2], [e[-1500:] for _, _, e in outs]
    refused = next(e for p, _, e in outs if p.returncode == 2)
    winner = next(p for p, _, _ in outs if p.returncode == 0)
    assert f"PID {winner.pid}" in refused and "being measured" in refused
    assert len(refused.strip().splitlines()) == 1  # one line, no traceback
    _resume_and_check_done(results, exp_id)


def _resume_and_check_done(results: Path, exp_id: str) -> None:
    state = load_state(results, exp_id)
    assert state["status"] == "completed" and state["aggregated"] is True
    assert (results / "aggregated" / f"{exp_id}.json").is_file()


def test_sigkill_of_run_stops_the_ranks_within_bounded_time(
    tmp_path: Path, session_cache_dir: Path
) -> None:
    proc, results, exp_id = _start_hanging_run(tmp_path, session_cache_dir)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    took_s = _wait_no_rank_alive(results, exp_id, within_s=10)
    assert took_s < 10
    deadline = time.time() + 10
    while load_state(results, exp_id)["status"] == "running" and time.time() < deadline:
        time.sleep(0.1)
    assert load_state(results, exp_id)["status"] == "interrupted"
    _resume_and_check(results, exp_id, session_cache_dir)


def test_the_only_experiment_helper_finds_it(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "e1.json").write_text("{}")
    assert only_experiment(tmp_path) == "e1"
