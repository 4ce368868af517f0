"""Atomic file writes: a reader sees the old file or the new one, never a partial one."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

#: Suffix of in-flight temporary files (they also start with "." so listings skip them).
TEMP_SUFFIX = ".tmp"


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> os.stat_result:
    """Write ``data`` to ``path`` atomically; return the stat of the file written.

    The bytes go to a temporary file in the same folder (``.<name>.<random>.tmp``), which is
    flushed, fsynced (when ``durable``) and renamed over ``path`` with ``os.replace``; the
    folder is fsynced too so that the rename survives a power cut. The temporary file is
    removed if anything fails. Permissions follow the process umask. The returned stat is
    taken from the written file itself, so it describes exactly these bytes even if another
    writer replaces ``path`` right after.
    """
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
            stat = os.fstat(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_directory(directory)
    return stat


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> os.stat_result:
    """UTF-8 text variant of ``atomic_write_bytes``."""
    return atomic_write_bytes(path, text.encode("utf-8"), durable=durable)
