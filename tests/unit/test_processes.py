"""stop_process_group against real child processes: first signal, bounded grace, SIGKILL,
the process group, extra pids and the process tree."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_energy_measure.processes import stop_process_group

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")

_IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "


def _running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _gone_within(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _running(pid)


@pytest.fixture
def spawned() -> Iterator[list[int]]:
    """Pids to SIGKILL at the end whatever the test did (no stray sleepers)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _session(cmd: list[str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, start_new_session=True, text=True, **kwargs)


def test_a_process_that_obeys_the_first_signal_is_not_kept_for_the_grace() -> None:
    proc = _session(["sleep", "60"])
    started = time.monotonic()
    stop_process_group(proc, grace_s=5.0)
    assert proc.returncode == -signal.SIGTERM
    assert time.monotonic() - started < 2.0


def test_the_first_signal_can_be_sigint() -> None:
    proc = _session(["sleep", "60"])
    stop_process_group(proc, grace_s=5.0, first_signal=signal.SIGINT)
    assert proc.returncode == -signal.SIGINT


def test_a_process_ignoring_sigterm_is_killed_after_the_grace() -> None:
    proc = _session([sys.executable, "-c", _IGNORE_TERM + "print('ready', flush=True); "
                     "time.sleep(60)"], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    started = time.monotonic()
    stop_process_group(proc, grace_s=0.5)
    elapsed = time.monotonic() - started
    assert proc.returncode == -signal.SIGKILL
    assert 0.5 <= elapsed < 3.0


def test_a_group_member_outliving_its_leader_is_killed(spawned: list[int]) -> None:
    # The shell dies of SIGTERM at once; its background sleep ignores SIGTERM.
    proc = _session(["sh", "-c", "(trap '' TERM; exec sleep 60) & echo $!; wait"],
                    stdout=subprocess.PIPE)
    assert proc.stdout is not None
    member = int(proc.stdout.readline())
    spawned.append(member)
    stop_process_group(proc, grace_s=0.3)
    assert proc.returncode == -signal.SIGTERM
    assert _gone_within(member)


def test_a_process_without_its_own_group_is_signalled_alone() -> None:
    proc = subprocess.Popen(["sleep", "60"])  # in this test's process group
    stop_process_group(proc, grace_s=5.0)
    assert proc.returncode == -signal.SIGTERM


def _parent_with_child_in_own_session(spawned: list[int]) -> tuple[subprocess.Popen[str], int]:
    """A parent ignoring SIGTERM whose child (also ignoring it) has a session of its own."""
    script = (_IGNORE_TERM + "import subprocess, sys\n"
              "child = subprocess.Popen([sys.executable, '-c', " + repr(_IGNORE_TERM +
              "time.sleep(60)") + "], start_new_session=True)\n"
              "print(child.pid, flush=True)\ntime.sleep(60)\n")
    parent = _session([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    spawned.append(child)
    return parent, child


def test_extra_pids_in_sessions_of_their_own_are_stopped(spawned: list[int]) -> None:
    parent, child = _parent_with_child_in_own_session(spawned)
    started = time.monotonic()
    stop_process_group(parent, grace_s=0.5, extra_pids=[child])
    assert time.monotonic() - started < 5.0
    assert parent.returncode == -signal.SIGKILL
    assert _gone_within(child)


def test_tree_finds_descendants_outside_the_group(spawned: list[int]) -> None:
    parent, child = _parent_with_child_in_own_session(spawned)
    stop_process_group(parent, grace_s=0.3, tree=True)
    assert _gone_within(child)


def test_without_tree_a_descendant_in_its_own_session_is_left_alone(
    spawned: list[int],
) -> None:
    parent, child = _parent_with_child_in_own_session(spawned)
    stop_process_group(parent, grace_s=0.3)
    assert parent.returncode == -signal.SIGKILL
    assert not _gone_within(child, seconds=0.3)
