"""Several backends measured over one window and merged into one reading."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

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
    ``unmeasured`` (device kind -> why) goes on every reading (``EnergyReading.unmeasured``).
    ``on_close`` callbacks release resources the composite owns (e.g. an NVML session).
    ``update_period_s`` is that of the slowest part, so the idle baseline spans enough
    updates of every part; ``sleep`` is how the baseline idles (a fake clock in tests).
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
        sleep: Callable[[float], None] = time.sleep,
        unmeasured: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.unmeasured = dict(unmeasured or {})
        self.parts = list(parts)
        self.sampler = sampler
        self.notes = list(notes)
        self.carbon_intensity_g_per_kwh = carbon_intensity_g_per_kwh
        self.carbon_intensity_source = carbon_intensity_source
        self._on_close = list(on_close)
        self._closed = False
        self.idle = sleep
        periods = [
            (p, part.name)
            for part in self.parts
            if (p := getattr(part, "update_period_s", None)) is not None
        ]
        slowest = max(periods, default=None)
        self.update_period_s = slowest[0] if slowest is not None else None
        self._slowest_part = slowest[1] if slowest is not None else None

    def measure_baseline(self, duration_s: float) -> dict[str, float]:
        """Idle power per device (see BaseEnergyBackend); every later reading carries an
        ``idle_baseline`` note with the window used."""
        power = super().measure_baseline(duration_s)
        window_s = self.last_baseline_window_s
        if window_s is not None:
            if self.update_period_s is None:
                how = "counters read at both edges"
            else:
                how = (
                    f"{window_s / self.update_period_s:.1f} updates of {self._slowest_part}, "
                    f"which updates every {self.update_period_s:g} s"
                )
            self.notes.append(MeasurementWarning(
                code="idle_baseline", severity="info",
                message=f"idle baseline measured over {window_s:.3f} s ({how}; "
                        f"energy.baseline.duration_s {duration_s:g} s)",
            ))
        return power

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
            unmeasured=dict(self.unmeasured),
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
