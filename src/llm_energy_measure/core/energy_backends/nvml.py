"""GPU energy through NVML: the total-energy counter, or integrated power where absent."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from llm_energy_measure.constants import NVML_COUNTER_UPDATE_PERIOD_S
from llm_energy_measure.core.devices import GPU
from llm_energy_measure.core.energy_backends.base import BaseEnergyBackend
from llm_energy_measure.core.energy_backends.sampler import (
    PowerSampler,
    integrate_power_j,
    peak_power_w,
    sampled_span_s,
)
from llm_energy_measure.core.types import EnergyReading
from llm_energy_measure.domain import DeviceEnergy, MeasurementWarning, UtilisationSample
from llm_energy_measure.exceptions import EnergyTrackingError

NO_GPU_MESSAGE = (
    "energy.backend is 'nvml' but no NVIDIA GPU was found through NVML (no driver, no GPU, "
    "nvidia-ml-py missing, or CUDA_VISIBLE_DEVICES hides them all); use energy.backend "
    "auto or codecarbon"
)


class NvmlBackend(BaseEnergyBackend):
    """Energy of each GPU over a window, keyed ``gpu:<UUID>``.

    GPUs with a total-energy counter (Volta and later) report the counter delta (method
    ``counter``; the counter updates about every 100 ms). Others integrate the sampled power
    with the trapezoid rule (method ``sampled_power``, ``sampling_interval_ms`` recorded).
    A :class:`PowerSampler` runs during every window for the time series, peak power and
    the throttling / other-process warnings.
    """

    name = "nvml"

    def __init__(
        self,
        gpus: Sequence[GPU],
        *,
        host: str,
        sample_interval_ms: float = 100.0,
        clock: Callable[[], float] = time.monotonic,
        own_pids: Iterable[int] | None = None,
    ) -> None:
        if len(gpus) == 0:
            raise EnergyTrackingError(NO_GPU_MESSAGE)
        self.gpus = list(gpus)
        self.host = host
        self.sample_interval_ms = float(sample_interval_ms)
        self._clock = clock
        self._own_pids = list(own_pids) if own_pids is not None else None
        # Probe the counters now, before any window opens.
        self._has_counter = {gpu.uuid: gpu.supports_energy_counter() for gpu in self.gpus}
        sampled = not all(self._has_counter.values())
        self.update_period_s = max(
            NVML_COUNTER_UPDATE_PERIOD_S, self.sample_interval_ms / 1000.0 if sampled else 0.0
        )
        self._sampler: PowerSampler | None = None
        self._start_mj: dict[str, int] = {}
        self._t0 = 0.0

    def start(self) -> None:
        if self._sampler is not None:
            raise EnergyTrackingError("NVML energy window already open: call stop() first")
        sampler = PowerSampler(
            self.gpus,
            self.sample_interval_ms,
            self._clock,
            host=self.host,
            own_pids=self._own_pids,
        )
        sampler.start()
        self._sampler = sampler
        try:
            self._start_mj = {
                gpu.uuid: gpu.total_energy_mj() for gpu in self.gpus if self._has_counter[gpu.uuid]
            }
        except Exception:
            self._sampler = None
            sampler.stop()
            raise
        self._t0 = self._clock()

    def stop(self) -> EnergyReading:
        sampler = self._sampler
        if sampler is None:
            raise EnergyTrackingError("NVML energy window was not started")
        self._sampler = None
        t1 = self._clock()
        try:
            end_mj = {uuid: self._gpu(uuid).total_energy_mj() for uuid in self._start_mj}
        finally:
            samples = sampler.stop()
        duration_s = max(0.0, t1 - self._t0)
        devices: list[DeviceEnergy] = []
        warnings: list[MeasurementWarning] = sampler.warnings()
        for gpu in self.gpus:
            if gpu.uuid in end_mj:
                energy_j = (end_mj[gpu.uuid] - self._start_mj[gpu.uuid]) / 1000.0
                devices.append(self._device(gpu, energy_j, duration_s, "counter", samples))
                continue
            energy = integrate_power_j(samples, gpu.device_id)
            if energy is None:
                warnings.append(
                    MeasurementWarning(
                        code="unmeasured_device",
                        message=(
                            f"GPU {gpu.uuid} has no energy counter and reported no power "
                            "samples: its energy is not included"
                        ),
                    )
                )
                continue
            span_s = sampled_span_s(samples, gpu.device_id)
            devices.append(self._device(gpu, energy, span_s, "sampled_power", samples))
        return EnergyReading(
            devices=devices, backend=self.name, warnings=warnings, timeseries=samples
        )

    def _gpu(self, uuid: str) -> GPU:
        return next(gpu for gpu in self.gpus if gpu.uuid == uuid)

    def _device(
        self,
        gpu: GPU,
        energy_j: float,
        duration_s: float,
        method: str,
        samples: list[UtilisationSample],
    ) -> DeviceEnergy:
        return DeviceEnergy(
            device_id=gpu.device_id,
            kind="gpu",
            scope="device",
            host=self.host,
            name=gpu.name,
            method="counter" if method == "counter" else "sampled_power",
            estimated=False,
            source=self.name,
            sampling_interval_ms=self.sample_interval_ms if method == "sampled_power" else None,
            energy_j=energy_j,
            duration_s=duration_s,
            mean_power_w=energy_j / duration_s if duration_s > 0 else None,
            peak_power_w=peak_power_w(samples, gpu.device_id),
        )

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
