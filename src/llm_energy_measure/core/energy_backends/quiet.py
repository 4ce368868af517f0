"""Silencing third-party hardware probes that print straight to the process's stdout/stderr.

codecarbon probes for AMD GPUs (through amdsmi, which prints from C when ROCm is absent) and
logs at import; that noise would land in the middle of our CLI output. The probe's output is
captured at the file-descriptor level and re-logged at debug level instead.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from loguru import logger


@contextmanager
def captured_native_output(label: str) -> Iterator[None]:
    """Redirect fds 1 and 2 into a temporary file for the block; log what was written."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace").strip()
            if text:
                logger.debug(f"{label} printed: {text}")
