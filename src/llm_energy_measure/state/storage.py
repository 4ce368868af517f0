"""Reading, writing and locking one state file."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout
from pydantic import ValidationError

from llm_energy_measure.bounded import read_regular_file
from llm_energy_measure.constants import MAX_STATE_BYTES
from llm_energy_measure.exceptions import ConfigurationError, ResultsError
from llm_energy_measure.state.models import ExperimentState
from llm_energy_measure.storage.atomic import atomic_write_text


def lock_path_for(path: Path) -> Path:
    """The lock file guarding ``path``: ``<path>.lock``."""
    return path.with_name(f"{path.name}.lock")


@contextlib.contextmanager
def state_lock(path: Path, timeout_s: float) -> Iterator[None]:
    """Hold the inter-process lock of ``path``; ResultsError after ``timeout_s`` seconds.

    The lock is an OS file lock, released by the kernel if its holder dies, so a leftover
    ``.lock`` file never blocks anyone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = lock_path_for(path)
    lock = FileLock(lock_path, timeout=timeout_s)
    try:
        lock.acquire()
    except Timeout as exc:
        raise ResultsError(
            f"state lock {lock_path} still held after {timeout_s:g} s; "
            "another llm-energy-measure process is updating this experiment"
        ) from exc
    try:
        yield
    finally:
        lock.release()


def read_state(path: Path) -> ExperimentState | None:
    """The state stored at ``path``, None if absent; ResultsError (one line) if unreadable.

    Unreadable covers bad UTF-8 or JSON, a failed validation, an unknown schema version, and
    a file whose ``experiment_id`` differs from its name.
    """
    try:
        data = read_regular_file(path, MAX_STATE_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ResultsError(f"state file {path} cannot be read ({exc.strerror})") from None
    try:
        state = ExperimentState.model_validate(json.loads(data.decode("utf-8")))
    except (ValueError, ConfigurationError) as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "file"
            reason = f"{where}: {first['msg']}"
        else:
            reason = str(exc).splitlines()[0]
        raise ResultsError(
            f"state file {path} is unreadable ({reason}); delete it to start over"
        ) from exc
    if state.experiment_id != path.stem:
        raise ResultsError(
            f"state file {path} holds experiment {state.experiment_id!r}, not {path.stem!r}; "
            "delete or rename it"
        )
    return state


def write_state(path: Path, state: ExperimentState) -> None:
    """Store ``state`` at ``path`` atomically (temp file, fsync, rename) as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, state.model_dump_json(indent=2) + "\n")
