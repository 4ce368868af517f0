"""Running one study run's worker as a subprocess, with a time limit.

The worker (``python -m llm_energy_measure.orchestration.study.worker``) starts in a new
session, i.e. its own process group, so that a timeout (or Ctrl+C here) stops it and every
process it started: SIGINT first (the experiment records itself as interrupted), SIGKILL after
a grace period. A crash or out-of-memory kill of the worker fails that run only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import llm_energy_measure
from llm_energy_measure.orchestration.study.executors.base import (
    EXIT_ORPHANED,
    EXIT_RETRYABLE,
    RunOutcome,
    RunSpec,
)
from llm_energy_measure.processes import stop_process_group

WORKER_MODULE = "llm_energy_measure.orchestration.study.worker"
#: Seconds between SIGINT and SIGKILL when a worker is stopped.
KILL_GRACE_S = 5.0
_TAIL_BYTES = 65_536
_ERROR_PREFIX = "error: "


def worker_command(spec: RunSpec, python: str | None = None) -> list[str]:
    """The command line that runs ``spec`` in a fresh interpreter."""
    return [
        python or sys.executable, "-m", WORKER_MODULE,
        "--config", str(spec.config_path),
        "--experiment-id", spec.experiment_id,
        "--results-dir", str(spec.results_dir),
        "--parent-pid", str(os.getpid()),
    ]


def worker_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment plus ``extra``, with this package's folder first on PYTHONPATH (so
    the worker imports the same code even from a source checkout)."""
    env = {**os.environ, **(extra or {})}
    root = str(Path(llm_energy_measure.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def last_error_line(log_path: Path) -> str | None:
    """The last ``error: ...`` line the worker wrote to its log (without the prefix)."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(max(handle.seek(0, os.SEEK_END) - _TAIL_BYTES, 0))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    lines = [line for line in tail.splitlines() if line.startswith(_ERROR_PREFIX)]
    return lines[-1][len(_ERROR_PREFIX):].strip() if lines else None


def outcome_for_exit(returncode: int, log_path: Path, duration_s: float) -> RunOutcome:
    """Map a worker's exit status to an outcome (the cause is read from its log)."""
    if returncode == 0:
        return RunOutcome("completed", duration_s=duration_s)
    cause = last_error_line(log_path)
    if returncode == EXIT_RETRYABLE:
        return RunOutcome("failed", cause or "transient failure", retryable=True,
                          duration_s=duration_s)
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else ""
        hint = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        cause = f"worker killed by signal {name or -returncode}{hint}"
    elif returncode == EXIT_ORPHANED:
        cause = "worker stopped: the process that started it is gone"
    return RunOutcome("failed", cause or f"worker exited with code {returncode}; see {log_path}",
                      duration_s=duration_s)


def run_worker(spec: RunSpec, *, python: str | None = None,
               grace_s: float = KILL_GRACE_S) -> RunOutcome:
    """Run ``spec``'s worker to the end or to ``spec.timeout_s`` (then status ``timeout``).

    Output goes to ``spec.log_path`` (appended: every attempt of a run shares one log).
    """
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(spec.log_path, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {spec.experiment_id}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            worker_command(spec, python), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, env=worker_env(spec.env),
        )
        try:
            returncode = proc.wait(timeout=spec.timeout_s)
        except subprocess.TimeoutExpired:
            stop_process_group(proc, grace_s, first_signal=signal.SIGINT)
            return RunOutcome("timeout", f"no result within timeout_s={spec.timeout_s:g} s; "
                              "the worker was stopped", duration_s=time.monotonic() - started)
        except BaseException:
            stop_process_group(proc, grace_s, first_signal=signal.SIGINT)
            raise
    return outcome_for_exit(returncode, spec.log_path, time.monotonic() - started)


class LocalStudyExecutor:
    """Runs each worker as a subprocess of this process, one at a time."""

    name = "local"
    parallel = False

    def __init__(self, python: str | None = None) -> None:
        self._python = python

    def run(self, spec: RunSpec, on_submitted: Callable[[str], None]) -> RunOutcome:
        return run_worker(spec, python=self._python)
