"""GPUs as seen through NVML: one class per device, a collection, and a probing factory.

This module is the only place that talks to NVML. ``pynvml`` (package ``nvidia-ml-py``) is
imported inside :func:`get_gpus` only, so importing this module is cheap. Every query is
read-only: nothing here changes a device setting (clocks, power limits, persistence mode).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, overload

from loguru import logger

from llm_energy_measure.core.devices.exceptions import (
    DeviceError,
    DeviceNotFoundError,
    DeviceNotSupportedError,
    from_nvml_error,
)

_T = TypeVar("_T")

#: Bits of NVML's clocks event (throttle) reason mask, with our names for them.
THROTTLE_REASON_BITS: tuple[tuple[int, str], ...] = (
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
)

#: Reasons that mean the GPU ran slower than it could because of power or heat. Idle, sync
#: boost, application/display clock settings are states, not throttling.
THROTTLING_REASONS = frozenset(
    {
        "sw_power_cap",
        "hw_slowdown",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
    }
)


def decode_throttle_reasons(mask: int) -> list[str]:
    """Names of the reasons set in an NVML clocks-event bitmask (empty for none).

    Bits we do not know are reported as ``unknown_0x<bit>`` rather than dropped.
    """
    names: list[str] = []
    known = 0
    for bit, name in THROTTLE_REASON_BITS:
        known |= bit
        if mask & bit:
            names.append(name)
    unknown = mask & ~known
    bit = 1
    while unknown:
        if unknown & bit:
            names.append(f"unknown_{bit:#x}")
            unknown &= ~bit
        bit <<= 1
    return names


class GPU(abc.ABC):
    """One GPU. Subclasses answer each query in the unit its name says.

    ``index`` is the device's index in the vendor library's own (physical) enumeration;
    ``uuid`` is its stable identity (e.g. ``GPU-8f3c...``). Queries the device cannot answer
    raise :class:`DeviceNotSupportedError`; other failures raise other ``DeviceError`` kinds.
    """

    def __init__(self, index: int, uuid: str, name: str) -> None:
        self.index = index
        self.uuid = uuid
        self.name = name
        self._has_counter: bool | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(index={self.index}, uuid={self.uuid!r}, name={self.name!r})"

    @property
    def device_id(self) -> str:
        """Physical identity used to count this GPU once: ``gpu:<UUID>``."""
        return f"gpu:{self.uuid}"

    @abc.abstractmethod
    def total_energy_mj(self) -> int:
        """Energy counter: millijoules since the driver was loaded.

        Raises DeviceNotSupportedError on GPUs without the counter (pre-Volta NVIDIA).
        """

    def supports_energy_counter(self) -> bool:
        """Whether :meth:`total_energy_mj` works on this GPU (probed once, then cached)."""
        if self._has_counter is None:
            try:
                self.total_energy_mj()
                self._has_counter = True
            except DeviceNotSupportedError:
                self._has_counter = False
        return self._has_counter

    @abc.abstractmethod
    def power_w(self) -> float:
        """Current board power draw in watts.

        Caveat: on recent NVIDIA GPUs the driver averages this over about one second.
        """

    @abc.abstractmethod
    def temperature_c(self) -> float:
        """Core temperature in degrees Celsius."""

    @abc.abstractmethod
    def utilisation_pct(self) -> float:
        """Percent of the last sample period during which a kernel was running (0-100)."""

    @abc.abstractmethod
    def memory_used_bytes(self) -> int:
        """Device memory in use, by every process, in bytes."""

    @abc.abstractmethod
    def memory_total_bytes(self) -> int:
        """Device memory capacity in bytes."""

    @abc.abstractmethod
    def sm_clock_mhz(self) -> float:
        """Current streaming-multiprocessor clock in MHz."""

    @abc.abstractmethod
    def max_sm_clock_mhz(self) -> float:
        """Maximum streaming-multiprocessor clock in MHz."""

    @abc.abstractmethod
    def throttle_reasons(self) -> list[str]:
        """Names of the current clock event reasons (see :data:`THROTTLE_REASON_BITS`)."""

    @abc.abstractmethod
    def power_limit_w(self) -> float:
        """Power limit the driver enforces now, in watts (read only, never set)."""

    @abc.abstractmethod
    def persistence_mode(self) -> bool | None:
        """Whether persistence mode is on; None where the platform has no such mode."""

    @abc.abstractmethod
    def running_process_pids(self) -> list[int]:
        """PIDs of processes with a context on this GPU (compute and graphics).

        Caveat: inside a container the driver reports host PIDs, or none at all.
        """


class NVIDIAGPU(GPU):
    """A GPU queried through an NVML module (``pynvml`` or a test double of it).

    Every NVML error is translated into the device exception tree at this boundary.
    """

    def __init__(self, nvml: Any, index: int) -> None:
        self._nvml = nvml
        try:
            self._handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = as_str(nvml.nvmlDeviceGetUUID(self._handle))
            name = as_str(nvml.nvmlDeviceGetName(self._handle))
        except nvml.NVMLError as exc:
            raise from_nvml_error(exc, f"opening GPU {index}") from exc
        super().__init__(index=index, uuid=uuid, name=name)

    def _call(self, function: str, *args: Any) -> Any:
        fn = getattr(self._nvml, function, None)
        if fn is None:
            raise DeviceNotSupportedError(f"{function} is not in this NVML library")
        try:
            return fn(self._handle, *args)
        except self._nvml.NVMLError as exc:
            raise from_nvml_error(exc, f"{function} on GPU {self.index} ({self.uuid})") from exc

    def total_energy_mj(self) -> int:
        return int(self._call("nvmlDeviceGetTotalEnergyConsumption"))

    def power_w(self) -> float:
        return float(self._call("nvmlDeviceGetPowerUsage")) / 1000.0

    def temperature_c(self) -> float:
        sensor = getattr(self._nvml, "NVML_TEMPERATURE_GPU", 0)
        return float(self._call("nvmlDeviceGetTemperature", sensor))

    def utilisation_pct(self) -> float:
        return float(self._call("nvmlDeviceGetUtilizationRates").gpu)

    def memory_used_bytes(self) -> int:
        return int(self._call("nvmlDeviceGetMemoryInfo").used)

    def memory_total_bytes(self) -> int:
        return int(self._call("nvmlDeviceGetMemoryInfo").total)

    def sm_clock_mhz(self) -> float:
        return float(self._call("nvmlDeviceGetClockInfo", self._clock_sm))

    def max_sm_clock_mhz(self) -> float:
        return float(self._call("nvmlDeviceGetMaxClockInfo", self._clock_sm))

    @property
    def _clock_sm(self) -> int:
        return int(getattr(self._nvml, "NVML_CLOCK_SM", 1))

    def throttle_reasons(self) -> list[str]:
        # Newer NVML renamed "throttle reasons" to "clocks event reasons"; same bitmask.
        if hasattr(self._nvml, "nvmlDeviceGetCurrentClocksEventReasons"):
            mask = self._call("nvmlDeviceGetCurrentClocksEventReasons")
        else:
            mask = self._call("nvmlDeviceGetCurrentClocksThrottleReasons")
        return decode_throttle_reasons(int(mask))

    def power_limit_w(self) -> float:
        return float(self._call("nvmlDeviceGetEnforcedPowerLimit")) / 1000.0

    def persistence_mode(self) -> bool | None:
        try:
            mode = self._call("nvmlDeviceGetPersistenceMode")
        except DeviceNotSupportedError:
            return None
        return bool(mode == getattr(self._nvml, "NVML_FEATURE_ENABLED", 1))

    def running_process_pids(self) -> list[int]:
        pids: list[int] = []
        for function in (
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses",
        ):
            try:
                processes = self._call(function)
            except DeviceNotSupportedError:
                continue
            for proc in processes:
                pid = int(proc.pid)
                if pid not in pids:
                    pids.append(pid)
        return pids


class GPUs(Sequence[GPU]):
    """The GPUs this process may use, in CUDA-visible order (position = ``cuda:<n>``).

    Index it by position (``gpus[0]``) or by UUID (``gpus["GPU-..."]``). An empty
    collection means no NVIDIA GPU or no working NVML. :meth:`close` shuts NVML down once.
    A subset made by :meth:`select` remembers each GPU's CUDA-visible position
    (:attr:`positions`), which libraries that address GPUs by CUDA index (Zeus) need.
    """

    def __init__(
        self, gpus: Sequence[GPU] = (), nvml: Any = None, *, owns_nvml: bool = True,
        positions: Sequence[int] | None = None,
    ) -> None:
        self._gpus: tuple[GPU, ...] = tuple(gpus)
        self._positions = tuple(positions) if positions is not None else tuple(
            range(len(self._gpus)))
        self._nvml = nvml
        self._owns_nvml = owns_nvml
        self._closed = False

    @classmethod
    def empty(cls) -> GPUs:
        """A collection with no GPU and no NVML session."""
        return cls(())

    @property
    def nvml(self) -> Any:
        """The NVML module this collection initialised, or None."""
        return self._nvml

    def __len__(self) -> int:
        return len(self._gpus)

    def __iter__(self) -> Iterator[GPU]:
        return iter(self._gpus)

    @overload
    def __getitem__(self, key: int) -> GPU: ...

    @overload
    def __getitem__(self, key: slice) -> Sequence[GPU]: ...

    @overload
    def __getitem__(self, key: str) -> GPU: ...

    def __getitem__(self, key: int | slice | str) -> GPU | Sequence[GPU]:
        if isinstance(key, str):
            return self.by_uuid(key)
        return self._gpus[key]

    def by_uuid(self, uuid: str) -> GPU:
        """The GPU with this UUID; raises DeviceNotFoundError when none has it."""
        for gpu in self._gpus:
            if gpu.uuid == uuid:
                return gpu
        raise DeviceNotFoundError(f"no visible GPU has UUID {uuid!r}")

    def select(self, positions: Sequence[int]) -> GPUs:
        """The GPUs at these positions (e.g. ``[local_rank]`` for the device a process
        drives), sharing this collection's NVML session; closing the subset does not end it."""
        return GPUs([self._gpus[i] for i in positions], nvml=self._nvml, owns_nvml=False,
                    positions=[self._positions[i] for i in positions])

    @property
    def positions(self) -> tuple[int, ...]:
        """The CUDA-visible position (``cuda:<n>``) of each GPU, in this collection's order."""
        return self._positions

    @property
    def uuids(self) -> list[str]:
        return [gpu.uuid for gpu in self._gpus]

    def close(self) -> None:
        """Shut the NVML session down (once; later calls do nothing)."""
        if self._closed or self._nvml is None or not self._owns_nvml:
            self._closed = True
            return
        self._closed = True
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:  # shutdown failure must not mask the run's result
            logger.debug("nvmlShutdown failed: {}", exc)

    def __enter__(self) -> GPUs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def select_visible(
    gpus: Sequence[_T], visible: str | Sequence[int | str] | None, uuid_of: Callable[[_T], str]
) -> list[_T]:
    """The subset of ``gpus`` (physical order) that CUDA would expose, in CUDA's order.

    ``visible`` follows ``CUDA_VISIBLE_DEVICES``: comma-separated indices or UUIDs (or UUID
    prefixes, with or without ``GPU-``); None means all. As CUDA does, parsing stops at the
    first entry that names no device (so ``-1`` hides every GPU). MIG instances are not
    supported and stop the list too.

    Caveat: indices are NVML (PCI bus) indices; CUDA uses the same order only with
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID``. UUIDs are unambiguous.
    """
    if visible is None:
        return list(gpus)
    tokens = visible.split(",") if isinstance(visible, str) else [str(t) for t in visible]
    chosen: list[_T] = []
    for raw in tokens:
        token = raw.strip()
        match = _match_token(gpus, token, uuid_of)
        if match is None:
            if token:
                logger.debug("CUDA_VISIBLE_DEVICES entry {!r} names no GPU: stopping", token)
            break
        if match not in chosen:
            chosen.append(match)
    return chosen


def _match_token(gpus: Sequence[_T], token: str, uuid_of: Callable[[_T], str]) -> _T | None:
    if not token or token.upper().startswith("MIG-"):
        return None
    if token.lstrip("-").isdigit():
        index = int(token)
        return gpus[index] if 0 <= index < len(gpus) else None
    prefix = token if token.upper().startswith("GPU-") else f"GPU-{token}"
    found = [g for g in gpus if uuid_of(g).upper().startswith(prefix.upper())]
    return found[0] if len(found) == 1 else None


def get_gpus(
    nvml: Any = None, visible: str | Sequence[int | str] | None = None
) -> GPUs:
    """Probe NVIDIA GPUs; never raises for absent hardware.

    ``nvml`` is the NVML module to use (default: ``pynvml``, imported here). ``visible``
    overrides ``CUDA_VISIBLE_DEVICES``. Returns an empty collection when pynvml is missing,
    ``nvmlInit`` fails (no driver, no GPU) or enumeration fails.
    """
    if nvml is None:
        try:
            import pynvml as nvml_module
        except ImportError:
            logger.debug("pynvml is not installed: no NVIDIA GPU will be measured")
            return GPUs.empty()
        nvml = nvml_module
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError, OSError from a missing library, ...
        logger.debug("nvmlInit failed ({}): no NVIDIA GPU will be measured", exc)
        return GPUs.empty()
    try:
        count = int(nvml.nvmlDeviceGetCount())
        physical = [NVIDIAGPU(nvml, i) for i in range(count)]
    except (nvml.NVMLError, DeviceError) as exc:
        logger.warning("NVML could not list the GPUs ({}): no GPU will be measured", exc)
        _safe_shutdown(nvml)
        return GPUs.empty()
    if visible is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    chosen = select_visible(physical, visible, lambda g: g.uuid)
    return GPUs(chosen, nvml=nvml)


def _safe_shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception as exc:
        logger.debug("nvmlShutdown failed: {}", exc)


def as_str(value: Any) -> str:
    """An NVML string (bytes in older bindings) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)
