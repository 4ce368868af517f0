"""A backend that measures nothing: for runs where energy is not wanted."""

from __future__ import annotations

from llm_energy_measure.core.energy_backends.base import BaseEnergyBackend
from llm_energy_measure.core.types import EnergyReading
from llm_energy_measure.domain import MeasurementWarning


class NullBackend(BaseEnergyBackend):
    """No devices, no baseline; downstream the energy metrics are None."""

    name = "none"

    def measure_baseline(self, duration_s: float) -> dict[str, float]:
        return {}

    def start(self) -> None:
        return None

    def stop(self) -> EnergyReading:
        return EnergyReading(devices=[], backend=self.name)


class RemoteEndpointBackend(NullBackend):
    """A served model on another host: this host's devices do not measure it. Every energy
    figure is null, with the reason (configure ``energy.backend: prometheus`` to read the
    serving host's own counter)."""

    name = "none"

    def __init__(self, base_url: str) -> None:
        self.reason = (f"the endpoint {base_url} runs on another host: its devices are not "
                       "measured here (set energy.backend: prometheus with the serving "
                       "host's energy counter)")

    def stop(self) -> EnergyReading:
        return EnergyReading(
            devices=[], backend=self.name,
            warnings=[MeasurementWarning(code="energy_not_measured", message=self.reason)],
            unmeasured={"gpu": self.reason, "cpu": self.reason, "dram": self.reason})
