"""Energy backends built on the device layer: NVML, RAPL, CodeCarbon, Zeus, null, auto.

Vendor and optional packages are imported inside the functions that use them, so
importing this package is cheap.
"""

from llm_energy_measure.core.energy_backends.base import (
    BaseEnergyBackend,
    baseline_power_from_reading,
)
from llm_energy_measure.core.energy_backends.codecarbon import (
    CodeCarbonBackend,
    carbon_intensity_g_per_kwh,
)
from llm_energy_measure.core.energy_backends.composite import CompositeBackend
from llm_energy_measure.core.energy_backends.factory import (
    create_energy_backend,
    resolve_carbon_intensity,
)
from llm_energy_measure.core.energy_backends.null import NullBackend
from llm_energy_measure.core.energy_backends.nvml import NvmlBackend
from llm_energy_measure.core.energy_backends.rapl import RaplBackend
from llm_energy_measure.core.energy_backends.sampler import PowerSampler, integrate_power_j
from llm_energy_measure.core.energy_backends.zeus import ZeusBackend

__all__ = [
    "BaseEnergyBackend",
    "CodeCarbonBackend",
    "CompositeBackend",
    "NullBackend",
    "NvmlBackend",
    "PowerSampler",
    "RaplBackend",
    "ZeusBackend",
    "baseline_power_from_reading",
    "carbon_intensity_g_per_kwh",
    "create_energy_backend",
    "integrate_power_j",
    "resolve_carbon_intensity",
]
