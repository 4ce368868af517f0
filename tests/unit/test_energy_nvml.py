"""NVML energy backend: counter deltas, sampled-power fallback, baseline, warnings."""

from __future__ import annotations

import os
import time

import pytest
from tests.fakes.clock import StepClock
from tests.fakes.devices import FakeDevice, FakeGPU, FakeNVML

from llm_energy_measure.core.devices import get_gpus
from llm_energy_measure.core.energy_backends import NvmlBackend, integrate_power_j
from llm_energy_measure.domain import UtilisationSample
from llm_energy_measure.exceptions import EnergyTrackingError


def test_counter_delta_gives_energy_over_the_window() -> None:
    clock = StepClock(50.0)
    nvml = FakeNVML([FakeDevice(uuid="GPU-a", name="H100", energy_mj=1_000_000)])
    gpus = get_gpus(nvml, visible=None)
    backend = NvmlBackend(gpus, host="node1", sample_interval_ms=1000, clock=clock)
    backend.start()
    nvml.devices[0].energy_mj = 1_800_000  # 800 J later...
    clock.now = 60.0  # ...and 10 s later
    reading = backend.stop()
    (device,) = reading.devices
    assert device.device_id == "gpu:GPU-a"
    assert device.name == "H100"
    assert (device.kind, device.scope, device.host) == ("gpu", "device", "node1")
    assert device.method == "counter"
    assert device.estimated is False
    assert device.source == "nvml"
    assert device.sampling_interval_ms is None
    assert device.energy_j == pytest.approx(800.0)
    assert device.duration_s == pytest.approx(10.0)
    assert device.mean_power_w == pytest.approx(80.0)
    assert device.peak_power_w == pytest.approx(100.0)  # from the sampler's power samples
    assert reading.backend == "nvml"
    assert len(reading.timeseries) >= 2


def test_gpu_without_counter_integrates_constant_power() -> None:
    gpu = FakeGPU(uuid="GPU-old", power_w=150.0, energy_mj=None)
    backend = NvmlBackend([gpu], host="h", sample_interval_ms=20)
    backend.start()
    time.sleep(0.3)
    reading = backend.stop()
    (device,) = reading.devices
    assert device.method == "sampled_power"
    assert device.sampling_interval_ms == 20
    assert device.estimated is False
    # Trapezoid of a constant is exact: energy = 150 W x the sampled span.
    assert device.duration_s == pytest.approx(0.3, abs=0.1)
    assert device.energy_j == pytest.approx(150.0 * device.duration_s, rel=1e-9)
    assert device.mean_power_w == pytest.approx(150.0)
    assert len(reading.timeseries) >= 10


def test_mixed_gpus_each_use_their_best_method() -> None:
    clock = StepClock(0.0)
    new = FakeGPU(0, "GPU-new", power_w=300.0, energy_mj=0)
    old = FakeGPU(1, "GPU-old", power_w=100.0, energy_mj=None)
    backend = NvmlBackend([new, old], host="h", sample_interval_ms=10_000, clock=clock)
    backend.start()
    new.energy_mj = 3_000_000
    clock.now = 10.0
    reading = backend.stop()
    by_id = {d.device_id: d for d in reading.devices}
    assert by_id["gpu:GPU-new"].method == "counter"
    assert by_id["gpu:GPU-new"].energy_j == pytest.approx(3000.0)
    assert by_id["gpu:GPU-old"].method == "sampled_power"
    # First sample at t=0 and last at t=10 (stop), 100 W between: 1000 J.
    assert by_id["gpu:GPU-old"].energy_j == pytest.approx(1000.0)
    assert by_id["gpu:GPU-old"].duration_s == pytest.approx(10.0)


def test_trapezoid_on_a_known_trace() -> None:
    samples = [
        UtilisationSample(t_s=0.0, device_id="g", power_w=100.0),
        UtilisationSample(t_s=1.0, device_id="g", power_w=200.0),
        UtilisationSample(t_s=2.0, device_id="g", power_w=None),  # skipped, joined across
        UtilisationSample(t_s=3.0, device_id="g", power_w=200.0),
        UtilisationSample(t_s=1.5, device_id="other", power_w=1e6),
    ]
    assert integrate_power_j(samples, "g") == pytest.approx(150.0 + 400.0)
    assert integrate_power_j(samples[:1], "g") is None


def test_baseline_is_idle_power_from_the_counter() -> None:
    nvml = FakeNVML(
        [FakeDevice(uuid="GPU-a", power_w=60.0, energy_mj=0, power_clock=time.monotonic)]
    )
    backend = NvmlBackend(get_gpus(nvml, visible=None), host="h", sample_interval_ms=50)
    baseline = backend.measure_baseline(0.3)
    assert set(baseline) == {"gpu:GPU-a"}
    assert baseline["gpu:GPU-a"] == pytest.approx(60.0, rel=0.05)


def test_throttling_and_other_processes_are_warned() -> None:
    own = os.getpid()
    hot = FakeGPU(0, "GPU-hot", throttle=["sw_power_cap", "hw_thermal_slowdown"], pids=[own])
    shared = FakeGPU(1, "GPU-shared", throttle=["gpu_idle"], pids=[own, 4242])
    backend = NvmlBackend([hot, shared], host="h", sample_interval_ms=1000)
    backend.start()
    reading = backend.stop()
    codes = [(w.code, w.message) for w in reading.warnings]
    throttling = [m for c, m in codes if c == "throttling"]
    others = [m for c, m in codes if c == "other_processes"]
    assert len(throttling) == 1 and "GPU-hot" in throttling[0]
    assert "sw_power_cap" in throttling[0] and "hw_thermal_slowdown" in throttling[0]
    assert len(others) == 1 and "GPU-shared" in others[0] and "4242" in others[0]


def test_no_warnings_for_an_idle_gpu_of_our_own() -> None:
    gpu = FakeGPU(0, "GPU-ok", throttle=["gpu_idle"], pids=[os.getpid()])
    backend = NvmlBackend([gpu], host="h", sample_interval_ms=1000)
    backend.start()
    assert backend.stop().warnings == []


def test_no_gpu_is_an_error_naming_the_alternatives() -> None:
    with pytest.raises(EnergyTrackingError, match="auto or codecarbon"):
        NvmlBackend([], host="h")


def test_stop_without_start_is_an_error() -> None:
    backend = NvmlBackend([FakeGPU()], host="h")
    with pytest.raises(EnergyTrackingError):
        backend.stop()
    backend.close()
    backend.close()


def test_foreign_processes_seen_when_our_pid_is_hidden() -> None:
    # In a container NVML may list host PIDs only: one unknown PID may be us, two cannot be.
    alone = FakeGPU(0, "GPU-alone", pids=[777])
    crowded = FakeGPU(1, "GPU-crowded", pids=[777, 888])
    backend = NvmlBackend([alone, crowded], host="h", sample_interval_ms=1000)
    backend.start()
    others = [w.message for w in backend.stop().warnings if w.code == "other_processes"]
    assert len(others) == 1
    assert "GPU-crowded" in others[0] and "777, 888" in others[0]
