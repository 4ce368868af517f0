"""Build the energy backend an EnergyConfig asks for."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from llm_energy_measure.config.models import NO_ENERGY_BACKEND, EnergyConfig
from llm_energy_measure.core.devices import GPU, RaplDomains, get_gpus, get_rapl_domains
from llm_energy_measure.core.energy_backends.auto import (
    EstimatorFactory,
    auto_parts,
)
from llm_energy_measure.core.energy_backends.codecarbon import (
    carbon_intensity_g_per_kwh,
    codecarbon_available,
)
from llm_energy_measure.core.energy_backends.composite import CompositeBackend
from llm_energy_measure.core.energy_backends.null import NullBackend
from llm_energy_measure.core.energy_backends.nvml import NO_GPU_MESSAGE, NvmlBackend
from llm_energy_measure.core.energy_backends.prometheus import (
    PrometheusEnergyBackend,
    prometheus_unmeasured,
)
from llm_energy_measure.core.energy_backends.rapl import NO_RAPL_MESSAGE, RaplBackend
from llm_energy_measure.core.energy_backends.sampler import PowerSampler
from llm_energy_measure.core.energy_backends.zeus import ZeusBackend
from llm_energy_measure.domain import MeasurementWarning
from llm_energy_measure.exceptions import EnergyTrackingError, MissingExtraError
from llm_energy_measure.protocols import EnergyBackend


def resolve_carbon_intensity(
    config: EnergyConfig,
) -> tuple[float | None, str | None, list[MeasurementWarning]]:
    """Carbon intensity (gCO2eq/kWh) and its source: the configured value, else codecarbon's
    bundled data for energy.country_iso_code / energy.region, else None with a note.

    An unknown country or region raises ConfigurationError (before any measuring starts).
    """
    if config.carbon_intensity_g_per_kwh is not None:
        return config.carbon_intensity_g_per_kwh, "energy.carbon_intensity_g_per_kwh", []
    if not codecarbon_available():
        note = MeasurementWarning(
            code="no_carbon_intensity",
            severity="info",
            message=(
                "emissions are not computed: set energy.carbon_intensity_g_per_kwh or install "
                'codecarbon (pip install "llm-energy-measure[codecarbon]")'
            ),
        )
        return None, None, [note]
    value, source = carbon_intensity_g_per_kwh(config.country_iso_code, config.region)
    return value, source, []


def create_energy_backend(
    config: EnergyConfig,
    *,
    host: str,
    is_host_leader: bool = True,
    gpus: Sequence[GPU] | None = None,
    rapl: RaplDomains | None = None,
    estimator: EstimatorFactory | None = None,
    own_pids: Iterable[int] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> EnergyBackend:
    """The backend for ``config.backend``, measuring what this process should measure.

    ``gpus``: the GPUs this process drives (default: every visible GPU, probed here; the
    NVML session is then closed by the backend's close()). ``rapl``: the host's RAPL zones
    (default: probed here). Host-level domains (CPU package, DRAM) are measured only when
    ``is_host_leader`` (local rank 0). ``estimator`` replaces codecarbon as the CPU/RAM
    estimator (tests). ``own_pids``: this run's processes, not reported as foreign.

    Raises EnergyTrackingError when an explicitly chosen backend has nothing to measure,
    DevicePermissionError (with the fix) when RAPL is root-only, MissingExtraError when the
    backend's package is not installed, ConfigurationError for an unknown country/region.
    """
    kind = config.backend
    if kind == NO_ENERGY_BACKEND:
        return NullBackend()
    if kind == "codecarbon" and estimator is None and not codecarbon_available():
        raise MissingExtraError("codecarbon", "codecarbon", "The codecarbon energy backend")
    intensity, source, notes = resolve_carbon_intensity(config)
    on_close: list[Callable[[], None]] = []
    if gpus is None and kind != "rapl":
        probed = get_gpus()
        on_close.append(probed.close)
        gpus = probed
    gpu_list: Sequence[GPU] = gpus if gpus is not None else []
    if rapl is None and is_host_leader and kind in ("auto", "rapl"):
        rapl = get_rapl_domains()
    interval_ms = config.sample_interval_ms
    try:
        parts, more_notes = _parts(
            kind, gpu_list, rapl, host, is_host_leader, config, estimator, own_pids, clock
        )
    except BaseException:
        for callback in on_close:
            callback()
        raise
    has_sampler = any(isinstance(p, NvmlBackend) for p in parts)
    sampler = (
        None
        if has_sampler
        else PowerSampler(gpu_list, interval_ms, clock, host=host, own_pids=own_pids)
    )
    return CompositeBackend(
        parts,
        name=kind,
        sampler=sampler,
        notes=notes + more_notes,
        carbon_intensity_g_per_kwh=intensity,
        carbon_intensity_source=source,
        on_close=on_close,
        unmeasured=(
            prometheus_unmeasured(config.prometheus, is_host_leader)
            if kind == "prometheus" and config.prometheus is not None
            else unmeasured_reasons(kind, len(gpu_list), is_host_leader, more_notes)
        ),
    )


def unmeasured_reasons(
    kind: str, num_gpus: int, is_host_leader: bool, notes: Sequence[MeasurementWarning]
) -> dict[str, str]:
    """Why this process's backend has no figure for a device kind (``gpu``, ``cpu``,
    ``dram``), for the kinds it knows it will not measure."""
    reasons: dict[str, str] = {}
    if kind == "rapl":
        reasons["gpu"] = "energy.backend rapl measures the CPU package and DRAM only"
    elif num_gpus == 0:
        reasons["gpu"] = "no GPU is visible to this process"
    if not is_host_leader:
        host = (
            "not measured by this process: the CPU package and DRAM are measured once per "
            "host, by its host leader (local rank 0)"
        )
        reasons.update(cpu=host, dram=host)
    elif kind == "nvml":
        reasons.update(cpu="energy.backend nvml measures GPUs only",
                       dram="energy.backend nvml measures GPUs only")
    elif any(n.code == "host_energy_unmeasured" for n in notes):
        why = "no readable RAPL counter and codecarbon is not installed"
        reasons.update(cpu=why, dram=why)
    return reasons


def _parts(
    kind: str,
    gpus: Sequence[GPU],
    rapl: RaplDomains | None,
    host: str,
    is_host_leader: bool,
    config: EnergyConfig,
    estimator: EstimatorFactory | None,
    own_pids: Iterable[int] | None,
    clock: Callable[[], float],
) -> tuple[list[EnergyBackend], list[MeasurementWarning]]:
    interval_ms = config.sample_interval_ms
    if kind in ("auto", "codecarbon"):
        return auto_parts(
            gpus=gpus,
            rapl=rapl,
            host=host,
            is_host_leader=is_host_leader,
            sample_interval_ms=interval_ms,
            country_iso_code=config.country_iso_code,
            region=config.region,
            estimator=estimator,
            own_pids=own_pids,
            clock=clock,
            use_rapl=kind == "auto",
        )
    if kind == "nvml":
        if len(gpus) == 0:
            raise EnergyTrackingError(NO_GPU_MESSAGE)
        nvml = NvmlBackend(
            gpus, host=host, sample_interval_ms=interval_ms, clock=clock, own_pids=own_pids
        )
        return [nvml], []
    if kind == "rapl":
        if not is_host_leader:
            return [], []
        if rapl is None or not rapl.measurable():
            raise EnergyTrackingError(NO_RAPL_MESSAGE)
        return [RaplBackend(rapl.measurable(), host=host, clock=clock)], []
    if kind == "zeus":
        return [ZeusBackend(gpus, host=host, include_host_domains=is_host_leader, clock=clock)], []
    if kind == "prometheus":
        # One counter for the whole run: read by the host leader only (counted once).
        assert config.prometheus is not None  # EnergyConfig requires it with this backend
        if not is_host_leader:
            return [], []
        return [PrometheusEnergyBackend(config.prometheus, host=host, clock=clock)], []
    raise EnergyTrackingError(f"energy.backend {kind!r} is not known")
