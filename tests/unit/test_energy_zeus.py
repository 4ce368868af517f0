"""ZeusBackend against a fake ZeusMonitor: index-to-UUID mapping and host domains."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from tests.fakes.devices import FakeGPU

from llm_energy_measure.core.energy_backends import ZeusBackend
from llm_energy_measure.exceptions import EnergyTrackingError


class FakeMonitor:
    """ZeusMonitor's window surface; energies in joules keyed by index."""

    def __init__(self, gpu_indices: list[int], cpu_indices: list[int] | None) -> None:
        self.gpu_indices = gpu_indices
        self.cpu_indices = cpu_indices
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.result = SimpleNamespace(
            time=2.0,
            gpu_energy={0: 120.0, 1: 80.0},
            cpu_energy={0: 30.0} if cpu_indices is None else None,
            dram_energy={0: 5.0} if cpu_indices is None else None,
        )

    def begin_window(self, key: str, **kwargs: Any) -> None:
        self.calls.append(("begin", kwargs))

    def end_window(self, key: str, **kwargs: Any) -> SimpleNamespace:
        self.calls.append(("end", kwargs))
        return self.result


def test_zeus_measurements_keyed_by_physical_identity() -> None:
    monitors: list[FakeMonitor] = []

    def factory(gpu_indices: list[int], cpu_indices: list[int] | None) -> FakeMonitor:
        monitors.append(FakeMonitor(gpu_indices, cpu_indices))
        return monitors[-1]

    gpus = [FakeGPU(0, "GPU-a"), FakeGPU(1, "GPU-b", energy_mj=None)]
    backend = ZeusBackend(gpus, host="h", monitor_factory=factory)
    backend.start()
    reading = backend.stop()
    (monitor,) = monitors
    assert monitor.gpu_indices == [0, 1] and monitor.cpu_indices is None
    assert [kw["sync_execution"] for _, kw in monitor.calls] == [False, False]
    by_id = {d.device_id: d for d in reading.devices}
    assert by_id["gpu:GPU-a"].energy_j == 120.0 and by_id["gpu:GPU-a"].method == "counter"
    assert by_id["gpu:GPU-b"].method == "sampled_power"
    assert by_id["gpu:GPU-b"].mean_power_w == pytest.approx(40.0)
    assert by_id["h:rapl:package-0"].energy_j == 30.0
    assert by_id["h:rapl:package-0"].kind == "cpu"
    assert by_id["h:rapl:package-0/dram"].kind == "dram"
    assert all(d.source == "zeus" and not d.estimated for d in reading.devices)


def test_followers_do_not_ask_zeus_for_cpu_zones() -> None:
    monitors: list[FakeMonitor] = []

    def factory(gpu_indices: list[int], cpu_indices: list[int] | None) -> FakeMonitor:
        monitors.append(FakeMonitor(gpu_indices, cpu_indices))
        return monitors[-1]

    backend = ZeusBackend([FakeGPU(0, "GPU-a"), FakeGPU(1, "GPU-b")], host="h",
                          include_host_domains=False, monitor_factory=factory)
    backend.start()
    reading = backend.stop()
    assert monitors[0].cpu_indices == []
    assert {d.kind for d in reading.devices} == {"gpu"}


def test_unknown_zeus_gpu_index_is_an_error() -> None:
    backend = ZeusBackend([FakeGPU(0, "GPU-a")], host="h",
                          monitor_factory=lambda g, c: FakeMonitor(g, c))
    backend.start()
    with pytest.raises(EnergyTrackingError, match="CUDA_VISIBLE_DEVICES"):
        backend.stop()


def test_a_selected_gpu_is_monitored_by_its_cuda_index() -> None:
    """The process on cuda:1 gets the subset [GPU-b]: Zeus must watch CUDA index 1, and the
    energy it reports for index 1 belongs to GPU-b."""
    from llm_energy_measure.core.devices import GPUs

    monitors: list[FakeMonitor] = []

    def factory(gpu_indices: list[int], cpu_indices: list[int] | None) -> FakeMonitor:
        monitors.append(FakeMonitor(gpu_indices, cpu_indices))
        monitors[-1].result.gpu_energy = {1: 80.0}
        return monitors[-1]

    visible = GPUs([FakeGPU(0, "GPU-a"), FakeGPU(1, "GPU-b")])
    mine = visible.select([1])
    assert mine.positions == (1,)
    backend = ZeusBackend(mine, host="h", include_host_domains=False, monitor_factory=factory)
    backend.start()
    reading = backend.stop()
    assert monitors[0].gpu_indices == [1]
    assert [(d.device_id, d.energy_j) for d in reading.devices] == [("gpu:GPU-b", 80.0)]
