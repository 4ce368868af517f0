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


class PollingClock:
    """A fake clock that the backend advances by sleeping on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class AliasingTracker:
    """codecarbon's accounting: power x time, updated every ``period_s`` by a timer that
    starts with the tracker, plus one measurement at stop. A stop within ``race_s`` of a
    scheduled update runs concurrently with it and both count the last interval (the
    double-count seen on real hardware with a 1.00 s window over a 1 s poll)."""

    def __init__(self, clock: PollingClock, cpu_w: float, ram_w: float,
                 period_s: float = 1.0, race_s: float = 0.005) -> None:
        self.clock, self.cpu_w, self.ram_w = clock, cpu_w, ram_w
        self.period_s, self.race_s = period_s, race_s
        self._conf = {"hardware": ["RAM()", "CPU(Cpu Load)"]}

    def start(self) -> None:
        self.t0 = self.clock()

    def stop(self) -> float:
        elapsed = self.clock() - self.t0
        updates = round(elapsed / self.period_s)
        raced = updates >= 1 and abs(elapsed - updates * self.period_s) < self.race_s
        counted_s = elapsed + (self.period_s if raced else 0.0)
        self.final_emissions_data = SimpleNamespace(
            cpu_energy=self.cpu_w * counted_s / 3.6e6,
            ram_energy=self.ram_w * counted_s / 3.6e6,
        )
        return 0.0


def test_the_fake_tracker_reproduces_the_doubled_baseline() -> None:
    # The tracker alone, stopped exactly one poll period after its start: RAM at 40 W.
    clock = PollingClock()
    tracker = AliasingTracker(clock, cpu_w=8.0, ram_w=20.0)
    tracker.start()
    clock.sleep(1.0)
    tracker.stop()
    assert tracker.final_emissions_data.ram_energy * 3.6e6 / 1.0 == pytest.approx(40.0)


def _aliasing_backend(clock: PollingClock) -> CodeCarbonBackend:
    return CodeCarbonBackend(
        host="h", tracker_factory=lambda: AliasingTracker(clock, cpu_w=8.0, ram_w=20.0),
        clock=clock, sleep=clock.sleep,
    )


def test_a_one_second_baseline_over_a_one_second_poll_reads_the_fixed_20_w() -> None:
    clock = PollingClock()
    backend = _aliasing_backend(clock)
    baseline = backend.measure_baseline(1.0)
    assert baseline["h:estimate:ram"] == pytest.approx(20.0)  # not 40 W
    assert baseline["h:estimate:cpu"] == pytest.approx(8.0)
    # 3 whole updates and a half: no edge on an update, enough updates to average.
    assert backend.last_baseline_window_s == pytest.approx(3.5)


@pytest.mark.parametrize("requested_s", [0.98, 1.0, 1.02, 2.0, 3.0, 10.0])
def test_no_requested_baseline_length_aliases_the_poll(requested_s: float) -> None:
    clock = PollingClock()
    baseline = _aliasing_backend(clock).measure_baseline(requested_s)
    assert baseline["h:estimate:ram"] == pytest.approx(20.0)


def test_a_run_window_ending_on_an_update_is_extended_past_it() -> None:
    clock = PollingClock()
    backend = _aliasing_backend(clock)
    backend.start()
    clock.sleep(5.0)  # the engine closes the window exactly on the 5th update
    ram = next(d for d in backend.stop().devices if d.kind == "dram")
    assert ram.mean_power_w == pytest.approx(20.0)  # not (5 + 1) x 20 J / 5 s = 24 W
    assert ram.duration_s == pytest.approx(5.1)  # waited UPDATE_GUARD_S past the update
    assert ram.energy_j == pytest.approx(102.0)


def test_a_composite_baseline_spans_its_slowest_part_and_says_so() -> None:
    from llm_energy_measure.core.energy_backends.composite import CompositeBackend

    clock = PollingClock()
    backend = CompositeBackend([_aliasing_backend(clock)], name="auto", sleep=clock.sleep)
    assert backend.update_period_s == 1.0
    assert backend.measure_baseline(1.0)["h:estimate:ram"] == pytest.approx(20.0)
    backend.start()
    clock.sleep(2.5)
    (note,) = [w for w in backend.stop().warnings if w.code == "idle_baseline"]
    assert note.severity == "info"
    assert "3.500 s" in note.message and "3.5 updates of codecarbon" in note.message


def test_the_window_is_the_trackers_own_span_when_it_reports_one() -> None:
    clock = StepClock()

    class WithDuration(FakeTracker):
        def stop(self) -> float | None:
            super().stop()
            self.final_emissions_data.duration = 4.002  # its start to its final update
            return 0.0

    backend = CodeCarbonBackend(host="h", tracker_factory=lambda: WithDuration(0, 2.0e-5),
                                clock=clock)
    backend.start()
    clock.now = 4.0
    ram = next(d for d in backend.stop().devices if d.kind == "dram")
    assert ram.duration_s == pytest.approx(4.002)
    assert ram.mean_power_w == pytest.approx(72.0 / 4.002)  # 2e-5 kWh = 72 J
