"""create_energy_backend: per-domain choice, host leader, explicit backends and their errors."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from tests.fakes.clock import StepClock
from tests.fakes.devices import FakeGPU, denying_reader, set_energy, write_zone

from llm_energy_measure.config.models import EnergyConfig
from llm_energy_measure.core.devices import DevicePermissionError, RaplDomains, get_rapl_domains
from llm_energy_measure.core.energy import build_energy_metrics
from llm_energy_measure.core.energy_backends import BaseEnergyBackend, create_energy_backend
from llm_energy_measure.core.types import EnergyReading
from llm_energy_measure.domain import DeviceEnergy
from llm_energy_measure.exceptions import EnergyTrackingError, MissingExtraError
from llm_energy_measure.protocols import EnergyBackend


class FixedEstimator(BaseEnergyBackend):
    """Stands in for codecarbon: 10 J per estimated kind per window."""

    name = "codecarbon"

    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = list(kinds)
        self.started = 0

    def start(self) -> None:
        self.started += 1

    def stop(self) -> EnergyReading:
        return EnergyReading(
            [
                DeviceEnergy(
                    device_id=f"h:estimate:{k}",
                    kind="cpu" if k == "cpu" else "dram",
                    scope="host",
                    host="h",
                    method="estimate",
                    estimated=True,
                    source="codecarbon",
                    energy_j=10.0,
                    duration_s=1.0,
                )
                for k in self.kinds
            ],
            self.name,
        )


class EstimatorSpy:
    def __init__(self) -> None:
        self.requests: list[list[str]] = []

    def __call__(self, kinds: Sequence[str]) -> EnergyBackend:
        self.requests.append(list(kinds))
        return FixedEstimator(kinds)


CONFIG = EnergyConfig(carbon_intensity_g_per_kwh=300.0)  # no codecarbon lookup in unit tests


def rapl_tree(root: Path, *, dram: bool = True) -> RaplDomains:
    write_zone(root, "intel-rapl:0", "package-0", 0, max_range_uj=10**12)
    if dram:
        write_zone(root, "intel-rapl:0:2", "dram", 0, max_range_uj=10**12)
    return get_rapl_domains(root)


def run_window(backend: EnergyBackend) -> EnergyReading:
    backend.start()
    reading = backend.stop()
    backend.close()
    return reading


def test_auto_uses_counters_everywhere_when_readable(tmp_path: Path) -> None:
    clock = StepClock()
    gpu = FakeGPU(uuid="GPU-a", energy_mj=0)
    spy = EstimatorSpy()
    backend = create_energy_backend(
        CONFIG, host="h", gpus=[gpu], rapl=rapl_tree(tmp_path), estimator=spy, clock=clock
    )
    assert backend.name == "auto"
    backend.start()
    gpu.energy_mj = 500_000
    set_energy(tmp_path / "intel-rapl:0", 100_000_000)
    set_energy(tmp_path / "intel-rapl:0:2", 20_000_000)
    clock.now = 5.0
    reading = backend.stop()
    backend.close()
    assert spy.requests == []
    energies = {d.device_id: (d.method, d.energy_j) for d in reading.devices}
    assert energies == {
        "gpu:GPU-a": ("counter", pytest.approx(500.0)),
        "h:rapl:package-0": ("counter", pytest.approx(100.0)),
        "h:rapl:package-0/dram": ("counter", pytest.approx(20.0)),
    }
    assert "estimated_energy" not in [w.code for w in reading.warnings]
    assert reading.carbon_intensity_g_per_kwh == 300.0
    metrics, _ = build_energy_metrics(
        reading, baseline_power_w=None, window_s=5.0, output_tokens=62, num_requests=2,
        config=CONFIG,
    )
    assert metrics is not None and metrics.estimated is False
    assert metrics.total_energy_j == pytest.approx(620.0)
    assert metrics.energy_per_output_token_j == pytest.approx(10.0)


def test_auto_falls_back_to_an_estimate_when_rapl_is_root_only(tmp_path: Path) -> None:
    write_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    denied = get_rapl_domains(tmp_path, reader=denying_reader)
    spy = EstimatorSpy()
    backend = create_energy_backend(CONFIG, host="h", gpus=[], rapl=denied, estimator=spy)
    reading = run_window(backend)
    assert spy.requests == [["cpu", "ram"]]
    assert {d.device_id for d in reading.devices} == {"h:estimate:cpu", "h:estimate:ram"}
    assert all(d.estimated and d.method == "estimate" for d in reading.devices)
    by_code = {w.code: w for w in reading.warnings}
    assert "no hardware energy counter" in by_code["estimated_energy"].message
    assert "chmod" in by_code["rapl_unreadable"].message
    assert by_code["rapl_unreadable"].severity == "info"


def test_auto_estimates_only_the_domain_without_a_counter(tmp_path: Path) -> None:
    spy = EstimatorSpy()
    backend = create_energy_backend(
        CONFIG, host="h", gpus=[], rapl=rapl_tree(tmp_path, dram=False), estimator=spy
    )
    reading = run_window(backend)
    assert spy.requests == [["ram"]]
    kinds = {d.device_id: (d.kind, d.estimated) for d in reading.devices}
    assert kinds == {"h:rapl:package-0": ("cpu", False), "h:estimate:ram": ("dram", True)}


def test_auto_without_any_rapl_estimates_cpu_and_ram(tmp_path: Path) -> None:
    spy = EstimatorSpy()
    backend = create_energy_backend(
        CONFIG, host="h", gpus=[], rapl=get_rapl_domains(tmp_path / "none"), estimator=spy
    )
    run_window(backend)
    assert spy.requests == [["cpu", "ram"]]


def test_only_the_host_leader_measures_host_domains(tmp_path: Path) -> None:
    spy = EstimatorSpy()
    backend = create_energy_backend(
        CONFIG,
        host="h",
        is_host_leader=False,
        gpus=[FakeGPU(uuid="GPU-b")],
        rapl=rapl_tree(tmp_path),
        estimator=spy,
    )
    reading = run_window(backend)
    assert spy.requests == []
    assert [d.device_id for d in reading.devices] == ["gpu:GPU-b"]


def test_cpu_only_host_still_records_a_time_series(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    backend = create_energy_backend(
        CONFIG, host="h", gpus=[], rapl=rapl_tree(tmp_path), estimator=EstimatorSpy()
    )
    reading = run_window(backend)
    assert reading.timeseries and {s.device_id for s in reading.timeseries} == {"h:cpu"}


def test_baseline_covers_every_device(tmp_path: Path) -> None:
    backend = create_energy_backend(
        CONFIG, host="h", gpus=[FakeGPU(uuid="GPU-a", energy_mj=0)], rapl=rapl_tree(tmp_path),
        estimator=EstimatorSpy(),
    )
    baseline = backend.measure_baseline(0.1)
    backend.close()
    assert set(baseline) == {"gpu:GPU-a", "h:rapl:package-0", "h:rapl:package-0/dram"}
    assert all(v == 0.0 for v in baseline.values())  # counters did not move


def test_explicit_nvml_without_gpu_says_what_to_use() -> None:
    with pytest.raises(EnergyTrackingError) as info:
        create_energy_backend(EnergyConfig(backend="nvml", carbon_intensity_g_per_kwh=1.0),
                              host="h", gpus=[])
    assert "no NVIDIA GPU" in str(info.value)
    assert "energy.backend auto or codecarbon" in str(info.value)


def test_explicit_rapl_unreadable_raises_the_permission_fix(tmp_path: Path) -> None:
    write_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    denied = get_rapl_domains(tmp_path, reader=denying_reader)
    config = EnergyConfig(backend="rapl", carbon_intensity_g_per_kwh=1.0)
    with pytest.raises(DevicePermissionError, match="CVE-2020-8694"):
        create_energy_backend(config, host="h", rapl=denied)
    with pytest.raises(EnergyTrackingError, match="no RAPL"):
        create_energy_backend(config, host="h", rapl=get_rapl_domains(tmp_path / "none"))
    # Non-leaders leave host domains to the leader: nothing to measure, no error.
    follower = create_energy_backend(config, host="h", is_host_leader=False, rapl=denied)
    assert run_window(follower).devices == []


def test_explicit_codecarbon_estimates_host_and_measures_gpus(tmp_path: Path) -> None:
    spy = EstimatorSpy()
    config = EnergyConfig(backend="codecarbon", carbon_intensity_g_per_kwh=1.0)
    backend = create_energy_backend(
        config, host="h", gpus=[FakeGPU(uuid="GPU-a")], rapl=rapl_tree(tmp_path), estimator=spy
    )
    reading = run_window(backend)
    assert spy.requests == [["cpu", "ram"]]  # RAPL is not used when codecarbon is asked for
    assert reading.backend == "codecarbon"
    assert {d.device_id for d in reading.devices} == {
        "gpu:GPU-a",
        "h:estimate:cpu",
        "h:estimate:ram",
    }


def test_explicit_zeus_without_the_extra_names_the_pip_command() -> None:
    try:
        import zeus  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("zeus is installed")
    config = EnergyConfig(backend="zeus", carbon_intensity_g_per_kwh=1.0)
    with pytest.raises(MissingExtraError) as info:
        create_energy_backend(config, host="h", gpus=[FakeGPU()])
    assert 'pip install "llm-energy-measure[zeus]"' in str(info.value)


def test_null_backend_measures_nothing() -> None:
    backend = create_energy_backend(EnergyConfig(backend="none"), host="h")
    assert backend.name == "none"
    assert backend.measure_baseline(1.0) == {}
    reading = run_window(backend)
    metrics, warnings = build_energy_metrics(
        reading, baseline_power_w={}, window_s=1.0, output_tokens=5, num_requests=1,
        config=EnergyConfig(),
    )
    assert metrics is None and warnings == []


def test_a_failing_part_does_not_leave_others_running(tmp_path: Path) -> None:
    class Broken(FixedEstimator):
        def stop(self) -> EnergyReading:
            raise EnergyTrackingError("estimator failed")

    gpu = FakeGPU(uuid="GPU-a")
    backend = create_energy_backend(
        CONFIG, host="h", gpus=[gpu], rapl=get_rapl_domains(tmp_path / "none"),
        estimator=lambda kinds: Broken(kinds),
    )
    backend.start()
    with pytest.raises(EnergyTrackingError, match="estimator failed"):
        backend.stop()
    calls = gpu.power_calls
    time.sleep(0.25)
    assert gpu.power_calls == calls  # the NVML sampler was stopped too
    backend.close()


def test_unmeasured_kinds_carry_their_reason_from_the_factory(tmp_path: Path) -> None:
    leader = create_energy_backend(CONFIG, host="h", gpus=[], rapl=rapl_tree(tmp_path))
    reading = run_window(leader)
    assert {d.kind for d in reading.devices} == {"cpu", "dram"}
    assert reading.unmeasured == {"gpu": "no GPU is visible to this process"}
    other = create_energy_backend(CONFIG, host="h", gpus=[FakeGPU(uuid="GPU-a", energy_mj=0)],
                                  is_host_leader=False)
    reading = run_window(other)
    metrics, _ = build_energy_metrics(reading, baseline_power_w=None, window_s=1.0,
                                      output_tokens=1, num_requests=1, config=CONFIG)
    assert metrics is not None and metrics.gpu_energy_j == 0.0  # measured: the counter stood
    assert metrics.cpu_energy_j is None and metrics.ram_energy_j is None
    assert "host leader (local rank 0)" in (metrics.unmeasured.cpu_energy_j or "")
