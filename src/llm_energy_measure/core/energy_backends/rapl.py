"""CPU package and DRAM energy from RAPL counters (host scope, wraparound handled)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from loguru import logger

from llm_energy_measure.core.devices import DeviceError, RaplDomain, counter_delta_uj
from llm_energy_measure.core.energy_backends.base import BaseEnergyBackend
from llm_energy_measure.core.types import EnergyReading
from llm_energy_measure.domain import DeviceEnergy
from llm_energy_measure.exceptions import EnergyTrackingError

NO_RAPL_MESSAGE = (
    "energy.backend is 'rapl' but no RAPL package/DRAM zone was found under "
    "/sys/class/powercap (not Linux, a VM, or the intel_rapl module is not loaded); use "
    "energy.backend auto or codecarbon"
)

#: Default seconds between counter polls during a window. RAPL counters wrap after
#: max_energy_range_uj (as little as ~4.3 kJ on some CPUs, i.e. ~10 s at 400 W); one poll
#: per wrap period is enough to count every wrap.
DEFAULT_POLL_INTERVAL_S = 1.0


class _Accumulator:
    """Running energy of one counter, summing deltas between polls (thread-safe)."""

    def __init__(self, domain: RaplDomain) -> None:
        self.domain = domain
        self._lock = threading.Lock()
        self._last_uj = 0
        self.total_uj = 0

    def reset(self) -> None:
        with self._lock:
            self._last_uj = self.domain.energy_uj()
            self.total_uj = 0

    def poll(self) -> None:
        with self._lock:
            now_uj = self.domain.energy_uj()
            self.total_uj += counter_delta_uj(
                self._last_uj, now_uj, self.domain.max_energy_range_uj
            )
            self._last_uj = now_uj


class RaplBackend(BaseEnergyBackend):
    """Energy of the RAPL package (kind ``cpu``) and DRAM (kind ``dram``) zones.

    Device ids are ``<host>:rapl:<zone name>`` with scope ``host``: measure them in one
    process per host. A poller thread reads the counters every ``poll_interval_s`` so that
    wraparounds inside long windows are counted; ``poll_interval_s=None`` turns it off
    (then call :meth:`poll` yourself, or keep windows shorter than one wrap period).
    Readable zones are checked at construction: a root-only ``energy_uj`` raises
    DevicePermissionError with the fix.
    """

    name = "rapl"

    def __init__(
        self,
        domains: Sequence[RaplDomain],
        *,
        host: str,
        poll_interval_s: float | None = DEFAULT_POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        measurable = [d for d in domains if d.kind is not None]
        if not measurable:
            raise EnergyTrackingError(NO_RAPL_MESSAGE)
        for domain in measurable:
            domain.energy_uj()  # raises DevicePermissionError with the fix
        self.host = host
        self._accumulators = [_Accumulator(d) for d in measurable]
        self._poll_interval_s = poll_interval_s
        self._clock = clock
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._open = False
        self._t0 = 0.0

    def start(self) -> None:
        if self._open:
            raise EnergyTrackingError("RAPL energy window already open: call stop() first")
        for acc in self._accumulators:
            acc.reset()
        self._t0 = self._clock()
        self._open = True
        if self._poll_interval_s is not None:
            self._stop_event.clear()
            self._thread = threading.Thread(target=self._run, name="rapl-poller", daemon=True)
            self._thread.start()

    def poll(self) -> None:
        """Read every counter now and add the deltas since the last read."""
        for acc in self._accumulators:
            acc.poll()

    def _run(self) -> None:
        assert self._poll_interval_s is not None
        while not self._stop_event.wait(self._poll_interval_s):
            try:
                self.poll()
            except DeviceError as exc:  # transient: the next poll measures from the last read
                logger.warning("RAPL poll failed: {}", exc)

    def _join(self) -> None:
        if self._thread is not None:
            self._stop_event.set()
            self._thread.join()
            self._thread = None

    def stop(self) -> EnergyReading:
        if not self._open:
            raise EnergyTrackingError("RAPL energy window was not started")
        self._open = False
        self._join()
        self.poll()
        duration_s = max(0.0, self._clock() - self._t0)
        devices = []
        for acc in self._accumulators:
            kind = acc.domain.kind
            assert kind is not None
            energy_j = acc.total_uj / 1e6
            devices.append(
                DeviceEnergy(
                    device_id=f"{self.host}:rapl:{acc.domain.name}",
                    kind=kind,
                    scope="host",
                    host=self.host,
                    name=acc.domain.name,
                    method="counter",
                    estimated=False,
                    source=self.name,
                    energy_j=energy_j,
                    duration_s=duration_s,
                    mean_power_w=energy_j / duration_s if duration_s > 0 else None,
                )
            )
        return EnergyReading(devices=devices, backend=self.name)

    def close(self) -> None:
        self._join()
        self._open = False
