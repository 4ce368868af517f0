"""The exclusive right to measure one experiment, held for the whole run.

Two measurements of one experiment at once (a resume while the original run, or another
resume, is still alive) would share the devices without knowing it and overwrite each
other's results. ``ExperimentLease`` prevents that:

- an OS file lock on ``state/<id>.lease`` (released by the kernel when the holder dies, so a
  crashed run never leaves the experiment locked), taken without waiting;
- a liveness check of the processes the experiment recorded on this host (the run's
  coordinator, its ranks, their heartbeats): any of them alive and not us also refuses,
  which covers ranks left running by a run that was killed before leases existed or whose
  lock holder died while they were still shutting down.

A refusal is one ConfigurationError line naming the live PID.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.state.heartbeat import read_heartbeats
from llm_energy_measure.state.liveness import pid_is_alive
from llm_energy_measure.state.storage import read_state
from llm_energy_measure.storage.atomic import atomic_write_text
from llm_energy_measure.storage.layout import ResultsLayout

#: Clock slack when comparing a process's start time with a record it wrote (s).
_START_SLACK_S = 2.0


def _started_after(pid: int, recorded_s: float) -> bool:
    """True when process ``pid`` started after ``recorded_s``: it cannot have written that
    record, so the pid was reused by an unrelated process (e.g. a restarted container)."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time()) > recorded_s + _START_SLACK_S
    except Exception:  # psutil missing, or the process just ended: trust the pid
        return False


class ExperimentLease:
    """Held from ``acquire`` (or ``with``) to ``release``; see the module docstring."""

    def __init__(
        self, base_dir: Path | str, experiment_id: str, *, machine_rank: int | None = None
    ) -> None:
        """``machine_rank``: a multi-node run, whose machines (sharing a results folder, maybe
        on one host) each take their own lease; their ranks are not checked against each
        other's."""
        self.layout = ResultsLayout(base_dir)
        self.experiment_id = experiment_id
        self._machine_rank = machine_rank
        self._path = self.layout.lease_file(experiment_id, machine_rank or 0)
        self._holder = self.layout.lease_holder_file(experiment_id, machine_rank or 0)
        self._lock: FileLock | None = None

    def _refuse(self, pid: int | str, host: str, what: str) -> ConfigurationError:
        return ConfigurationError(
            f"experiment {self.experiment_id} is being measured by {what} PID {pid} on {host}; "
            "wait for it to finish (or stop it) before running or resuming it again"
        )

    def _live_recorded_pid(self) -> tuple[int, str] | None:
        """A process of this experiment recorded on this host that is still alive (not us)."""
        host = socket.gethostname()
        mine = {os.getpid(), os.getppid()}
        # (pid, what, epoch seconds by which that process existed: it wrote the record)
        candidates: list[tuple[int, str, float]] = []
        state = read_state(self.layout.state_file(self.experiment_id))
        if state is not None and state.status in ("running", "pending"):
            recorded = state.updated_at.timestamp()
            if state.pid is not None and state.hostname == host:
                candidates.append((state.pid, "the run", recorded))
            candidates += [(p.pid, f"rank {r}", recorded) for r, p in state.processes.items()
                           if p.status == "running" and p.pid is not None and p.hostname == host]
        for rank, beat in read_heartbeats(self.layout.root, self.experiment_id).items():
            if beat.hostname == host and not beat.stopped:
                candidates.append((beat.pid, f"rank {rank}", beat.time_s))
        for pid, what, recorded_s in candidates:
            if pid not in mine and pid_is_alive(pid) and not _started_after(pid, recorded_s):
                return pid, what
        return None

    def acquire(self) -> ExperimentLease:
        """Take the lease now, or raise ConfigurationError naming the live holder."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self._path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            holder = self._read_holder()
            raise self._refuse(str(holder.get("pid", "?")), str(holder.get("hostname", "?")),
                               "another process,") from None
        try:
            atomic_write_text(self._holder, json.dumps(
                {"pid": os.getpid(), "hostname": socket.gethostname(), "since": time.time()}),
                durable=False)
            live = self._live_recorded_pid() if self._machine_rank is None else None
            if live is not None:
                raise self._refuse(live[0], socket.gethostname(), f"{live[1]},")
        except BaseException:
            self._holder.unlink(missing_ok=True)
            lock.release()
            raise
        self._lock = lock
        return self

    def _read_holder(self, wait_s: float = 2.0) -> dict[str, object]:
        """The holder's record; it writes it right after taking the lock, so wait briefly."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                data = json.loads(self._holder.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    return data
            except (OSError, ValueError):
                pass
            if time.monotonic() >= deadline:
                return {}
            time.sleep(0.05)

    def release(self) -> None:
        """Give the lease back (safe twice)."""
        if self._lock is not None:
            self._holder.unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    def __enter__(self) -> ExperimentLease:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
