"""Background sampler of GPU power, temperature, utilisation, memory and clocks.

One daemon thread wakes every ``interval_ms`` (``Event.wait``, no busy loop) and appends one
:class:`UtilisationSample` per GPU. On a host without GPUs it records CPU utilisation
(psutil, whole host) and this process's RSS instead. It also watches for throttling and for
other processes on the GPUs, reported by :meth:`PowerSampler.warnings`.

``t_s`` of a sample is Unix epoch seconds: the wall clock read once at :meth:`start` plus the
monotonic time elapsed since, so spacing is immune to wall-clock jumps while samples of
several windows, cycles or processes stay on one time axis. All GPUs of one tick share the
same ``t_s``. The first tick is taken in ``start`` and the last in ``stop``, so the samples
span the whole window.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from loguru import logger

from llm_energy_measure.core.devices import GPU, THROTTLING_REASONS, query_or_none
from llm_energy_measure.domain import MeasurementWarning, UtilisationSample

_T = TypeVar("_T")



def integrate_power_j(samples: Iterable[UtilisationSample], device_id: str) -> float | None:
    """Energy in joules from a device's power samples, by the trapezoid rule over ``t_s``.

    Samples without power are skipped (the neighbours are joined). None with fewer than two
    power samples.
    """
    points = sorted(
        (s.t_s, s.power_w) for s in samples if s.device_id == device_id and s.power_w is not None
    )
    if len(points) < 2:
        return None
    energy_j = 0.0
    for (t0, p0), (t1, p1) in itertools.pairwise(points):
        energy_j += 0.5 * (p0 + p1) * (t1 - t0)
    return energy_j


def sampled_span_s(samples: Iterable[UtilisationSample], device_id: str) -> float:
    """Seconds between the first and last power sample of a device (0 with fewer than two)."""
    times = [s.t_s for s in samples if s.device_id == device_id and s.power_w is not None]
    return max(times) - min(times) if len(times) >= 2 else 0.0


def peak_power_w(samples: Iterable[UtilisationSample], device_id: str) -> float | None:
    """Highest sampled power of a device in watts, None without power samples."""
    powers = [s.power_w for s in samples if s.device_id == device_id and s.power_w is not None]
    return max(powers) if powers else None


class PowerSampler:
    """Samples ``gpus`` every ``interval_ms`` on a daemon thread between start() and stop().

    ``own_pids`` are the processes of this run (default: this process); any other process
    seen on a GPU draws an ``other_processes`` warning. Processes are checked every
    ``process_check_every`` ticks, throttle reasons every tick.
    """

    def __init__(
        self,
        gpus: Sequence[GPU],
        interval_ms: float = 100.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall_clock: Callable[[], float] = time.time,
        host: str | None = None,
        own_pids: Iterable[int] | None = None,
        process_check_every: int = 10,
    ) -> None:
        if interval_ms <= 0:
            raise ValueError(f"interval_ms must be > 0, got {interval_ms}")
        self.gpus = list(gpus)
        self.interval_ms = float(interval_ms)
        self._clock = clock
        self._wall_clock = wall_clock
        self.start_epoch_s = 0.0
        self._host = host or socket.gethostname()
        self._own_pids = set(own_pids) if own_pids is not None else {os.getpid()}
        self._process_check_every = max(1, process_check_every)
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._samples: list[UtilisationSample] = []
        self._t0 = 0.0
        self._ticks = 0
        self._throttled: dict[str, dict[str, int]] = {}
        self._other_pids: dict[str, set[int]] = {}
        self._process: Any = None

    @property
    def cpu_device_id(self) -> str:
        """Device id of the CPU-mode samples: ``<host>:cpu``."""
        return f"{self._host}:cpu"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Reset, take the first sample now, and start the thread."""
        if self._thread is not None:
            raise RuntimeError("PowerSampler already started")
        with self._lock:
            self._samples = []
            self._ticks = 0
            self._throttled = {}
            self._other_pids = {}
        self._stop_event.clear()
        if not self.gpus:
            self._prime_cpu_mode()
        self.start_epoch_s = self._wall_clock()
        self._t0 = self._clock()
        self._tick(self.start_epoch_s)
        self._thread = threading.Thread(target=self._run, name="power-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> list[UtilisationSample]:
        """Stop and join the thread, take a last sample now, and return all samples."""
        if self._thread is None:
            return self.samples
        self._stop_event.set()
        self._thread.join()
        self._thread = None
        self.sample()
        return self.samples

    @property
    def samples(self) -> list[UtilisationSample]:
        """A copy of the samples taken so far."""
        with self._lock:
            return list(self._samples)

    def _run(self) -> None:
        interval_s = self.interval_ms / 1000.0
        next_due = self._t0 + interval_s
        while not self._stop_event.wait(max(0.0, next_due - self._clock())):
            try:
                self.sample()
            except Exception as exc:  # a sampler error must not kill the measured run
                logger.warning("power sampler tick failed: {}", exc)
            next_due += interval_s
            now = self._clock()
            if next_due <= now:  # fell behind (suspended, slow device): skip missed ticks
                next_due = now + interval_s

    def sample(self) -> None:
        """Take one tick of samples now (thread-safe)."""
        self._tick(self.start_epoch_s + (self._clock() - self._t0))

    def _tick(self, t_s: float) -> None:
        check_processes = self._ticks % self._process_check_every == 0
        new = (
            [self._gpu_sample(gpu, t_s, check_processes) for gpu in self.gpus]
            if self.gpus
            else self._cpu_samples(t_s)
        )
        with self._lock:
            self._samples.extend(new)
            self._ticks += 1

    def _gpu_sample(self, gpu: GPU, t_s: float, check_processes: bool) -> UtilisationSample:
        reasons = query_or_none(gpu.throttle_reasons) or []
        throttling = [r for r in reasons if r in THROTTLING_REASONS]
        if throttling:
            with self._lock:
                counts = self._throttled.setdefault(gpu.uuid, {})
                for reason in throttling:
                    counts[reason] = counts.get(reason, 0) + 1
        if check_processes:
            pids = query_or_none(gpu.running_process_pids) or []
            others = self._foreign_pids(pids)
            if others:
                with self._lock:
                    self._other_pids.setdefault(gpu.uuid, set()).update(others)
        return UtilisationSample(
            t_s=t_s,
            device_id=gpu.device_id,
            power_w=query_or_none(gpu.power_w),
            temperature_c=query_or_none(gpu.temperature_c),
            utilisation_pct=query_or_none(gpu.utilisation_pct),
            memory_used_bytes=query_or_none(gpu.memory_used_bytes),
            sm_clock_mhz=query_or_none(gpu.sm_clock_mhz),
        )

    def _foreign_pids(self, pids: Sequence[int]) -> set[int]:
        seen = set(pids)
        if seen & self._own_pids:
            return seen - self._own_pids
        # Our own PID is not listed: either we hold no context here, or a PID namespace
        # (container) hides it. One process could then be us; two or more cannot all be.
        return seen if len(seen) > 1 else set()

    def _prime_cpu_mode(self) -> None:
        try:
            import psutil
        except ImportError:
            self._process = None
            return
        self._process = psutil.Process()
        psutil.cpu_percent(interval=None)  # the first call only sets the reference point

    def _cpu_samples(self, t_s: float) -> list[UtilisationSample]:
        if self._process is None:
            return []
        import psutil

        try:
            rss = int(self._process.memory_info().rss)
        except psutil.Error:
            rss = None
        return [
            UtilisationSample(
                t_s=t_s,
                device_id=self.cpu_device_id,
                utilisation_pct=float(psutil.cpu_percent(interval=None)),
                memory_used_bytes=rss,
            )
        ]

    def warnings(self) -> list[MeasurementWarning]:
        """``throttling`` and ``other_processes`` warnings for what the ticks saw."""
        with self._lock:
            throttled = {k: dict(v) for k, v in self._throttled.items()}
            others = {k: set(v) for k, v in self._other_pids.items()}
            ticks = self._ticks
        result: list[MeasurementWarning] = []
        for uuid, counts in sorted(throttled.items()):
            detail = ", ".join(f"{r} in {n}/{ticks} samples" for r, n in sorted(counts.items()))
            result.append(
                MeasurementWarning(
                    code="throttling",
                    message=f"GPU {uuid} ran below its clocks because of power or heat: {detail}",
                )
            )
        for uuid, pids in sorted(others.items()):
            listed = ", ".join(str(p) for p in sorted(pids))
            result.append(
                MeasurementWarning(
                    code="other_processes",
                    message=(
                        f"other processes used GPU {uuid} during the window (PIDs {listed}); "
                        "its energy includes their work"
                    ),
                )
            )
        return result
