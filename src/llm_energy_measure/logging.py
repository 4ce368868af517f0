"""Logging setup (loguru): console verbosity, optional file sinks, secrets always redacted.

Every sink this module adds writes the fully formatted record (message *and* any traceback)
through ``security.redact_text``; a global patcher also redacts ``record["message"]`` so that
sinks added elsewhere do not see secrets either. Tracebacks never show local variable values
(``diagnose=False``), since those may hold credentials that no pattern recognises.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import IO, Any

from loguru import logger

from llm_energy_measure.security import redact_text

#: stderr without --verbose: level and message only.
CONSOLE_FORMAT = "<level>{level: <8}</level> {message}"
#: stderr with --verbose: time and origin too.
VERBOSE_CONSOLE_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{line}</cyan> - {message}"
)
#: Log files: full timestamp with UTC offset, process id and origin.
FILE_FORMAT = (
    "{time:YYYY-MM-DDTHH:mm:ss.SSSZZ} | {level: <8} | pid={process} | "
    "{name}:{function}:{line} - {message}"
)

_lock = threading.Lock()
_configured_ids: list[int] = []
_default_handler_removed = False


class _RedactingStderr:
    """Loguru stream sink writing redacted text to the *current* ``sys.stderr``."""

    def write(self, message: str) -> None:
        sys.stderr.write(redact_text(message))

    def flush(self) -> None:
        sys.stderr.flush()


class _RedactingFile:
    """Loguru stream sink appending redacted, line-buffered text to a UTF-8 file.

    Append mode lets several processes of one experiment share a file: each record is one
    ``write`` call on an ``O_APPEND`` descriptor.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def write(self, message: str) -> None:
        self._file.write(redact_text(message))

    def flush(self) -> None:
        self._file.flush()

    def stop(self) -> None:
        """Called by loguru when the sink is removed."""
        self._file.close()


def _redact_record(record: Any) -> None:
    record["message"] = redact_text(record["message"])


def _console_level(verbosity: int, quiet: bool) -> str:
    if quiet:
        return "WARNING"
    if verbosity >= 2:
        return "TRACE"
    if verbosity == 1:
        return "DEBUG"
    return "INFO"


def _use_colour() -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def setup_logging(verbosity: int = 0, quiet: bool = False, log_file: Path | None = None) -> None:
    """Configure console (stderr) logging and an optional DEBUG log file.

    Console level: ``quiet`` -> WARNING and above (``quiet`` wins over ``verbosity``); 0 ->
    INFO; 1 -> DEBUG with timestamps and origin; 2+ -> TRACE. ``log_file`` (parents created)
    receives DEBUG and above in ``FILE_FORMAT``. Calling this again replaces the sinks of the
    previous call instead of adding more; sinks from ``add_experiment_log`` are kept.
    """
    global _default_handler_removed
    with _lock:
        for handler_id in _configured_ids:
            remove_log_sink(handler_id)
        _configured_ids.clear()
        if not _default_handler_removed:
            remove_log_sink(0)  # loguru's own stderr handler, which would duplicate ours
            _default_handler_removed = True
        logger.configure(patcher=_redact_record)

        verbose = verbosity >= 1 and not quiet
        _configured_ids.append(
            logger.add(
                _RedactingStderr(),
                level=_console_level(verbosity, quiet),
                format=VERBOSE_CONSOLE_FORMAT if verbose else CONSOLE_FORMAT,
                colorize=_use_colour(),
                backtrace=verbose,
                diagnose=False,
            )
        )
        if log_file is not None:
            _configured_ids.append(_add_file_sink(Path(log_file)))


def _add_file_sink(path: Path) -> int:
    return logger.add(
        _RedactingFile(path),
        level="DEBUG",
        format=FILE_FORMAT,
        colorize=False,
        backtrace=True,
        diagnose=False,
    )


def experiment_log_file(results_dir: Path, experiment_id: str) -> Path:
    """The experiment's log file (``storage.layout``); the id is validated."""
    from llm_energy_measure.storage.layout import ResultsLayout

    return ResultsLayout(results_dir).experiment_log(experiment_id)


def add_experiment_log(path: Path) -> int:
    """Attach a DEBUG file sink (full format, redacted) for one run; returns its handler id.

    Detach it with ``remove_log_sink`` when the run ends, also on failure.
    """
    logger.configure(patcher=_redact_record)
    return _add_file_sink(Path(path))


def remove_log_sink(handler_id: int) -> None:
    """Detach a sink (closing its file); a sink already removed is ignored."""
    with contextlib.suppress(ValueError):
        logger.remove(handler_id)
