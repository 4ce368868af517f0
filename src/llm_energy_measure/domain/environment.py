"""Where it was measured: hardware, drivers and library versions."""

from __future__ import annotations

from llm_energy_measure.domain.base import FrozenModel


class GpuInfo(FrozenModel):
    """One GPU as seen at the start of the run (read-only; settings are never changed)."""

    index: int
    uuid: str
    name: str
    memory_total_bytes: int | None = None
    power_limit_w: float | None = None
    persistence_mode: bool | None = None
    energy_counter: bool | None = None
    sm_clock_mhz: float | None = None
    max_sm_clock_mhz: float | None = None
    temperature_c: float | None = None


class EnvironmentInfo(FrozenModel):
    """Environment snapshot recorded with every result."""

    hostname: str
    os: str
    python_version: str
    package_version: str
    cpu_model: str | None = None
    cpu_count: int | None = None
    total_memory_bytes: int | None = None
    torch_version: str | None = None
    transformers_version: str | None = None
    accelerate_version: str | None = None
    cuda_version: str | None = None
    driver_version: str | None = None
    gpus: tuple[GpuInfo, ...] = ()
    energy_counters: tuple[str, ...] = ()
    #: torch intra-op threads of the measuring process (set per process when several share a
    #: host's CPU cores).
    torch_num_threads: int | None = None
