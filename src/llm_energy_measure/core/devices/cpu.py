"""Host CPU and memory facts, for the environment record and for energy estimates."""

from __future__ import annotations

import os
import platform
from pathlib import Path

_CPUINFO = Path("/proc/cpuinfo")
_MEMINFO = Path("/proc/meminfo")
_MODEL_KEYS = ("model name", "hardware", "model", "cpu model", "processor")


def cpu_model_name(cpuinfo_path: Path = _CPUINFO) -> str | None:
    """CPU model string (``/proc/cpuinfo`` on Linux, else ``platform.processor()``).

    None when neither says anything useful.
    """
    try:
        text = cpuinfo_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key not in fields and value.strip():
            fields[key] = value.strip()
    for key in _MODEL_KEYS:
        value = fields.get(key, "")
        # On x86 "processor" is a number; only take text that names something.
        if value and not value.isdigit():
            return value
    fallback = platform.processor()
    return fallback or None


def cpu_count() -> int | None:
    """Logical CPUs of the host (None when unknown)."""
    return os.cpu_count()


def cpu_count_available() -> int | None:
    """Logical CPUs this process may run on (its affinity mask), None when unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def total_memory_bytes(meminfo_path: Path = _MEMINFO) -> int | None:
    """Installed memory in bytes (``MemTotal`` of ``/proc/meminfo``; psutil elsewhere)."""
    try:
        for line in meminfo_path.read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                parts = line.split()
                return int(parts[1]) * 1024  # the file says kB, meaning KiB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().total)
