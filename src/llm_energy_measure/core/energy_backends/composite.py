"""Several backends measured over one window and merged into one reading."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from loguru import logger

from llm_energy_measure.core.energy_backends.base import BaseEnergyBackend
from llm_energy_measure.core.energy_backends.sampler import PowerSampler
from llm_energy_measure.core.types import EnergyReading
from llm_energy_measure.domain import DeviceEnergy, MeasurementWarning
from llm_energy_measure.protocols import EnergyBackend


def estimated_energy_warning(devices: Sequence[DeviceEnergy]) -> MeasurementWarning | None:
    """The ``estimated_energy`` warning when any device figure is an estimate."""
    estimated = [d for d in devices if d.estimated]
    if not estimated:
        return None
    kinds = sorted({"RAM" if d.kind == "dram" else d.kind.upper() for d in estimated})
    sources = sorted({d.source for d in estimated})
    ids = ", ".join(d.device_id for d in estimated)
    return MeasurementWarning(
        code="estimated_energy",
        message=(
            f"no hardware energy counter: {'/'.join(kinds)} energy is an estimate from "
            f"{', '.join(sources)}'s model, not a measurement ({ids})"
        ),
    )


class CompositeBackend(BaseEnergyBackend):
    """Runs ``parts`` over the same window; devices, warnings and samples are merged.

    Parts start in order and stop in reverse order, so put slow-to-start parts (estimators)
    first and counter readers last: the counters then bracket the window most tightly.
    ``sampler`` (optional) adds a time series when no part samples (CPU-only hosts).
    ``notes`` are warnings known before the window (e.g. why a fallback was chosen).
    ``on_close`` callbacks release resources the composite owns (e.g. an NVML session).
    """

    def __init__(
        self,
        parts: Sequence[EnergyBackend],
        *,
        name: str,
        sampler: PowerSampler | None = None,
        notes: Sequence[MeasurementWarning] = (),
        carbon_intensity_g_per_kwh: float | None = None,
        carbon_intensity_source: str | None = None,
        on_close: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.name = name
        self.parts = list(parts)
        self.sampler = sampler
        self.notes = list(notes)
        self.carbon_intensity_g_per_kwh = carbon_intensity_g_per_kwh
        self.carbon_intensity_source = carbon_intensity_source
        self._on_close = list(on_close)
        self._closed = False

    def start(self) -> None:
        if self.sampler is not None:
            self.sampler.start()
        started: list[EnergyBackend] = []
        try:
            for part in self.parts:
                part.start()
                started.append(part)
        except BaseException:
            for part in reversed(started):
                try:
                    part.stop()
                except Exception as exc:
                    logger.debug("stopping {} after a failed start: {}", part.name, exc)
            if self.sampler is not None:
                self.sampler.stop()
            raise

    def stop(self) -> EnergyReading:
        readings: list[EnergyReading] = []
        error: BaseException | None = None
        for part in reversed(self.parts):
            try:
                readings.append(part.stop())
            except Exception as exc:  # stop the others before reporting the first failure
                error = error or exc
        samples = self.sampler.stop() if self.sampler is not None else []
        if error is not None:
            raise error
        readings.reverse()
        devices = [d for r in readings for d in r.devices]
        warnings = list(self.notes)
        for reading in readings:
            warnings.extend(reading.warnings)
        if self.sampler is not None:
            warnings.extend(self.sampler.warnings())
        estimate = estimated_energy_warning(devices)
        if estimate is not None:
            warnings.append(estimate)
        timeseries = [s for r in readings for s in r.timeseries] + samples
        return EnergyReading(
            devices=devices,
            backend=self.name,
            warnings=warnings,
            timeseries=timeseries,
            carbon_intensity_g_per_kwh=self.carbon_intensity_g_per_kwh,
            carbon_intensity_source=self.carbon_intensity_source,
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.sampler is not None and self.sampler.running:
            self.sampler.stop()
        for part in self.parts:
            try:
                part.close()
            except Exception as exc:
                logger.debug("closing {} failed: {}", part.name, exc)
        for callback in self._on_close:
            callback()
