"""CodeCarbon: the estimate of last resort for CPU/RAM energy, and grid carbon intensity.

codecarbon is imported inside the functions (its import and first hardware probe are slow).
Its CPU figure comes from a TDP x load model (or its own RAPL reading) and its RAM figure
from a fixed power model, so every figure it gives is recorded as ``estimated=True``,
method ``estimate``. No file is written: the tracker runs with no output method.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from llm_energy_measure.core.energy_backends.base import BaseEnergyBackend
from llm_energy_measure.core.energy_backends.quiet import captured_native_output
from llm_energy_measure.core.types import EnergyReading
from llm_energy_measure.domain import DeviceEnergy
from llm_energy_measure.exceptions import (
    ConfigurationError,
    EnergyTrackingError,
    MissingExtraError,
)

#: Country assumed for carbon intensity when energy.country_iso_code is unset.
DEFAULT_COUNTRY_ISO_CODE = "USA"
#: codecarbon's estimate is a TDP x load model: polling it faster than once a second adds no
#: information, and its Python thread then competes with the measured run for the GIL and the
#: cores (on a 2-core machine it cost a few percent of the throughput at 0.1 s).
MIN_MEASURE_POWER_S = 1.0
#: codecarbon updates its figures every measure_power_s from a timer thread, and measures once
#: more when stopped unless its last update is under 0.05 s old (that tail is then lost). A
#: stop that coincides with a scheduled update runs concurrently with it and both count the
#: last interval (a 1.00 s window over a 1 s poll read RAM at 40 W instead of 20 W). ``stop``
#: therefore never stops the tracker within this many seconds of an update.
UPDATE_GUARD_S = 0.1

_J_PER_KWH = 3.6e6
#: Countries for which codecarbon ships sub-national data.
_REGIONAL_COUNTRIES = frozenset({"USA", "CAN", "CHN", "SWE", "NOR", "FIN"})

EstimateKind = Literal["cpu", "ram"]

_warm_lock = threading.Lock()
_warmed = False


def codecarbon_available() -> bool:
    """Whether the codecarbon package is installed (without importing it)."""
    return importlib.util.find_spec("codecarbon") is not None


def _require_codecarbon(feature: str) -> None:
    if not codecarbon_available():
        raise MissingExtraError("codecarbon", "codecarbon", feature)


def _quiet_codecarbon_logger() -> None:
    logging.getLogger("codecarbon").setLevel(logging.ERROR)


def carbon_intensity_g_per_kwh(
    country_iso_code: str | None, region: str | None = None
) -> tuple[float, str]:
    """Grid carbon intensity (gCO2eq/kWh) from codecarbon's bundled data, offline.

    ``country_iso_code`` is ISO 3166-1 alpha-3 (None: USA, and the source says it was a
    default). ``region`` (a US state, Canadian province, Chinese province or Nordic bidding
    zone) uses codecarbon's regional data where it has some. Returns (value, source).
    Raises ConfigurationError for a country or region codecarbon does not know, and
    MissingExtraError when codecarbon is not installed.
    """
    _require_codecarbon("Carbon intensity by country")
    _quiet_codecarbon_logger()
    with captured_native_output("codecarbon import"):
        import codecarbon
        from codecarbon.core.emissions import Emissions
        from codecarbon.core.units import Energy
        from codecarbon.external.geography import GeoMetadata
        from codecarbon.input import DataSource

    code = (country_iso_code or DEFAULT_COUNTRY_ISO_CODE).upper()
    data = DataSource()
    if code not in data.get_global_energy_mix_data():
        raise ConfigurationError(
            f"energy.country_iso_code {code!r} is not in codecarbon's data: use an ISO 3166-1 "
            "alpha-3 code such as USA, FRA or DEU, or set energy.carbon_intensity_g_per_kwh"
        )
    version = getattr(codecarbon, "__version__", "?")
    emissions = Emissions(data)
    one_kwh = Energy(1.0)
    defaulted = "" if country_iso_code else " (default: energy.country_iso_code unset)"
    if region:
        if code not in _REGIONAL_COUNTRIES:
            raise ConfigurationError(
                f"energy.region {region!r}: codecarbon has regional data only for "
                f"{', '.join(sorted(_REGIONAL_COUNTRIES))}; remove energy.region or set "
                "energy.carbon_intensity_g_per_kwh"
            )
        try:
            kg = emissions.get_region_emissions(one_kwh, GeoMetadata(code, region=region))
        except Exception as exc:
            raise ConfigurationError(
                f"energy.region {region!r} is not in codecarbon's data for {code} ({exc}); "
                "use a region name codecarbon knows or set energy.carbon_intensity_g_per_kwh"
            ) from exc
        source = f"codecarbon {version} bundled data, {code}/{region.lower()}{defaulted}"
    else:
        kg = emissions.get_country_emissions(one_kwh, GeoMetadata(code))
        source = f"codecarbon {version} bundled data, {code}{defaulted}"
    return float(kg) * 1000.0, source


def _warm_up(make_tracker: Callable[[], Any]) -> None:
    """codecarbon probes the hardware on a process's first start (~1-2 s): do it once,
    outside any measured window."""
    global _warmed
    with _warm_lock:
        if _warmed:
            return
        tracker = make_tracker()
        with captured_native_output("codecarbon"):
            tracker.start()
            tracker.stop()
        _warmed = True


class CodeCarbonBackend(BaseEnergyBackend):
    """CPU and/or RAM energy estimated by codecarbon's OfflineEmissionsTracker.

    Device ids ``<host>:estimate:cpu`` (kind ``cpu``) and ``<host>:estimate:ram`` (kind
    ``dram``), scope ``host``, ``estimated=True``. codecarbon's GPU figure is ignored: GPUs
    are measured per UUID by the NVML backend. ``tracker_factory`` builds a tracker with
    start()/stop() and ``final_emissions_data`` (a seam for tests); ``sleep`` waits (tests
    pass a fake clock's advance).

    The tracker updates every ``measure_power_s`` (``update_period_s``): the idle baseline
    then spans several whole updates and a half (see ``base.baseline_window_s``), and a
    window never closes within ``UPDATE_GUARD_S`` of an update (it is extended past it). The
    device's ``duration_s`` is the tracker's own span (``final_emissions_data.duration``), the
    time its energy covers, else this backend's clock between start and stop.
    """

    name = "codecarbon"

    def __init__(
        self,
        *,
        host: str,
        include: Sequence[EstimateKind] = ("cpu", "ram"),
        sample_interval_ms: float = 1000.0,
        country_iso_code: str | None = None,
        region: str | None = None,
        tracker_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not include:
            raise ValueError("include must name cpu and/or ram")
        if tracker_factory is None:
            _require_codecarbon("The codecarbon energy backend")
        self.host = host
        self.include = tuple(include)
        self.measure_power_s = max(MIN_MEASURE_POWER_S, sample_interval_ms / 1000.0)
        self.update_period_s = self.measure_power_s
        self.idle = sleep
        self._country = country_iso_code or DEFAULT_COUNTRY_ISO_CODE
        self._region = region
        self._real_tracker = tracker_factory is None
        self._factory = tracker_factory or self._make_tracker
        self._clock = clock
        self._tracker: Any = None
        self._t0 = 0.0

    def _make_tracker(self) -> Any:
        with captured_native_output("codecarbon"):
            _quiet_codecarbon_logger()
            from codecarbon import OfflineEmissionsTracker

            return OfflineEmissionsTracker(
            country_iso_code=self._country,
            region=self._region,
                output_methods=[],
                log_level="error",
                measure_power_secs=self.measure_power_s,
                tracking_mode="machine",
                allow_multiple_runs=True,
                pue=1.0,
            )

    def start(self) -> None:
        if self._tracker is not None:
            raise EnergyTrackingError("codecarbon window already open: call stop() first")
        if self._real_tracker:
            _warm_up(self._factory)
        tracker = self._factory()
        tracker.start()
        self._tracker = tracker
        self._t0 = self._clock()

    def stop(self) -> EnergyReading:
        tracker = self._tracker
        if tracker is None:
            raise EnergyTrackingError("codecarbon window was not started")
        self._tracker = None
        self._wait_clear_of_update()
        t1 = self._clock()
        tracker.stop()
        data = getattr(tracker, "final_emissions_data", None)
        if data is None:
            # codecarbon swallows its own exceptions; no data means it failed silently.
            raise EnergyTrackingError(
                "codecarbon returned no energy data for the window (run with --verbose to "
                "see its log); use energy.backend none to run without energy"
            )
        # The tracker's own span (its start to its final update) is what its energy covers.
        own_s = getattr(data, "duration", None)
        duration_s = float(own_s) if isinstance(own_s, (int, float)) and own_s > 0 else (
            max(0.0, t1 - self._t0)
        )
        hardware = ", ".join(str(h) for h in getattr(tracker, "_conf", {}).get("hardware", []))
        label = f"codecarbon estimate ({hardware})" if hardware else "codecarbon estimate"
        figures: dict[EstimateKind, float] = {
            "cpu": float(data.cpu_energy) * _J_PER_KWH,
            "ram": float(data.ram_energy) * _J_PER_KWH,
        }
        devices = [
            DeviceEnergy(
                device_id=f"{self.host}:estimate:{kind}",
                kind="cpu" if kind == "cpu" else "dram",
                scope="host",
                host=self.host,
                name=label,
                method="estimate",
                estimated=True,
                source=self.name,
                sampling_interval_ms=self.measure_power_s * 1000.0,
                energy_j=figures[kind],
                duration_s=duration_s,
                mean_power_w=figures[kind] / duration_s if duration_s > 0 else None,
            )
            for kind in self.include
        ]
        return EnergyReading(devices=devices, backend=self.name)

    def _wait_clear_of_update(self) -> None:
        """Wait until no scheduled update of the tracker is within UPDATE_GUARD_S of now.

        Updates fall every ``measure_power_s`` after the tracker started (the first one a
        full period in).
        """
        period = self.measure_power_s
        elapsed = self._clock() - self._t0
        if elapsed < period - UPDATE_GUARD_S:
            return
        phase = elapsed % period
        if phase < UPDATE_GUARD_S:
            self.idle(UPDATE_GUARD_S - phase)
        elif phase > period - UPDATE_GUARD_S:
            self.idle(period - phase + UPDATE_GUARD_S)

    def close(self) -> None:
        if self._tracker is not None:
            try:
                self._tracker.stop()
            finally:
                self._tracker = None
