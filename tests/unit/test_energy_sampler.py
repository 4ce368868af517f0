"""The background power sampler: cadence, clean stop, CPU mode, its own cost."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from tests.fakes.devices import FakeGPU

from llm_energy_measure.core.energy_backends import PowerSampler


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "power-sampler"]


def test_sample_count_follows_window_over_interval() -> None:
    gpu = FakeGPU(power_w=200.0)
    sampler = PowerSampler([gpu], interval_ms=50)
    sampler.start()
    time.sleep(0.5)
    samples = sampler.stop()
    # 0.5 s / 50 ms = 10 ticks, plus the first (start) and last (stop) sample.
    assert 8 <= len(samples) <= 14
    times = [s.t_s - sampler.start_epoch_s for s in samples]
    assert times[0] == 0.0
    assert abs(sampler.start_epoch_s - time.time()) < 5  # epoch seconds
    assert times == sorted(times)
    assert times[-1] == pytest.approx(0.5, abs=0.1)
    gaps = [b - a for a, b in itertools.pairwise(times[:-1])]  # the stop tick is off-cadence
    assert sum(gaps) / len(gaps) == pytest.approx(0.05, rel=0.3)
    assert all(s.power_w == 200.0 and s.device_id == "gpu:GPU-fake-0" for s in samples)
    assert all(s.sm_clock_mhz == 1500.0 and s.utilisation_pct == 90.0 for s in samples)


def test_stop_joins_the_thread_and_sampling_ends() -> None:
    gpu = FakeGPU()
    sampler = PowerSampler([gpu], interval_ms=10)
    sampler.start()
    assert len(_sampler_threads()) == 1
    time.sleep(0.05)
    samples = sampler.stop()
    assert _sampler_threads() == []
    calls = gpu.power_calls
    time.sleep(0.05)
    assert gpu.power_calls == calls
    assert len(sampler.samples) == len(samples)
    assert sampler.stop() == samples  # a second stop is harmless


def test_restart_resets_samples() -> None:
    sampler = PowerSampler([FakeGPU()], interval_ms=1000)
    sampler.start()
    first = sampler.stop()
    sampler.start()
    second = sampler.stop()
    assert len(first) == 2 and len(second) == 2


def test_cpu_mode_records_host_utilisation_and_rss() -> None:
    pytest.importorskip("psutil")
    sampler = PowerSampler([], interval_ms=20, host="node7")
    sampler.start()
    time.sleep(0.1)
    samples = sampler.stop()
    assert len(samples) >= 3
    assert {s.device_id for s in samples} == {"node7:cpu"}
    assert all(s.power_w is None for s in samples)
    assert all(s.memory_used_bytes is not None and s.memory_used_bytes > 1 << 20 for s in samples)
    assert all(s.utilisation_pct is not None and 0 <= s.utilisation_pct <= 100 for s in samples)


def test_sampler_cpu_cost_is_tiny() -> None:
    sampler = PowerSampler([FakeGPU(), FakeGPU(1, "GPU-fake-1")], interval_ms=100)
    cpu_before = time.process_time()
    wall_before = time.monotonic()
    sampler.start()
    time.sleep(1.0)
    sampler.stop()
    cpu_s = time.process_time() - cpu_before
    wall_s = time.monotonic() - wall_before
    assert cpu_s / wall_s < 0.01  # under 1% of one core


def test_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError):
        PowerSampler([], interval_ms=0)
