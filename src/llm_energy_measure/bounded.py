"""Guards that keep untrusted input bounded: file reads, JSON nesting, integer length.

* ``read_regular_file`` reads only a regular file (a FIFO, a device such as ``/dev/zero``, a
  socket or a directory is refused before a byte is read, so nothing hangs or reads without
  end) and at most ``max_bytes + 1`` bytes of it. Its refusals are ``FileRefusedError``, an
  ``OSError`` whose ``strerror`` says why and whose ``filename`` names the file, so callers
  that already turn ``OSError`` into one line need nothing more.
* ``json_too_deep`` finds, without recursion, whether JSON text nests deeper than a limit:
  Python's parser and everything after it recurse, so depth is checked before parsing.
* ``bounded_int`` is a ``json.loads(parse_int=...)`` hook refusing integers longer than a
  limit (Python itself refuses above 4,300 digits with an internal message).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

_READ_CHUNK = 1024 * 1024
#: A JSON string (skipped whole, escapes included) or a bracket; the unrolled loop avoids
#: backtracking on long strings.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefusedError(OSError):
    """A file that is not read: not a regular file, or larger than the limit."""

    def __init__(self, code: int, reason: str, path: str | os.PathLike[str]) -> None:
        super().__init__(code, reason, os.fspath(path))


def file_kind(mode: int) -> str:
    """``"a FIFO (named pipe)"``, ``"a character device"``... for a stat mode."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def describe_size(num_bytes: int) -> str:
    """``1048576`` -> ``"1 MiB"`` (binary units, whole numbers when exact)."""
    for factor, unit in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if num_bytes >= factor:
            value = num_bytes / factor
            return f"{value:.0f} {unit}" if value.is_integer() else f"{value:.1f} {unit}"
    return f"{num_bytes} bytes"


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``max_bytes`` bytes.

    Symlinks are followed. The file is opened non-blocking (opening a FIFO never waits for a
    writer) and checked with ``fstat`` on the open descriptor (no race between check and
    read); at most ``max_bytes + 1`` bytes are read, so a file that grows meanwhile is still
    refused. Raises ``FileRefusedError`` (not a regular file: EINVAL with its kind; too large:
    EFBIG) or the ``OSError`` of opening/reading, each naming ``path``.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            code = errno.EISDIR if stat.S_ISDIR(info.st_mode) else errno.EINVAL
            raise FileRefusedError(code, f"{file_kind(info.st_mode)}, not a regular file", path)
        if info.st_size > max_bytes:
            raise _too_large(path, max_bytes)
        chunks: list[bytes] = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, _READ_CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        if remaining <= 0:
            raise _too_large(path, max_bytes)
        return b"".join(chunks)
    except FileRefusedError:
        raise
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from None
    finally:
        os.close(fd)


def _too_large(path: str | os.PathLike[str], max_bytes: int) -> FileRefusedError:
    return FileRefusedError(
        errno.EFBIG, f"larger than the limit of {describe_size(max_bytes)}", Path(path)
    )


def json_too_deep(text: str, limit: int) -> bool:
    """True when JSON ``text`` nests lists/objects more than ``limit`` levels deep.

    Iterative (strings are skipped whole), so it is safe on any input; on malformed JSON the
    answer only concerns the brackets outside complete strings.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


class IntegerTooLongError(ValueError):
    """An integer with more digits than allowed."""

    def __init__(self, digits: int, limit: int) -> None:
        self.digits = digits
        self.limit = limit
        super().__init__(f"an integer has {digits} digits; at most {limit} are accepted")


def bounded_int(limit: int) -> Callable[[str], int]:
    """A ``parse_int`` hook for ``json.loads``: ``int(text)``, or IntegerTooLongError when
    ``text`` has more than ``limit`` digits."""

    def parse(text: str) -> int:
        digits = len(text.lstrip("+-"))
        if digits > limit:
            raise IntegerTooLongError(digits, limit)
        return int(text)

    return parse
