"""Is the process recorded in a state file still alive? (POSIX, same host only.)"""

from __future__ import annotations

import os
import socket

from llm_energy_measure.state.models import ExperimentState


def current_hostname() -> str:
    """Host name recorded next to pids in state files."""
    return socket.gethostname()


def pid_is_alive(pid: int) -> bool:
    """True if a process with ``pid`` exists on this host.

    Caveat: pids are reused, so a long-dead run may look alive if an unrelated process got its
    pid; a zombie (exited, not yet reaped) also counts as alive.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def is_stale(state: ExperimentState, hostname: str | None = None) -> bool:
    """True if a ``running`` experiment has lost a process it recorded on this host.

    Stale means the coordinator pid, or the pid of a rank still marked ``running``, was
    recorded on this host and is no longer alive. Processes on other hosts cannot be checked
    and never make a state stale; a state without any recorded pid is not stale.
    """
    if state.status != "running":
        return False
    host = hostname or current_hostname()
    recorded = [(state.pid, state.hostname)]
    recorded += [(p.pid, p.hostname) for p in state.processes.values() if p.status == "running"]
    return any(
        pid is not None and pid_host == host and not pid_is_alive(pid) for pid, pid_host in recorded
    )
