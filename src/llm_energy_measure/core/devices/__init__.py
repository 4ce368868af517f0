"""The device layer: the only code that talks to NVML or reads RAPL sysfs.

Absent hardware gives empty collections, not exceptions. Vendor libraries are imported
inside the probing functions, so importing this package is cheap. Nothing here ever
changes a device setting.
"""

from llm_energy_measure.core.devices.cpu import (
    cpu_count,
    cpu_count_available,
    cpu_model_name,
    total_memory_bytes,
)
from llm_energy_measure.core.devices.exceptions import (
    DeviceError,
    DeviceLostError,
    DeviceNotFoundError,
    DeviceNotSupportedError,
    DevicePermissionError,
    query_or_none,
)
from llm_energy_measure.core.devices.gpu import (
    GPU,
    NVIDIAGPU,
    THROTTLING_REASONS,
    GPUs,
    decode_throttle_reasons,
    get_gpus,
)
from llm_energy_measure.core.devices.rapl import (
    RAPL_PERMISSION_FIX,
    RaplDomain,
    RaplDomains,
    counter_delta_uj,
    get_rapl_domains,
)
from llm_energy_measure.core.devices.snapshot import (
    cuda_driver_version,
    driver_version,
    energy_counters,
    gpu_info,
    gpu_infos,
)

__all__ = [
    "GPU",
    "NVIDIAGPU",
    "RAPL_PERMISSION_FIX",
    "THROTTLING_REASONS",
    "DeviceError",
    "DeviceLostError",
    "DeviceNotFoundError",
    "DeviceNotSupportedError",
    "DevicePermissionError",
    "GPUs",
    "RaplDomain",
    "RaplDomains",
    "counter_delta_uj",
    "cpu_count",
    "cpu_count_available",
    "cpu_model_name",
    "cuda_driver_version",
    "decode_throttle_reasons",
    "driver_version",
    "energy_counters",
    "get_gpus",
    "get_rapl_domains",
    "gpu_info",
    "gpu_infos",
    "query_or_none",
    "total_memory_bytes",
]
