"""Fakes of the vendor interfaces and of our device layer: an NVML module whose devices the
test sets up (``FakeNVML([FakeDevice(...)])``), a GPU of our own abstraction with values
given to its constructor (``FakeGPU``), and a RAPL powercap sysfs tree under a folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from llm_energy_measure.core.devices import GPU, DeviceNotSupportedError

# ---------------------------------------------------------------- fake NVML module


class FakeNVMLError(Exception):
    """Like pynvml.NVMLError: carries the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(f"fake NVML error {value}")
        self.value = value


@dataclass
class FakeDevice:
    """State of one fake GPU. ``energy_mj`` None means no energy counter (pre-Volta).

    With ``power_clock`` set, the counter advances as power_w x elapsed time, like hardware.
    ``fail`` maps an NVML function name to an error code it raises.
    """

    uuid: str
    name: str = "Fake GPU"
    power_w: float = 100.0
    energy_mj: int | None = 0
    power_clock: Callable[[], float] | None = None
    temperature_c: int = 40
    utilisation_pct: int = 50
    memory_used: int = 1 << 30
    memory_total: int = 80 << 30
    sm_clock_mhz: int = 1400
    max_sm_clock_mhz: int = 1980
    throttle_mask: int = 0
    power_limit_mw: int = 700_000
    persistence: int = 1
    pids: list[int] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    _clock_t0: float | None = None


class FakeNVML:
    """A stand-in for the ``pynvml`` module with counters the test controls."""

    NVMLError = FakeNVMLError
    NVML_ERROR_UNINITIALIZED = 1
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NO_PERMISSION = 4
    NVML_ERROR_NOT_FOUND = 6
    NVML_ERROR_DRIVER_NOT_LOADED = 9
    NVML_ERROR_GPU_IS_LOST = 15
    NVML_ERROR_UNKNOWN = 999
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_FEATURE_ENABLED = 1

    def __init__(
        self,
        devices: list[FakeDevice],
        *,
        init_error: int | None = None,
        driver: str = "550.54.15",
        cuda_driver: int = 12040,
    ) -> None:
        self.devices = devices
        self.init_error = init_error
        self.driver = driver
        self.cuda_driver = cuda_driver
        self.init_calls = 0
        self.shutdown_calls = 0
        self.calls: list[str] = []

    def _dev(self, handle: int, function: str) -> FakeDevice:
        self.calls.append(function)
        device = self.devices[handle]
        if function in device.fail:
            raise FakeNVMLError(device.fail[function])
        return device

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.devices):
            raise FakeNVMLError(2)
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> bytes:
        return self._dev(handle, "nvmlDeviceGetUUID").uuid.encode()

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._dev(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        device = self._dev(handle, "nvmlDeviceGetTotalEnergyConsumption")
        if device.energy_mj is None:
            raise FakeNVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        if device.power_clock is not None:
            now = device.power_clock()
            if device._clock_t0 is None:
                device._clock_t0 = now
            return device.energy_mj + int(device.power_w * (now - device._clock_t0) * 1000)
        return device.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return int(self._dev(handle, "nvmlDeviceGetPowerUsage").power_w * 1000)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._dev(handle, "nvmlDeviceGetTemperature").temperature_c

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        device = self._dev(handle, "nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=device.utilisation_pct, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        device = self._dev(handle, "nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(
            used=device.memory_used, total=device.memory_total, free=device.memory_total
        )

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> int:
        assert clock == self.NVML_CLOCK_SM
        return self._dev(handle, "nvmlDeviceGetClockInfo").sm_clock_mhz

    def nvmlDeviceGetMaxClockInfo(self, handle: int, clock: int) -> int:
        assert clock == self.NVML_CLOCK_SM
        return self._dev(handle, "nvmlDeviceGetMaxClockInfo").max_sm_clock_mhz

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: int) -> int:
        return self._dev(handle, "nvmlDeviceGetCurrentClocksEventReasons").throttle_mask

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return self._dev(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetPersistenceMode(self, handle: int) -> int:
        return self._dev(handle, "nvmlDeviceGetPersistenceMode").persistence

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        device = self._dev(handle, "nvmlDeviceGetComputeRunningProcesses")
        return [SimpleNamespace(pid=p, usedGpuMemory=0) for p in device.pids]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        self._dev(handle, "nvmlDeviceGetGraphicsRunningProcesses")
        return []

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self.cuda_driver


def uuids(n: int) -> list[str]:
    return [f"GPU-{i:08x}-aaaa-bbbb-cccc-{i:012x}" for i in range(n)]


# ---------------------------------------------------------------- fake GPU (our abstraction)


class FakeGPU(GPU):
    """Our own abstract GPU with values the test sets directly."""

    def __init__(
        self,
        index: int = 0,
        uuid: str = "GPU-fake-0",
        *,
        power_w: float = 100.0,
        energy_mj: int | None = 0,
        throttle: list[str] | None = None,
        pids: list[int] | None = None,
    ) -> None:
        super().__init__(index=index, uuid=uuid, name="FakeGPU")
        self.power = power_w
        self.energy_mj = energy_mj
        self.throttle = throttle or []
        self.pids = pids or []
        self.power_calls = 0

    def total_energy_mj(self) -> int:
        if self.energy_mj is None:
            raise DeviceNotSupportedError("no counter")
        return self.energy_mj

    def power_w(self) -> float:
        self.power_calls += 1
        return self.power

    def temperature_c(self) -> float:
        return 45.0

    def utilisation_pct(self) -> float:
        return 90.0

    def memory_used_bytes(self) -> int:
        return 1 << 30

    def memory_total_bytes(self) -> int:
        return 16 << 30

    def sm_clock_mhz(self) -> float:
        return 1500.0

    def max_sm_clock_mhz(self) -> float:
        return 2000.0

    def throttle_reasons(self) -> list[str]:
        return list(self.throttle)

    def power_limit_w(self) -> float:
        return 300.0

    def persistence_mode(self) -> bool | None:
        return True

    def running_process_pids(self) -> list[int]:
        return list(self.pids)


# ---------------------------------------------------------------- fake RAPL sysfs tree


def write_zone(
    root: Path, dirname: str, name: str, energy_uj: int, max_range_uj: int | None = 1_000_000
) -> Path:
    """Create one powercap zone directory with its name/energy_uj/max_energy_range_uj."""
    zone = root / dirname
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text(f"{name}\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    if max_range_uj is not None:
        (zone / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return zone


def set_energy(zone: Path, energy_uj: int) -> None:
    """Replace the counter atomically, as sysfs does (a reader never sees a half write)."""
    tmp = zone / "energy_uj.tmp"
    tmp.write_text(f"{energy_uj}\n")
    tmp.replace(zone / "energy_uj")


def denying_reader(path: Path) -> str:
    """A sysfs reader that refuses energy_uj like a root-only file does."""
    if path.name == "energy_uj":
        raise PermissionError(13, "Permission denied", str(path))
    return path.read_text()
