"""The fakes in tests/fakes/devices.py speak the real library's codes, and the device layer
maps real pynvml errors onto our exception tree."""

from __future__ import annotations

import pytest
from tests.fakes.clock import StepClock
from tests.fakes.devices import FakeDevice, FakeNVML

from llm_energy_measure.core.devices import (
    DeviceError,
    DeviceLostError,
    DeviceNotFoundError,
    DeviceNotSupportedError,
    DevicePermissionError,
)
from llm_energy_measure.core.devices.exceptions import from_nvml_error
from llm_energy_measure.exceptions import EnergyTrackingError


def test_fake_nvml_error_codes_match_pynvml() -> None:
    pynvml = pytest.importorskip("pynvml")
    for name in (
        "NVML_ERROR_UNINITIALIZED",
        "NVML_ERROR_NOT_SUPPORTED",
        "NVML_ERROR_NO_PERMISSION",
        "NVML_ERROR_NOT_FOUND",
        "NVML_ERROR_DRIVER_NOT_LOADED",
        "NVML_ERROR_GPU_IS_LOST",
        "NVML_ERROR_UNKNOWN",
        "NVML_TEMPERATURE_GPU",
        "NVML_CLOCK_SM",
        "NVML_FEATURE_ENABLED",
    ):
        assert getattr(FakeNVML, name) == getattr(pynvml, name), name


def test_real_pynvml_errors_map_to_our_tree() -> None:
    pynvml = pytest.importorskip("pynvml")
    cases = {
        pynvml.NVML_ERROR_NOT_SUPPORTED: DeviceNotSupportedError,
        pynvml.NVML_ERROR_FUNCTION_NOT_FOUND: DeviceNotSupportedError,
        pynvml.NVML_ERROR_NO_PERMISSION: DevicePermissionError,
        pynvml.NVML_ERROR_GPU_IS_LOST: DeviceLostError,
        pynvml.NVML_ERROR_NOT_FOUND: DeviceNotFoundError,
    }
    for code, expected in cases.items():
        mapped = from_nvml_error(pynvml.NVMLError(code), "query")
        assert type(mapped) is expected, code
        assert isinstance(mapped, EnergyTrackingError)
    unknown = from_nvml_error(pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN), "query")
    assert type(unknown) is DeviceError
    assert "999" in str(unknown)


def test_fake_counter_follows_power_and_clock() -> None:
    clock = StepClock(100.0)
    nvml = FakeNVML([FakeDevice(uuid="GPU-x", power_w=250.0, energy_mj=5_000, power_clock=clock)])
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(0) == 5_000
    clock.now = 102.0
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(0) == 5_000 + 500_000
