"""Stopping a child process and everything it started, in bounded time.

Used by the study executor (a worker per run) and by the multi-process supervisor (the
``accelerate launch`` agent and its ranks, which run in sessions of their own).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

#: Seconds given to processes to exit after the final SIGKILL before giving up on them.
_REAP_AFTER_KILL_S = 5.0


def _leads_group(pid: int) -> bool:
    """Whether ``pid`` leads its own process group (``start_new_session=True``): only then is
    its group signalled, never the group of the caller."""
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def _others(pid: int, extra_pids: Sequence[int], tree: bool) -> list[Any]:
    """psutil handles of ``extra_pids`` and, with ``tree``, of the descendants of ``pid`` and
    of ``extra_pids``, found before anything is signalled (children are re-parented once their
    parent dies)."""
    if not extra_pids and not tree:
        return []
    import psutil

    found: dict[int, Any] = {}
    for candidate in (pid, *extra_pids):
        try:
            proc = psutil.Process(candidate)
            found[candidate] = proc
            if tree:
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        except psutil.Error:
            continue
    found.pop(pid, None)
    return list(found.values())


def _send(proc: subprocess.Popen[Any], group: bool, others: Sequence[Any], sig: int) -> None:
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
    elif proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
    for other in others:
        with contextlib.suppress(Exception):  # psutil.Error: gone, or not ours
            other.send_signal(sig)


def _wait_others(others: Sequence[Any], timeout_s: float) -> list[Any]:
    """Wait up to ``timeout_s`` for ``others`` to exit; the ones still alive."""
    if not others:
        return []
    import psutil

    _, alive = psutil.wait_procs(list(others), timeout=max(timeout_s, 0.0))
    return list(alive)


def stop_process_group(
    proc: subprocess.Popen[Any],
    grace_s: float,
    *,
    first_signal: int = signal.SIGTERM,
    extra_pids: Sequence[int] = (),
    tree: bool = False,
) -> None:
    """Stop ``proc``, its process group and ``extra_pids``; return once ``proc`` is reaped.

    Sends ``first_signal`` to ``proc``'s process group (when ``proc`` leads one, as after
    ``start_new_session=True``; else to ``proc`` alone) and to ``extra_pids``; with ``tree``
    also to every descendant of ``proc`` and of ``extra_pids`` (processes in sessions of their
    own are outside the group). Waits at most ``grace_s`` seconds for them to exit, then
    SIGKILLs what is left, including anything still in the group after ``proc`` exited.
    ``extra_pids`` and ``tree`` need psutil.
    """
    group = _leads_group(proc.pid)
    others = _others(proc.pid, extra_pids, tree)
    _send(proc, group, others, first_signal)
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    alive = _wait_others(others, deadline - time.monotonic())
    # The group as well: members that outlived their leader (e.g. ignoring the first signal).
    _send(proc, group, alive, signal.SIGKILL)
    proc.wait()
    _wait_others(alive, _REAP_AFTER_KILL_S)
