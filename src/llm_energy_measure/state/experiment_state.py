"""StateStore: experiment state files, updated atomically under a per-experiment file lock."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from loguru import logger

from llm_energy_measure.exceptions import ConfigurationError, ResultsError
from llm_energy_measure.state.liveness import current_hostname, is_stale
from llm_energy_measure.state.models import (
    RESUMABLE_STATUSES,
    ExperimentState,
    ProcessStatus,
)
from llm_energy_measure.state.storage import lock_path_for, read_state, state_lock, write_state
from llm_energy_measure.state.transitions import (
    fail,
    finish,
    interrupt,
    set_process_status,
    start_run,
)
from llm_energy_measure.storage.layout import ResultsLayout
from llm_energy_measure.storage.repository import FileSystemRepository

#: ``update`` callbacks either return the new state or mutate the given copy and return None.
StateUpdate = Callable[[ExperimentState], "ExperimentState | None"]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class StateStore:
    """State of experiments under ``base_dir/state/<experiment_id>.json``.

    Every change goes through ``update``: it takes ``<file>.lock`` (a ``filelock.FileLock``,
    safe across processes), re-reads the file, applies the change and replaces the file
    atomically, so concurrent writers never lose each other's updates. Reads need no lock.
    Error texts are passed through ``redact_text`` before they are stored.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        clock: Callable[[], datetime] = _utc_now,
        lock_timeout_s: float = 60.0,
    ) -> None:
        self.layout = ResultsLayout(base_dir)
        self.base_dir = self.layout.root
        self.state_dir = self.layout.state_dir
        self._clock = clock
        self._lock_timeout_s = lock_timeout_s

    # ------------------------------------------------------------------ files and locking

    def path_for(self, experiment_id: str) -> Path:
        """State file of ``experiment_id`` (validated: ConfigurationError if unsafe)."""
        return self.layout.state_file(experiment_id)

    # ------------------------------------------------------------------ core API

    def create(
        self,
        experiment_id: str,
        *,
        config_name: str,
        num_processes: int = 1,
        config_path: str | Path | None = None,
        config_hash: str | None = None,
        overwrite: bool = False,
    ) -> ExperimentState:
        """Write a new pending state with ``num_processes`` pending ranks and return it.

        Raises ConfigurationError if state for this id exists and ``overwrite`` is False, and
        whenever a raw or aggregated result exists for the id (even without a state: the id
        is taken, see ``FileSystemRepository.ensure_unused_id``).
        """
        path = self.path_for(experiment_id)
        if num_processes < 1:
            raise ConfigurationError(f"num_processes must be >= 1, got {num_processes}")
        state = ExperimentState.new(
            experiment_id,
            config_name=config_name,
            num_processes=num_processes,
            now=self._clock(),
            config_path=None if config_path is None else str(config_path),
            config_hash=config_hash,
        )
        with state_lock(path, self._lock_timeout_s):
            if path.exists() and not overwrite:
                raise ConfigurationError(
                    f"experiment id {experiment_id!r} already has state at {path}; "
                    "choose another id, resume it, or delete it first"
                )
            FileSystemRepository(self.base_dir).ensure_unused_id(experiment_id)
            write_state(path, state)
        return state

    def load(self, experiment_id: str) -> ExperimentState | None:
        """The stored state, or None if there is none; ResultsError if the file is corrupted."""
        return read_state(self.path_for(experiment_id))

    def update(self, experiment_id: str, fn: StateUpdate) -> ExperimentState:
        """Apply ``fn`` to the current state under the lock and store the result atomically.

        ``fn`` receives a private copy; it may return a new state or mutate the copy and return
        None. ``updated_at`` is set here. The result is re-validated before it is written, so
        a bad change raises (pydantic ValidationError) and leaves the file untouched.
        Raises ResultsError if there is no state for ``experiment_id``.
        """
        path = self.path_for(experiment_id)
        with state_lock(path, self._lock_timeout_s):
            current = read_state(path)
            if current is None:
                raise ResultsError(f"no state for experiment {experiment_id!r} at {path}")
            draft = current.model_copy(deep=True)
            returned = fn(draft)
            new = draft if returned is None else returned
            new.updated_at = self._clock()
            validated = ExperimentState.model_validate(new.model_dump())
            if validated.experiment_id != current.experiment_id:
                raise ResultsError(f"an update may not change the experiment id of {path}")
            write_state(path, validated)
        return validated

    def delete(self, experiment_id: str) -> bool:
        """Remove the state file (and its lock file); True if a state file existed."""
        path = self.path_for(experiment_id)
        with state_lock(path, self._lock_timeout_s):
            existed = path.exists()
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.unlink(lock_path_for(path))
        return existed

    def list_states(self) -> list[ExperimentState]:
        """All readable states, oldest first; unreadable files are skipped with a warning."""
        states: list[ExperimentState] = []
        for path in sorted(self.state_dir.glob("*.json")):
            try:
                state = read_state(path)
            except ResultsError as exc:
                logger.warning("skipping state file: {}", exc)
                continue
            if state is not None:
                states.append(state)
        return sorted(states, key=lambda s: (s.created_at, s.experiment_id))

    def find_resumable(self, hostname: str | None = None) -> list[ExperimentState]:
        """Failed or interrupted experiments, and running ones whose recorded process died."""
        return [
            s for s in self.list_states() if s.status in RESUMABLE_STATUSES or is_stale(s, hostname)
        ]

    # ------------------------------------------------------------------ lifecycle helpers

    def mark_running(
        self, experiment_id: str, *, pid: int | None = None, hostname: str | None = None
    ) -> ExperimentState:
        """Start or resume a run (see ``transitions.start_run``); pid/host default to ours."""
        pid = os.getpid() if pid is None else pid
        host = hostname or current_hostname()
        return self.update(experiment_id, lambda s: start_run(s, pid=pid, hostname=host))

    def mark_process(
        self,
        experiment_id: str,
        rank: int,
        status: ProcessStatus,
        error: BaseException | str | None = None,
        *,
        pid: int | None = None,
        hostname: str | None = None,
    ) -> ExperimentState:
        """Set one rank's status and derive the experiment's (``transitions.set_process_status``).

        ``pid``/``hostname`` (recorded for ``running``) default to the calling process.
        """
        pid = os.getpid() if pid is None else pid
        host = hostname or current_hostname()
        now = self._clock()
        return self.update(
            experiment_id,
            lambda s: set_process_status(
                s, rank, status, now=now, pid=pid, hostname=host, error=error
            ),
        )

    def mark_completed(
        self, experiment_id: str, *, aggregated: bool | None = None
    ) -> ExperimentState:
        """Status completed, error cleared; ``aggregated`` is recorded when given.

        An experiment is completed once it is aggregated (``aggregated=True``): marking its
        last rank completed leaves it running (see ``derive_status``).
        """

        def change(state: ExperimentState) -> None:
            finish(state)
            if aggregated is not None:
                state.aggregated = aggregated

        return self.update(experiment_id, change)

    def mark_failed(self, experiment_id: str, cause: BaseException | str) -> ExperimentState:
        """Status failed with ``cause`` (an exception or text, redacted) as the error."""
        return self.update(experiment_id, lambda s: fail(s, cause))

    def mark_interrupted(self, experiment_id: str) -> ExperimentState:
        """Status interrupted (e.g. Ctrl+C); an already completed experiment stays completed."""
        return self.update(experiment_id, interrupt)

    def mark_aggregated(self, experiment_id: str, aggregated: bool = True) -> ExperimentState:
        """Record whether an aggregated result exists for this experiment."""
        return self.update(experiment_id, lambda s: setattr(s, "aggregated", aggregated))
