"""The NVML device layer against a fake NVML module: probing, visibility, units, errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from tests.fakes.devices import FakeDevice, FakeNVML, uuids

import llm_energy_measure.core.devices as devices_pkg
import llm_energy_measure.core.energy_backends as backends_pkg
from llm_energy_measure.core.devices import (
    NVIDIAGPU,
    DeviceError,
    DeviceLostError,
    DeviceNotFoundError,
    DevicePermissionError,
    GPUs,
    cuda_driver_version,
    decode_throttle_reasons,
    driver_version,
    energy_counters,
    get_gpus,
    gpu_infos,
)


def make_nvml(n: int = 3, **kwargs: object) -> FakeNVML:
    return FakeNVML([FakeDevice(uuid=u, name=f"Fake {i}") for i, u in enumerate(uuids(n))],
                    **kwargs)  # type: ignore[arg-type]


def test_get_gpus_lists_every_gpu_by_position_and_uuid() -> None:
    nvml = make_nvml(3)
    gpus = get_gpus(nvml, visible=None)
    ids = uuids(3)
    assert len(gpus) == 3
    assert [g.uuid for g in gpus] == ids
    assert gpus[1].index == 1 and gpus[1].name == "Fake 1"
    assert gpus[ids[2]] is gpus[2]
    assert gpus[0].device_id == f"gpu:{ids[0]}"
    with pytest.raises(DeviceNotFoundError):
        gpus.by_uuid("GPU-nope")
    assert nvml.init_calls == 1


def test_init_failure_gives_empty_collection_not_an_error() -> None:
    nvml = make_nvml(2, init_error=FakeNVML.NVML_ERROR_DRIVER_NOT_LOADED)
    gpus = get_gpus(nvml)
    assert len(gpus) == 0
    assert list(gpus) == []
    gpus.close()  # nothing to shut down
    assert nvml.shutdown_calls == 0


def test_missing_pynvml_gives_empty_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    assert len(get_gpus()) == 0


def test_enumeration_failure_shuts_nvml_down_and_gives_empty() -> None:
    nvml = make_nvml(2)
    nvml.devices[1].fail["nvmlDeviceGetUUID"] = FakeNVML.NVML_ERROR_GPU_IS_LOST
    assert len(get_gpus(nvml)) == 0
    assert nvml.shutdown_calls == 1


@pytest.mark.parametrize(
    ("visible", "expected_positions"),
    [
        ("2", [2]),
        ("2,0", [2, 0]),
        (" 1 , 2 ", [1, 2]),
        ("0,7,1", [0]),  # CUDA stops at the first invalid entry
        ("-1", []),
        ("", []),
        ("1,1", [1]),
        ([2, 1], [2, 1]),
    ],
)
def test_cuda_visible_devices_indices(visible: object, expected_positions: list[int]) -> None:
    gpus = get_gpus(make_nvml(3), visible=visible)  # type: ignore[arg-type]
    assert [g.uuid for g in gpus] == [uuids(3)[i] for i in expected_positions]


def test_cuda_visible_devices_uuids_and_prefixes() -> None:
    ids = uuids(3)
    assert [g.uuid for g in get_gpus(make_nvml(3), visible=f"{ids[2]},{ids[0]}")] == [
        ids[2],
        ids[0],
    ]
    # A unique prefix, with or without "GPU-".
    assert [g.uuid for g in get_gpus(make_nvml(3), visible="GPU-00000001")] == [ids[1]]
    assert [g.uuid for g in get_gpus(make_nvml(3), visible="00000002")] == [ids[2]]
    # An ambiguous prefix matches nothing, and stops the list.
    assert len(get_gpus(make_nvml(3), visible="GPU-0000")) == 0
    # MIG instances are not supported.
    assert len(get_gpus(make_nvml(3), visible="MIG-1234")) == 0


def test_environment_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert [g.uuid for g in get_gpus(make_nvml(3))] == [uuids(3)[1]]


def test_queries_convert_units() -> None:
    nvml = FakeNVML(
        [
            FakeDevice(
                uuid="GPU-a",
                power_w=123.456,
                energy_mj=9_876_543,
                power_limit_mw=350_000,
                throttle_mask=0x4,
                pids=[11, 12],
                persistence=0,
            )
        ]
    )
    gpu = NVIDIAGPU(nvml, 0)
    assert gpu.uuid == "GPU-a"  # bytes from NVML decoded
    assert gpu.power_w() == pytest.approx(123.456)
    assert gpu.total_energy_mj() == 9_876_543
    assert gpu.power_limit_w() == 350.0
    assert gpu.temperature_c() == 40.0
    assert gpu.utilisation_pct() == 50.0
    assert gpu.memory_used_bytes() == 1 << 30
    assert gpu.memory_total_bytes() == 80 << 30
    assert gpu.sm_clock_mhz() == 1400.0
    assert gpu.max_sm_clock_mhz() == 1980.0
    assert gpu.throttle_reasons() == ["sw_power_cap"]
    assert gpu.running_process_pids() == [11, 12]
    assert gpu.persistence_mode() is False
    assert gpu.supports_energy_counter() is True


def test_gpu_without_counter_is_detected_once() -> None:
    nvml = FakeNVML([FakeDevice(uuid="GPU-old", energy_mj=None)])
    gpu = NVIDIAGPU(nvml, 0)
    assert gpu.supports_energy_counter() is False
    assert gpu.supports_energy_counter() is False
    assert nvml.calls.count("nvmlDeviceGetTotalEnergyConsumption") == 1


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (FakeNVML.NVML_ERROR_NO_PERMISSION, DevicePermissionError),
        (FakeNVML.NVML_ERROR_GPU_IS_LOST, DeviceLostError),
        (FakeNVML.NVML_ERROR_NOT_FOUND, DeviceNotFoundError),
        (FakeNVML.NVML_ERROR_UNKNOWN, DeviceError),
    ],
)
def test_nvml_errors_become_typed_device_errors(code: int, expected: type) -> None:
    nvml = FakeNVML([FakeDevice(uuid="GPU-e", fail={"nvmlDeviceGetPowerUsage": code})])
    gpu = NVIDIAGPU(nvml, 0)
    with pytest.raises(expected) as info:
        gpu.power_w()
    assert type(info.value) is expected
    assert "GPU-e" in str(info.value)


def test_persistence_mode_unsupported_is_none() -> None:
    nvml = FakeNVML(
        [FakeDevice(uuid="GPU-w", fail={"nvmlDeviceGetPersistenceMode": 3})]
    )
    assert NVIDIAGPU(nvml, 0).persistence_mode() is None


def test_select_gives_a_subset_sharing_the_session() -> None:
    nvml = make_nvml(3)
    gpus = get_gpus(nvml)
    mine = gpus.select([2])
    assert [g.uuid for g in mine] == [uuids(3)[2]]
    assert driver_version(mine) == "550.54.15"
    mine.close()
    assert nvml.shutdown_calls == 0  # the parent still owns the session
    gpus.close()
    assert nvml.shutdown_calls == 1


def test_close_shuts_nvml_down_exactly_once() -> None:
    nvml = make_nvml(2)
    gpus = get_gpus(nvml)
    gpus.close()
    gpus.close()
    assert nvml.shutdown_calls == 1
    with get_gpus(nvml) as again:
        assert len(again) == 2
    assert nvml.shutdown_calls == 2


def test_snapshot_records_state_and_versions() -> None:
    nvml = FakeNVML(
        [
            FakeDevice(uuid="GPU-a", energy_mj=1),
            FakeDevice(uuid="GPU-b", energy_mj=None, fail={"nvmlDeviceGetTemperature": 3}),
        ]
    )
    gpus = get_gpus(nvml, visible=None)
    infos = gpu_infos(gpus)
    assert [i.uuid for i in infos] == ["GPU-a", "GPU-b"]
    assert infos[0].power_limit_w == 700.0
    assert infos[0].memory_total_bytes == 80 << 30
    assert infos[0].persistence_mode is True
    assert infos[0].energy_counter is True and infos[1].energy_counter is False
    assert infos[0].temperature_c == 40.0 and infos[1].temperature_c is None
    assert energy_counters(gpus) == ("nvml:gpu:GPU-a",)
    assert driver_version(nvml) == "550.54.15"
    assert driver_version(gpus) == "550.54.15"  # the collection's NVML session
    assert cuda_driver_version(gpus) == "12.4"
    assert cuda_driver_version(nvml) == "12.4"
    assert cuda_driver_version(FakeNVML([], cuda_driver=11080)) == "11.8"


def test_empty_collection_helpers() -> None:
    gpus = GPUs.empty()
    assert gpu_infos(gpus) == ()
    assert gpus.uuids == []


def _package_sources(package: object) -> list[Path]:
    root = Path(package.__file__).parent  # type: ignore[attr-defined]
    return sorted(root.glob("*.py"))


def test_no_device_setting_is_ever_changed() -> None:
    """Measure the machine as it is: no nvml*Set* call anywhere in the device or energy layer."""
    setter = re.compile(r"nvml\w*Set\w*")
    offenders = [
        f"{path.name}: {match.group(0)}"
        for package in (devices_pkg, backends_pkg)
        for path in _package_sources(package)
        for match in setter.finditer(path.read_text())
    ]
    assert offenders == []
    assert len(_package_sources(devices_pkg)) >= 5  # the scan really read the modules


def test_decode_throttle_reasons_names_bits() -> None:
    assert decode_throttle_reasons(0) == []
    assert decode_throttle_reasons(0x1 | 0x4 | 0x40) == [
        "gpu_idle",
        "sw_power_cap",
        "hw_thermal_slowdown",
    ]
    assert decode_throttle_reasons(0x10000 | 0x8) == ["hw_slowdown", "unknown_0x10000"]
