"""Energy through Zeus (optional extra ``zeus``): ZeusMonitor measurement windows.

Zeus reads the same NVML counters (or polls power on older GPUs) and RAPL zones as our own
backends; it is offered for users who standardise on it. GPUs are reported per UUID by
mapping Zeus's CUDA-visible indices onto the visible :class:`GPUs` collection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from llm_energy_measure.constants import NVML_COUNTER_UPDATE_PERIOD_S
from llm_energy_measure.core.devices import GPU, GPUs
from llm_energy_measure.core.energy_backends.base import BaseEnergyBackend
from llm_energy_measure.core.types import EnergyReading
from llm_energy_measure.domain import DeviceEnergy
from llm_energy_measure.exceptions import EnergyTrackingError, MissingExtraError

_WINDOW = "llm-energy-measure"


def _default_monitor(gpu_indices: list[int], cpu_indices: list[int] | None) -> Any:
    try:
        from zeus.monitor import ZeusMonitor
    except ImportError as exc:
        raise MissingExtraError("zeus", "zeus", "The zeus energy backend") from exc
    return ZeusMonitor(gpu_indices=gpu_indices, cpu_indices=cpu_indices)


class ZeusBackend(BaseEnergyBackend):
    """GPU (and, for the host leader, RAPL CPU/DRAM) energy from one ZeusMonitor window.

    ``monitor_factory(gpu_indices, cpu_indices)`` builds the monitor (a seam for tests);
    ``cpu_indices`` is None (all packages) when ``include_host_domains`` else ``[]``.
    Windows are not synchronised by Zeus: the caller synchronises the device first.
    """

    name = "zeus"

    def __init__(
        self,
        gpus: Sequence[GPU],
        *,
        host: str,
        include_host_domains: bool = True,
        monitor_factory: Callable[[list[int], list[int] | None], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gpus = list(gpus)
        self.host = host
        self._clock = clock
        # Zeus addresses GPUs by CUDA-visible index: a subset keeps its members' positions.
        positions = gpus.positions if isinstance(gpus, GPUs) else range(len(self.gpus))
        self._by_index = dict(zip(positions, self.gpus, strict=True))
        factory = monitor_factory or _default_monitor
        self._monitor = factory(list(self._by_index), None if include_host_domains else [])
        self._open = False
        self._t0 = 0.0
        # Zeus reads the NVML energy counter (refreshed about every 100 ms) and RAPL.
        self.update_period_s = NVML_COUNTER_UPDATE_PERIOD_S if self.gpus else None

    def start(self) -> None:
        if self._open:
            raise EnergyTrackingError("zeus energy window already open: call stop() first")
        self._monitor.begin_window(_WINDOW, sync_execution=False)
        self._t0 = self._clock()
        self._open = True

    def stop(self) -> EnergyReading:
        if not self._open:
            raise EnergyTrackingError("zeus energy window was not started")
        self._open = False
        t1 = self._clock()
        measurement = self._monitor.end_window(_WINDOW, sync_execution=False)
        duration_s = float(getattr(measurement, "time", None) or max(0.0, t1 - self._t0))
        devices = [self._gpu_energy(i, e, duration_s) for i, e in measurement.gpu_energy.items()]
        for zones, kind in ((measurement.cpu_energy, "cpu"), (measurement.dram_energy, "dram")):
            for index, energy_j in sorted((zones or {}).items()):
                zone = f"package-{index}" if kind == "cpu" else f"package-{index}/dram"
                devices.append(
                    DeviceEnergy(
                        device_id=f"{self.host}:rapl:{zone}",
                        kind="cpu" if kind == "cpu" else "dram",
                        scope="host",
                        host=self.host,
                        name=zone,
                        method="counter",
                        estimated=False,
                        source=self.name,
                        energy_j=float(energy_j),
                        duration_s=duration_s,
                        mean_power_w=float(energy_j) / duration_s if duration_s > 0 else None,
                    )
                )
        return EnergyReading(devices=devices, backend=self.name)

    def _gpu_energy(self, index: int, energy_j: float, duration_s: float) -> DeviceEnergy:
        gpu = self._by_index.get(index)
        if gpu is None:
            raise EnergyTrackingError(
                f"zeus reported GPU {index}, which is not among the monitored GPUs "
                f"{sorted(self._by_index)}; check CUDA_VISIBLE_DEVICES"
            )
        counter = gpu.supports_energy_counter()
        return DeviceEnergy(
            device_id=gpu.device_id,
            kind="gpu",
            scope="device",
            host=self.host,
            name=gpu.name,
            method="counter" if counter else "sampled_power",
            estimated=False,
            source=self.name,
            energy_j=float(energy_j),
            duration_s=duration_s,
            mean_power_w=float(energy_j) / duration_s if duration_s > 0 else None,
        )

    def close(self) -> None:
        if self._open:
            self._open = False
            self._monitor.end_window(_WINDOW, sync_execution=False, cancel=True)
