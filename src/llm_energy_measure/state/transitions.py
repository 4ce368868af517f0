"""Lifecycle transitions of an ExperimentState, as pure in-place changes (no I/O).

``StateStore`` applies these under its file lock; keeping them here lets the rules be read
and tested without files.
"""

from __future__ import annotations

from datetime import datetime

from llm_energy_measure.exceptions import ResultsError
from llm_energy_measure.security import redact_text
from llm_energy_measure.state.models import ExperimentState, ProcessStatus, derive_status


def describe_error(cause: BaseException | str) -> str:
    """One stored error text: ``"<ExceptionType>: <message>"`` for exceptions, redacted."""
    text = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
    return redact_text(text)


def start_run(state: ExperimentState, *, pid: int, hostname: str) -> None:
    """Start or resume: status running, error cleared, coordinator ``pid``@``hostname`` recorded.

    Ranks that had not completed go back to pending (their earlier attempt is void); completed
    ranks keep their status, so a resume can skip them.
    """
    state.status = "running"
    state.error = None
    state.pid = pid
    state.hostname = hostname
    for process in state.processes.values():
        if process.status != "completed":
            process.status, process.error = "pending", None
            process.started_at = process.finished_at = None


def set_process_status(
    state: ExperimentState,
    rank: int,
    status: ProcessStatus,
    *,
    now: datetime,
    pid: int,
    hostname: str,
    error: BaseException | str | None = None,
) -> None:
    """Set one rank's status, then the experiment's status from ``derive_status``.

    ``running`` records ``now`` as start time and the rank's ``pid``/``hostname``;
    ``completed``/``failed`` record ``now`` as finish time; ``error`` is kept only for
    ``failed``. Raises ResultsError for a rank the experiment does not have.
    """
    if rank not in state.processes:
        raise ResultsError(
            f"experiment {state.experiment_id!r} has ranks 0..{state.num_processes - 1}, not {rank}"
        )
    process = state.processes[rank]
    process.status = status
    if status == "running":
        process.started_at, process.finished_at = now, None
        process.pid, process.hostname = pid, hostname
    elif status in ("completed", "failed"):
        process.finished_at = now
    process.error = describe_error(error) if status == "failed" and error else None
    state.status, state.error = derive_status(state)


def finish(state: ExperimentState) -> None:
    """Status completed, error cleared."""
    state.status, state.error = "completed", None


def fail(state: ExperimentState, cause: BaseException | str) -> None:
    """Status failed with ``cause`` (redacted) as the experiment's error."""
    state.status, state.error = "failed", describe_error(cause)


def interrupt(state: ExperimentState) -> None:
    """Status interrupted; an already completed experiment stays completed. Ranks that were
    running go back to pending: their attempt stopped, a resume runs them again."""
    if state.status != "completed":
        state.status = "interrupted"
        for process in state.processes.values():
            if process.status == "running":
                process.status, process.error, process.finished_at = "pending", None, None
