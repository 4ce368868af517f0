"""What every study executor shares: one run's spec, its outcome, and the executor protocol."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

#: Worker exit code for a failure worth retrying (``RetryableError``); BSD's EX_TEMPFAIL.
EXIT_RETRYABLE = 75
#: Worker exit code when it noticed that the process that started it is gone.
EXIT_ORPHANED = 71

OutcomeStatus = Literal["completed", "failed", "timeout"]


@dataclass(frozen=True)
class RunSpec:
    """One run: an experiment id, its resolved config file, where results go, its time limit,
    and environment variables to add for its worker.

    Paths are absolute so the worker may start in another folder (a Slurm node).
    """

    experiment_id: str
    config_path: Path
    results_dir: Path
    log_path: Path
    timeout_s: float | None = None
    #: Environment variables added for the worker (e.g. the study's shared server).
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended. ``retryable``: a transient failure that another attempt may fix."""

    status: OutcomeStatus
    error: str | None = None
    retryable: bool = False
    duration_s: float | None = None


class SubmittedRun(Protocol):
    """A run handed to a batch system, not yet finished."""

    job_id: str

    def done(self) -> bool: ...

    def outcome(self) -> RunOutcome: ...

    def cancel(self) -> None: ...


class StudyExecutor(Protocol):
    """Runs the worker of one run at a time (``run``)."""

    name: str
    parallel: bool

    def run(self, spec: RunSpec, on_submitted: Callable[[str], None]) -> RunOutcome: ...


@runtime_checkable
class ArrayStudyExecutor(StudyExecutor, Protocol):
    """An executor that can also submit many runs at once (e.g. a Slurm job array); used
    when its ``parallel`` is true."""

    def submit_many(self, specs: list[RunSpec]) -> list[SubmittedRun]: ...
