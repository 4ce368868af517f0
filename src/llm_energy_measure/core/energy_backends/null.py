"""A backend that measures nothing: for runs where energy is not wanted."""

from __future__ import annotations

from llm_energy_measure.core.energy_backends.base import BaseEnergyBackend
from llm_energy_measure.core.types import EnergyReading


class NullBackend(BaseEnergyBackend):
    """No devices, no baseline; downstream the energy metrics are None."""

    name = "none"

    def measure_baseline(self, duration_s: float) -> dict[str, float]:
        return {}

    def start(self) -> None:
        return None

    def stop(self) -> EnergyReading:
        return EnergyReading(devices=[], backend=self.name)
