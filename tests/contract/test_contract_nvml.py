"""Contract with the real NVML library (skipped when pynvml or an NVIDIA driver is absent)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

pynvml = pytest.importorskip("pynvml")

from llm_energy_measure.core.devices import GPUs, get_gpus  # noqa: E402
from llm_energy_measure.core.energy_backends import NvmlBackend  # noqa: E402


@pytest.fixture
def gpus() -> Iterator[GPUs]:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        pytest.skip(f"NVML unavailable: {exc}")
    pynvml.nvmlShutdown()
    found = get_gpus()
    if len(found) == 0:
        found.close()
        pytest.skip("no NVIDIA GPU visible")
    yield found
    found.close()


def test_real_gpus_answer_every_query(gpus: GPUs) -> None:
    for gpu in gpus:
        assert gpu.uuid.startswith(("GPU-", "MIG-"))
        assert gpu.power_w() > 0
        assert gpu.memory_total_bytes() >= gpu.memory_used_bytes() > 0
        assert gpu.max_sm_clock_mhz() >= gpu.sm_clock_mhz() >= 0
        assert isinstance(gpu.throttle_reasons(), list)
        assert gpu.power_limit_w() > 0
        if gpu.supports_energy_counter():
            first = gpu.total_energy_mj()
            time.sleep(0.3)
            assert gpu.total_energy_mj() >= first


def test_nvml_backend_measures_a_window(gpus: GPUs) -> None:
    backend = NvmlBackend(gpus, host=socket.gethostname(), sample_interval_ms=100)
    backend.start()
    time.sleep(1.5)
    reading = backend.stop()
    backend.close()
    assert {d.device_id for d in reading.devices} == {g.device_id for g in gpus}
    for device in reading.devices:
        assert device.energy_j > 0
        # An idle or busy GPU draws between a few watts and its power limit.
        assert 1.0 < device.mean_power_w < 1500.0  # type: ignore[operator]
    assert len(reading.timeseries) >= 10 * len(gpus)
