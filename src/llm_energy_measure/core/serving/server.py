"""A server process the run starts itself and always stops: the one owner of that process.

``ManagedServer`` starts a command in a process group of its own (``start_new_session``),
appends its stdout and stderr to a log file, waits until its health URL answers 200, and
stops the whole group (SIGTERM, a grace period, SIGKILL) however the run ends. The server's
children (vLLM's engine-core and worker processes) are in its group, so none outlives it.

Until ``stop`` the server's exit is only peeked at (``waitid`` with ``WNOWAIT``), never
reaped: a server that died keeps its process group id reserved for as long as it stays a
zombie, so ``stop`` still reaches the children it left behind. ``stop`` returns once no live
process of the group is left (read from /proc on Linux).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from loguru import logger

from llm_energy_measure.exceptions import InferenceError
from llm_energy_measure.processes import stop_process_group
from llm_energy_measure.resilience import backoff_delay_s

#: Seconds between health checks: doubling from the first to the cap (no jitter).
HEALTH_FIRST_DELAY_S = 0.05
HEALTH_MAX_DELAY_S = 1.0
#: Longest a single health request may take (s), within the start-up timeout.
HEALTH_REQUEST_TIMEOUT_S = 5.0
#: Lines of the server's log quoted in an error, and the bytes read to find them.
LOG_TAIL_LINES = 5
_LOG_TAIL_BYTES = 16_384
#: Seconds stop() waits for the group's last members to die after SIGKILL.
_GROUP_EXIT_WAIT_S = 5.0


class ServerError(InferenceError):
    """The managed server could not be started, or died; the message is one line."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the OS picks it).

    Another process may take it before the server binds it; the server then fails to
    start, and ``ManagedServer.start`` reports its exit with the log's last lines.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` non-empty lines of the text file at ``path`` ([] if unreadable);
    only the file's last 16 KiB are read."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _LOG_TAIL_BYTES))
            data = handle.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()][-lines:]


def _peek_exit(proc: subprocess.Popen[bytes]) -> int | None:
    """Exit code of ``proc`` if it has exited (negative signal number when killed), without
    reaping it where ``os.waitid`` exists (Linux); None while it runs."""
    if proc.returncode is not None:
        return proc.returncode
    if not hasattr(os, "waitid"):  # e.g. macOS: poll() reaps the leader
        return proc.poll()
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return proc.poll()
    if info is None or info.si_pid == 0:
        return None
    if info.si_code == os.CLD_EXITED:
        return int(info.si_status)
    return -int(info.si_status)


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes of process group ``pgid``, read from /proc
    ([] where there is no /proc)."""
    members: list[int] = []
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return members
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile, or not readable
            continue
        # Fields after the command name (which may hold spaces): state ppid pgrp ...
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _await_group_exit(pgid: int, timeout_s: float) -> list[int]:
    """SIGKILL what is left of group ``pgid`` until no live member remains, for at most
    ``timeout_s`` seconds; the pids still alive then."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = group_members(pgid)
        if not left or time.monotonic() >= deadline:
            return left
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        time.sleep(0.02)


class ManagedServer:
    """One server process: started by ``start``, stopped (always) by ``stop``.

    ``command`` is run as given (no shell) with ``env`` added to this process's environment;
    ``base_url`` is where clients reach it (kept for them, not read here); ``health_url`` is
    polled until it answers HTTP 200, for at most ``startup_timeout_s`` seconds; ``stop``
    gives the server ``stop_grace_s`` seconds to exit after SIGTERM before SIGKILL.
    stdout and stderr are appended to ``log_path`` (its folder is created). ``clock`` and
    ``sleep`` (seconds) pace the health checks. As a context manager it starts on entry and
    stops on exit, whatever happens inside.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        base_url: str,
        health_url: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float,
        stop_grace_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not command:
            raise ValueError("the server command is empty")
        if startup_timeout_s <= 0 or stop_grace_s < 0:
            raise ValueError("startup_timeout_s must be > 0 and stop_grace_s >= 0")
        self.command = [str(part) for part in command]
        self.base_url = base_url
        self.health_url = health_url
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self._clock = clock
        self._sleep = sleep
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    # ------------------------------------------------------------------ state

    @property
    def pid(self) -> int | None:
        """The server's process id (also its process group id); None before ``start``."""
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit code once the server has exited (negative: killed by that signal)."""
        return _peek_exit(self._proc) if self._proc is not None else None

    def alive(self) -> bool:
        """True between ``start`` and the server's exit (or ``stop``)."""
        return self._proc is not None and not self._stopped and self.returncode is None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the server and return once ``health_url`` answers 200.

        Raises ServerError (the server is then stopped, no process left) when the server
        exits during start-up (naming its exit code and its log's last lines) or is not
        healthy within ``startup_timeout_s``; any other failure (Ctrl+C included) also
        stops it before propagating.
        """
        if self._proc is not None:
            raise ServerError("the server was already started; a ManagedServer starts once")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env},
                    start_new_session=True,
                )
            except OSError as exc:
                raise ServerError(
                    f"cannot start the server {self.command[0]!r}: {exc.strerror or exc}"
                ) from exc
        logger.debug("server started (pid {}): {}", self._proc.pid, " ".join(self.command))
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        import httpx

        started_s = self._clock()
        deadline_s = started_s + self.startup_timeout_s
        attempt = 0
        last = "no answer yet"
        # Loopback: never through a proxy named in the environment.
        with httpx.Client(trust_env=False) as client:
            while True:
                code = self.returncode
                if code is not None:
                    raise self._exited_error(code)
                remaining_s = deadline_s - self._clock()
                if remaining_s <= 0:
                    raise ServerError(
                        f"the server did not answer 200 at {self.health_url} within "
                        f"{self.startup_timeout_s:g} s ({last}); raise "
                        f"server.startup_timeout_s or see its log {self.log_path}"
                    )
                try:
                    response = client.get(
                        self.health_url, timeout=min(remaining_s, HEALTH_REQUEST_TIMEOUT_S)
                    )
                    if response.status_code == 200:
                        logger.debug("server healthy after {:.2f} s", self._clock() - started_s)
                        return
                    last = f"last answer: HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    last = f"last error: {type(exc).__name__}"
                delay_s = backoff_delay_s(
                    attempt, base_delay_s=HEALTH_FIRST_DELAY_S, max_delay_s=HEALTH_MAX_DELAY_S,
                    jitter=0.0, rng=lambda: 0.5,
                )
                attempt += 1
                self._sleep(max(0.0, min(delay_s, deadline_s - self._clock())))

    def _exited_error(self, code: int) -> ServerError:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = " | ".join(log_tail(self.log_path)) or "(empty log)"
        return ServerError(f"the server {how} during start-up; log {self.log_path}: {tail}")

    def stop(self) -> int | None:
        """Stop the server and every process of its group; its exit code (None if it never
        started). SIGTERM to the group, up to ``stop_grace_s`` seconds, then SIGKILL to what
        is left. Safe to call twice (the second call returns the same code)."""
        proc = self._proc
        if proc is None:
            return None
        if self._stopped:
            return proc.returncode
        # SIGTERM to the group, the grace for the server, SIGKILL to the group, reap it.
        stop_process_group(proc, self.stop_grace_s)
        # Members that outlived the leader (SIGKILL is asynchronous; a child that left the
        # group's leader behind): none may outlive stop().
        left = _await_group_exit(proc.pid, _GROUP_EXIT_WAIT_S)
        if left:
            logger.warning("server processes {} did not exit after SIGKILL", left)
        self._stopped = True
        logger.debug("server stopped (pid {}, exit code {})", proc.pid, proc.returncode)
        return proc.returncode

    def __enter__(self) -> ManagedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state: Any = "running" if self.alive() else self.returncode
        return f"ManagedServer(pid={self.pid}, {state}, {self.base_url})"
