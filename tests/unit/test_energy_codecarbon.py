"""CodeCarbonBackend against a fake tracker: units, provenance, silent failures."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tests.fakes.clock import StepClock

from llm_energy_measure.core.energy_backends import CodeCarbonBackend
from llm_energy_measure.exceptions import EnergyTrackingError


class FakeTracker:
    """Has codecarbon's tracker surface: start(), stop(), final_emissions_data (kWh)."""

    def __init__(self, cpu_kwh: float, ram_kwh: float, fail: bool = False) -> None:
        self.cpu_kwh = cpu_kwh
        self.ram_kwh = ram_kwh
        self.fail = fail
        self.started = False
        self._conf = {"hardware": ["RAM()", "CPU(Cpu Load)"]}

    def start(self) -> None:
        self.started = True

    def stop(self) -> float | None:
        if self.fail:  # codecarbon swallows exceptions and returns None
            return None
        self.final_emissions_data = SimpleNamespace(
            cpu_energy=self.cpu_kwh, ram_energy=self.ram_kwh, gpu_energy=1.0
        )
        return 0.0


def test_kwh_become_joules_with_estimate_provenance() -> None:
    clock = StepClock()
    trackers: list[FakeTracker] = []

    def factory() -> FakeTracker:
        trackers.append(FakeTracker(cpu_kwh=1e-4, ram_kwh=2.5e-5))
        return trackers[-1]

    backend = CodeCarbonBackend(host="h", tracker_factory=factory, clock=clock,
                                sample_interval_ms=100)
    backend.start()
    clock.now = 4.0
    reading = backend.stop()
    by_id = {d.device_id: d for d in reading.devices}
    assert set(by_id) == {"h:estimate:cpu", "h:estimate:ram"}  # codecarbon's GPU is ignored
    cpu, ram = by_id["h:estimate:cpu"], by_id["h:estimate:ram"]
    assert cpu.energy_j == pytest.approx(360.0)  # 1e-4 kWh x 3.6e6 J/kWh
    assert ram.energy_j == pytest.approx(90.0)
    assert cpu.mean_power_w == pytest.approx(90.0)
    assert (cpu.kind, ram.kind) == ("cpu", "dram")
    assert all(d.estimated and d.method == "estimate" and d.scope == "host"
               for d in reading.devices)
    assert cpu.sampling_interval_ms == 1000.0  # the 100 ms asked for, raised to the floor
    assert "Cpu Load" in cpu.name
    # A fresh tracker per window: codecarbon's trackers cannot be restarted.
    backend.start()
    backend.stop()
    assert len(trackers) == 2


def test_only_the_requested_kinds_are_reported() -> None:
    backend = CodeCarbonBackend(host="h", include=("ram",),
                                tracker_factory=lambda: FakeTracker(1e-4, 1e-5))
    backend.start()
    assert [d.device_id for d in backend.stop().devices] == ["h:estimate:ram"]


def test_silent_codecarbon_failure_becomes_an_error() -> None:
    backend = CodeCarbonBackend(host="h", tracker_factory=lambda: FakeTracker(0, 0, fail=True))
    backend.start()
    with pytest.raises(EnergyTrackingError, match="no energy data"):
        backend.stop()


def test_measure_interval_has_a_floor() -> None:
    backend = CodeCarbonBackend(host="h", sample_interval_ms=10,
                                tracker_factory=lambda: FakeTracker(0, 0))
    assert backend.measure_power_s == pytest.approx(1.0)
