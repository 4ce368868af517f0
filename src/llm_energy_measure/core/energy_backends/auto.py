"""Automatic choice of the best available method for each energy domain.

GPUs: NVML (counter, else sampled power). CPU package and DRAM: RAPL where readable, else
codecarbon's estimate; an estimate is flagged ``estimated_energy`` downstream. Host domains
are measured only by the host leader (local rank 0), so each is counted once per host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from llm_energy_measure.core.devices import (
    GPU,
    DeviceError,
    DevicePermissionError,
    RaplDomain,
    RaplDomains,
)
from llm_energy_measure.core.energy_backends.codecarbon import (
    CodeCarbonBackend,
    EstimateKind,
    codecarbon_available,
)
from llm_energy_measure.core.energy_backends.nvml import NvmlBackend
from llm_energy_measure.core.energy_backends.rapl import RaplBackend
from llm_energy_measure.domain import MeasurementWarning
from llm_energy_measure.protocols import EnergyBackend

#: Builds the CPU/RAM estimator for the kinds that have no counter (a seam for tests).
EstimatorFactory = Callable[[Sequence[EstimateKind]], EnergyBackend]


def readable_rapl(
    rapl: RaplDomains | None,
) -> tuple[list[RaplDomain], DevicePermissionError | None]:
    """Package/DRAM zones this process can read, and the permission error if some could not
    be read (None otherwise)."""
    readable: list[RaplDomain] = []
    denied: DevicePermissionError | None = None
    for domain in rapl.measurable() if rapl is not None else []:
        try:
            domain.energy_uj()
        except DevicePermissionError as exc:
            denied = denied or exc
            continue
        except DeviceError:
            continue
        readable.append(domain)
    return readable, denied


def host_parts(
    *,
    host: str,
    rapl: RaplDomains | None,
    use_rapl: bool,
    sample_interval_ms: float,
    country_iso_code: str | None,
    region: str | None,
    estimator: EstimatorFactory | None,
    clock: Callable[[], float],
) -> tuple[list[EnergyBackend], list[MeasurementWarning]]:
    """Backends for the CPU package and DRAM of this host, estimator first.

    With ``use_rapl`` readable RAPL zones are used and only the kinds without one are
    estimated; otherwise both CPU and RAM are estimated.
    """
    parts: list[EnergyBackend] = []
    notes: list[MeasurementWarning] = []
    readable: list[RaplDomain] = []
    if use_rapl:
        readable, denied = readable_rapl(rapl)
        if denied is not None:
            notes.append(
                MeasurementWarning(code="rapl_unreadable", message=str(denied), severity="info")
            )
    kinds = {d.kind for d in readable}
    missing: list[EstimateKind] = []
    if "cpu" not in kinds:
        missing.append("cpu")
    if "dram" not in kinds:
        missing.append("ram")
    if missing:
        if estimator is not None:
            parts.append(estimator(missing))
        elif codecarbon_available():
            parts.append(
                CodeCarbonBackend(
                    host=host,
                    include=missing,
                    sample_interval_ms=sample_interval_ms,
                    country_iso_code=country_iso_code,
                    region=region,
                    clock=clock,
                )
            )
        else:
            notes.append(
                MeasurementWarning(
                    code="host_energy_unmeasured",
                    message=(
                        f"{'/'.join(k.upper() for k in missing)} energy is not measured: no "
                        "readable RAPL counter and codecarbon is not installed "
                        '(pip install "llm-energy-measure[codecarbon]")'
                    ),
                )
            )
    if readable:
        parts.append(RaplBackend(readable, host=host, clock=clock))
    return parts, notes


def auto_parts(
    *,
    gpus: Sequence[GPU],
    rapl: RaplDomains | None,
    host: str,
    is_host_leader: bool,
    sample_interval_ms: float,
    country_iso_code: str | None = None,
    region: str | None = None,
    estimator: EstimatorFactory | None = None,
    own_pids: Iterable[int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    use_rapl: bool = True,
) -> tuple[list[EnergyBackend], list[MeasurementWarning]]:
    """Parts of the ``auto`` backend, ordered estimator, NVML, RAPL (see CompositeBackend).

    ``use_rapl=False`` (the ``codecarbon`` backend) leaves CPU and RAM to the estimator.
    """
    parts: list[EnergyBackend] = []
    notes: list[MeasurementWarning] = []
    if is_host_leader:
        parts, notes = host_parts(
            host=host,
            rapl=rapl if use_rapl else None,
            use_rapl=use_rapl,
            sample_interval_ms=sample_interval_ms,
            country_iso_code=country_iso_code,
            region=region,
            estimator=estimator,
            clock=clock,
        )
    if len(gpus) > 0:
        nvml = NvmlBackend(
            gpus, host=host, sample_interval_ms=sample_interval_ms, clock=clock, own_pids=own_pids
        )
        # After the estimator, before RAPL: counters read last at start, first at stop.
        position = next((i for i, p in enumerate(parts) if isinstance(p, RaplBackend)), len(parts))
        parts.insert(position, nvml)
    return parts, notes
