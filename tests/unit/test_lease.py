"""ExperimentLease: one measurement of an experiment at a time, refusals name the live PID."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.state import StateStore
from llm_energy_measure.state.lease import ExperimentLease

HOLD = """
import sys, time
from llm_energy_measure.state.lease import ExperimentLease
lease = ExperimentLease(sys.argv[1], "exp-1").acquire()
print("held", flush=True)
time.sleep(60)
"""


def _holder(base: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(base)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_lease_is_refused_naming_the_holder_and_freed_when_it_dies(
    tmp_path: Path,
) -> None:
    proc = _holder(tmp_path)
    try:
        with pytest.raises(ConfigurationError, match=rf"being measured by .*PID {proc.pid}"):
            ExperimentLease(tmp_path, "exp-1").acquire()
    finally:
        proc.kill()
        proc.wait()
    # The kernel released the lock with the process: no stale lock is left behind.
    with ExperimentLease(tmp_path, "exp-1"):
        pass


def test_a_live_rank_recorded_in_the_state_refuses_the_lease(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store = StateStore(tmp_path)
        store.create("exp-1", config_name="c", num_processes=2)
        store.mark_running("exp-1", pid=999_999_999)  # the run itself is gone
        store.mark_process("exp-1", 1, "running", pid=sleeper.pid)
        with pytest.raises(ConfigurationError, match=rf"rank 1, PID {sleeper.pid}"):
            ExperimentLease(tmp_path, "exp-1").acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    time.sleep(0.05)
    lease = ExperimentLease(tmp_path, "exp-1").acquire()  # the rank died: free
    lease.release()
    lease.release()  # safe twice


def test_leases_of_different_experiments_are_independent(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        with ExperimentLease(tmp_path, "exp-2"):
            pass
    finally:
        proc.kill()
        proc.wait()


def test_a_reused_pid_does_not_hold_the_experiment(tmp_path: Path) -> None:
    from llm_energy_measure.state.heartbeat import Heartbeat, write_heartbeat

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # A heartbeat written long before this process started names its pid: that pid was
        # reused, the rank that wrote the heartbeat is gone.
        write_heartbeat(tmp_path, "exp-1", Heartbeat(rank=0, pid=sleeper.pid,
                        hostname=__import__("socket").gethostname(), stage="measuring",
                        time_s=time.time() - 3600))
        with ExperimentLease(tmp_path, "exp-1"):
            pass
        write_heartbeat(tmp_path, "exp-1", Heartbeat(rank=0, pid=sleeper.pid,
                        hostname=__import__("socket").gethostname(), stage="measuring",
                        time_s=time.time()))
        with pytest.raises(ConfigurationError, match=rf"rank 0, PID {sleeper.pid}"):
            ExperimentLease(tmp_path, "exp-1").acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
