"""Read-only snapshots of the devices for the environment record of a result."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from loguru import logger

from llm_energy_measure.core.devices.exceptions import query_or_none
from llm_energy_measure.core.devices.gpu import GPU, GPUs, as_str
from llm_energy_measure.core.devices.rapl import RaplDomains
from llm_energy_measure.domain import GpuInfo

_T = TypeVar("_T")



def gpu_info(gpu: GPU) -> GpuInfo:
    """One GPU's state now; fields the device cannot report are None."""
    return GpuInfo(
        index=gpu.index,
        uuid=gpu.uuid,
        name=gpu.name,
        memory_total_bytes=query_or_none(gpu.memory_total_bytes),
        power_limit_w=query_or_none(gpu.power_limit_w),
        persistence_mode=query_or_none(gpu.persistence_mode),
        energy_counter=gpu.supports_energy_counter(),
        sm_clock_mhz=query_or_none(gpu.sm_clock_mhz),
        max_sm_clock_mhz=query_or_none(gpu.max_sm_clock_mhz),
        temperature_c=query_or_none(gpu.temperature_c),
    )


def gpu_infos(gpus: Iterable[GPU]) -> tuple[GpuInfo, ...]:
    """:func:`gpu_info` of each GPU, in the collection's order."""
    return tuple(gpu_info(gpu) for gpu in gpus)


def energy_counters(gpus: Iterable[GPU], rapl: RaplDomains | None = None) -> tuple[str, ...]:
    """Hardware energy counters available: ``nvml:gpu:<UUID>`` and ``rapl:<zone>`` entries
    (RAPL zones only when readable by this process)."""
    found = [f"nvml:{gpu.device_id}" for gpu in gpus if gpu.supports_energy_counter()]
    if rapl is not None:
        found += [f"rapl:{d.name}" for d in rapl.measurable() if d.is_readable()]
    return tuple(found)


def _with_nvml(source: Any, query: Callable[[Any], _T]) -> _T | None:
    nvml = source.nvml if isinstance(source, GPUs) else source
    owned = nvml is None
    if owned:
        try:
            import pynvml
        except ImportError:
            return None
        nvml = pynvml
        try:
            nvml.nvmlInit()
        except Exception as exc:
            logger.debug("nvmlInit failed: {}", exc)
            return None
    try:
        return query(nvml)
    except Exception as exc:  # an unanswerable query leaves the field empty
        logger.debug("NVML query failed: {}", exc)
        return None
    finally:
        if owned:
            try:
                nvml.nvmlShutdown()
            except Exception as exc:
                logger.debug("nvmlShutdown failed: {}", exc)


def driver_version(source: GPUs | Any = None) -> str | None:
    """NVIDIA driver version (e.g. ``550.54.15``); None without a driver.

    ``source`` is a :class:`GPUs` collection (its NVML session is used) or an initialised
    NVML module; by default pynvml is imported and initialised for this call only.
    """
    return _with_nvml(source, lambda m: as_str(m.nvmlSystemGetDriverVersion()))


def cuda_driver_version(source: GPUs | Any = None) -> str | None:
    """Highest CUDA version the driver supports (e.g. ``12.4``); None without a driver.

    ``source`` as for :func:`driver_version`.
    """

    def query(m: Any) -> str:
        value = int(m.nvmlSystemGetCudaDriverVersion())
        return f"{value // 1000}.{(value % 1000) // 10}"

    return _with_nvml(source, query)

