"""Memory peaks over the measured window: GPU allocated/reserved through torch, CPU RSS.

``MemoryWindow`` implements ``protocols.MemoryWindow``. Torch is never imported here: GPU
peaks are read only when the caller already imported it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

from llm_energy_measure.domain import MemoryStats

#: Why GPU memory peaks are None on a process that holds no CUDA memory.
NO_CUDA_MEMORY = "no CUDA device holds memory in this process (CPU run)"


def _torch_if_loaded() -> Any | None:
    """The torch module if this process already imported it (never imports it)."""
    return sys.modules.get("torch")


# --- peak RSS -------------------------------------------------------------------------------


def _ru_maxrss_bytes() -> int | None:
    """Process-lifetime peak RSS from getrusage (KiB on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024


def _current_rss_bytes() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.Process().memory_info().rss)


class PeakRssTracker:
    """Peak resident set size of this process over a window.

    A daemon thread samples the RSS (psutil) every ``interval_s``, plus once at each edge.
    Sampling can miss a spike shorter than the interval, so the lifetime peak from
    ``getrusage`` (``ru_maxrss``) is used too: it only grows, so when it grew during the window
    the new value IS the window's peak, exactly. When it did not grow, the window peak lies
    below an earlier lifetime peak and the sampled maximum is the best figure available.
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_sampled: int | None = None
        self._maxrss_start: int | None = None
        self._lock = threading.Lock()

    def _sample(self) -> None:
        rss = _current_rss_bytes()
        if rss is None:
            return
        with self._lock:
            if self._peak_sampled is None or rss > self._peak_sampled:
                self._peak_sampled = rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> None:
        self.stop()
        self._stop = threading.Event()
        self._peak_sampled = None
        self._maxrss_start = _ru_maxrss_bytes()
        self._sample()
        if _current_rss_bytes() is not None:
            self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
            self._thread.start()

    def stop(self) -> int | None:
        """Stop sampling; peak RSS in bytes over the window (None if nothing measurable)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self._sample()
        peak = self._peak_sampled
        maxrss_end = _ru_maxrss_bytes()
        if (
            maxrss_end is not None
            and self._maxrss_start is not None
            and maxrss_end > self._maxrss_start
        ):
            peak = maxrss_end if peak is None else max(peak, maxrss_end)
        return peak


# --- the window --------------------------------------------------------------------------


class MemoryWindow:
    """Memory peaks over the measured window.

    ``devices`` are the CUDA devices whose peak memory is tracked ("cuda:0", ...). When None,
    the devices on which this process's caching allocator already holds memory when the window
    opens (the model is loaded by then) are used; none when torch was never imported or CUDA
    never initialised. GPU peaks are summed over devices (a sum of per-device peaks, which may
    occur at different moments). ``model_weights_bytes`` is copied into the MemoryStats
    (typically ``LoadedModel.info.weight_bytes``). RSS is sampled every ``rss_interval_s``
    (0.2 s: a sampling thread competes with the measured run for the cores, and the window's
    peak is exact from ``getrusage`` whenever it is a new lifetime peak; see PeakRssTracker).
    """

    def __init__(
        self,
        *,
        model_weights_bytes: int | None = None,
        devices: Sequence[str] | None = None,
        rss_interval_s: float = 0.2,
    ) -> None:
        self.model_weights_bytes = model_weights_bytes
        self._requested_devices = list(devices) if devices is not None else None
        self._devices: list[str] = []
        self._rss = PeakRssTracker(rss_interval_s)
        self._open = False

    def _cuda_devices(self) -> list[str]:
        torch = _torch_if_loaded()
        if torch is None or not torch.cuda.is_available():
            return []
        if self._requested_devices is not None:
            return [d for d in self._requested_devices if d.startswith("cuda")]
        if not torch.cuda.is_initialized():
            return []
        return [
            f"cuda:{i}"
            for i in range(torch.cuda.device_count())
            if torch.cuda.memory_reserved(i) > 0
        ]

    def start_window(self) -> None:
        """Reset GPU peak-memory counters (after a synchronize) and start tracking peak RSS."""
        self._devices = self._cuda_devices()
        if self._devices:
            torch = _torch_if_loaded()
            assert torch is not None
            for device in self._devices:
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
        self._rss.start()
        self._open = True

    def stop_window(self) -> MemoryStats:
        """Peaks since ``start_window``: GPU allocated/reserved (bytes, summed), CPU RSS."""
        if not self._open:
            raise RuntimeError("stop_window() called without start_window()")
        self._open = False
        allocated: int | None = None
        reserved: int | None = None
        if self._devices:
            torch = _torch_if_loaded()
            assert torch is not None
            allocated = reserved = 0
            for device in self._devices:
                torch.cuda.synchronize(device)
                allocated += int(torch.cuda.max_memory_allocated(device))
                reserved += int(torch.cuda.max_memory_reserved(device))
        return MemoryStats(
            model_weights_bytes=self.model_weights_bytes,
            gpu_peak_allocated_bytes=allocated,
            gpu_peak_reserved_bytes=reserved,
            cpu_peak_rss_bytes=self._rss.stop(),
            gpu_unmeasured=None if self._devices else NO_CUDA_MEMORY,
        )
