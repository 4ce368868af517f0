"""Contract with the real Zeus package (skipped when absent or without an NVIDIA GPU)."""

from __future__ import annotations

import socket
import time

import pytest

pytest.importorskip("zeus")

from llm_energy_measure.core.devices import get_gpus
from llm_energy_measure.core.energy_backends import ZeusBackend


def test_zeus_window_measures_visible_gpus() -> None:
    gpus = get_gpus()
    if len(gpus) == 0:
        pytest.skip("no NVIDIA GPU visible through NVML")
    try:
        backend = ZeusBackend(gpus, host=socket.gethostname(), include_host_domains=False)
        backend.start()
        time.sleep(1.5)
        reading = backend.stop()
    finally:
        gpus.close()
    assert {d.device_id for d in reading.devices} == {g.device_id for g in gpus}
    for device in reading.devices:
        assert device.energy_j > 0
        assert 1.0 < device.duration_s < 3.0


def test_zeus_api_is_the_one_the_backend_calls() -> None:
    """Runs without a GPU: the window API and Measurement fields our backend relies on."""
    import dataclasses
    import inspect

    from zeus.monitor import ZeusMonitor
    from zeus.monitor.energy import Measurement

    init = inspect.signature(ZeusMonitor.__init__).parameters
    assert {"gpu_indices", "cpu_indices"} <= set(init)
    assert "sync_execution" in inspect.signature(ZeusMonitor.begin_window).parameters
    end = inspect.signature(ZeusMonitor.end_window).parameters
    assert {"sync_execution", "cancel"} <= set(end)
    fields = {f.name for f in dataclasses.fields(Measurement)}
    assert {"time", "gpu_energy", "cpu_energy", "dram_energy"} <= fields
