"""Atomic file writes: a reader sees the old file or the new one, never a partial one.

What may be written over: nothing, or a regular file. An existing target that is anything
else (a FIFO, a device such as ``/dev/full``, a socket, a directory) is refused with a
ConfigurationError naming it, instead of being replaced by a regular file. A symlink is
followed explicitly: the file it points to is replaced and the link is kept (a link to
something other than a regular file is refused, and the message says that links are
followed). Every OSError raised names the target file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from llm_energy_measure.bounded import file_kind
from llm_energy_measure.exceptions import ConfigurationError

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

    ``path`` must be absent or a regular file; a symlink is followed (see the module doc).
    The bytes go to a temporary file in the same folder (``.<name>.<random>.tmp``), which is
    flushed, fsynced (when ``durable``) and renamed over ``path`` with ``os.replace``; the
    folder is fsynced too so that the rename survives a power cut. The temporary file is
    removed if anything fails. Permissions follow the process umask. The returned stat is
    taken from the written file itself, so it describes exactly these bytes even if another
    writer replaces ``path`` right after.
    """
    target = write_target(path)
    directory = target.parent
    tmp = directory / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
            written = os.fstat(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from None
        raise
    if durable:
        _fsync_directory(directory)
    return written


def _naming(exc: OSError, path: Path) -> OSError:
    """The same error (same errno, so the same OSError subclass), naming the target file."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OSError(exc.errno, f"cannot write the file: {reason}", os.fspath(path))


def write_target(path: Path) -> Path:
    """The file a write to ``path`` replaces: ``path``, or the target of a symlink at ``path``
    (followed). ConfigurationError, naming the path, when an existing target is not a
    regular file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise _naming(exc, path) from None
    if stat.S_ISREG(info.st_mode):
        return path
    if not stat.S_ISLNK(info.st_mode):
        raise ConfigurationError(
            f"{path} exists and is {file_kind(info.st_mode)}, not a regular file; refusing to "
            "replace it: give the path of a file"
        )
    target = Path(os.path.realpath(path))
    try:
        target_info = os.stat(target)
    except FileNotFoundError:
        return target  # a dangling link: the file it names is created
    except OSError as exc:
        raise _naming(exc, path) from None
    if not stat.S_ISREG(target_info.st_mode):
        raise ConfigurationError(
            f"{path} is a symlink to {target}, which is {file_kind(target_info.st_mode)}, not "
            "a regular file; symlinks are followed, so nothing was written: give the path of a "
            "file"
        )
    return target


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> os.stat_result:
    """UTF-8 text variant of ``atomic_write_bytes``."""
    return atomic_write_bytes(path, text.encode("utf-8"), durable=durable)
