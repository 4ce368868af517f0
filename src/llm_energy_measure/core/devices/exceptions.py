"""Typed errors of the device layer: vendor error codes end here, as these classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from llm_energy_measure.exceptions import EnergyTrackingError

_T = TypeVar("_T")


class DeviceError(EnergyTrackingError):
    """A device query failed."""


def query_or_none(query: Callable[[], _T]) -> _T | None:
    """``query()``, or None when the device cannot answer it (any DeviceError)."""
    try:
        return query()
    except DeviceError:
        return None


class DeviceNotSupportedError(DeviceError):
    """The device or its driver does not support this query (e.g. no energy counter)."""


class DevicePermissionError(DeviceError):
    """The query needs privileges this process lacks; the message says how to grant them."""


class DeviceLostError(DeviceError):
    """The device fell off the bus or needs a reset; its readings cannot be trusted."""


class DeviceNotFoundError(DeviceError):
    """No device matches the index or UUID asked for."""


# NVML return codes (stable across NVML versions; see nvml.h).
_NVML_NOT_SUPPORTED = 3
_NVML_NO_PERMISSION = 4
_NVML_NOT_FOUND = 6
_NVML_FUNCTION_NOT_FOUND = 13
_NVML_GPU_IS_LOST = 15
_NVML_RESET_REQUIRED = 16
_NVML_GPU_NOT_FOUND = 28

_NVML_CODE_TO_CLASS: dict[int, type[DeviceError]] = {
    _NVML_NOT_SUPPORTED: DeviceNotSupportedError,
    _NVML_FUNCTION_NOT_FOUND: DeviceNotSupportedError,
    _NVML_NO_PERMISSION: DevicePermissionError,
    _NVML_GPU_IS_LOST: DeviceLostError,
    _NVML_RESET_REQUIRED: DeviceLostError,
    _NVML_NOT_FOUND: DeviceNotFoundError,
    _NVML_GPU_NOT_FOUND: DeviceNotFoundError,
}


def from_nvml_error(exc: BaseException, what: str) -> DeviceError:
    """Our exception for an NVML error ``exc`` raised while doing ``what``.

    The NVML return code is read from the exception's ``value`` attribute (pynvml's
    NVMLError carries it there); unknown codes become a plain DeviceError.
    """
    code: Any = getattr(exc, "value", None)
    cls = _NVML_CODE_TO_CLASS.get(code, DeviceError) if isinstance(code, int) else DeviceError
    detail = str(exc) or type(exc).__name__
    message = f"{what}: NVML error {code} ({detail})"
    if cls is DevicePermissionError:
        message += "; run as a user allowed to query the GPU (e.g. root) or ask the admin"
    return cls(message)
