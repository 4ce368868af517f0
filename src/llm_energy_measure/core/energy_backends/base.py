"""Shared base of the energy backends (see protocols.EnergyBackend)."""

from __future__ import annotations

import abc
import time

from llm_energy_measure.core.types import EnergyReading


def baseline_power_from_reading(reading: EnergyReading) -> dict[str, float]:
    """Mean power per device id (W) over a reading: energy_j / duration_s.

    Devices with a zero-length window are left out.
    """
    return {
        device.device_id: device.energy_j / device.duration_s
        for device in reading.devices
        if device.duration_s > 0
    }


class BaseEnergyBackend(abc.ABC):
    """A backend measures energy between ``start`` and ``stop``.

    The idle baseline is measured as an ordinary window over ``duration_s`` of idling, so
    it uses the same method (counter, sampled power, estimate) as the run itself.
    """

    name: str = "base"

    def measure_baseline(self, duration_s: float) -> dict[str, float]:
        """Idle power per device id in watts, measured over ``duration_s`` seconds.

        Call it while nothing else runs on the devices (before the measured window).
        """
        if duration_s <= 0:
            raise ValueError(f"baseline duration_s must be > 0, got {duration_s}")
        self.start()
        try:
            time.sleep(duration_s)
        finally:
            reading = self.stop()
        return baseline_power_from_reading(reading)

    @abc.abstractmethod
    def start(self) -> None:
        """Open a window: read counters / start sampling now."""

    @abc.abstractmethod
    def stop(self) -> EnergyReading:
        """Close the window and return the energy of each device over it."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources; safe to call twice."""
