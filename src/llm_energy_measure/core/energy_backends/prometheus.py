"""Energy from a counter on a Prometheus endpoint (e.g. a DCGM exporter on the GPU host).

The window's energy is the increase of ``energy.prometheus.metric`` between a scrape at
``start`` and one at ``stop``, summed over the series whose labels include
``energy.prometheus.labels``, converted to joules from ``energy.prometheus.unit``. It is one
device figure (``device_id`` ``prometheus:<metric>{<labels>}``, scope ``host``: measure it
in one process). Its edges are as exact as the exporter's own updates: a DCGM exporter
refreshes every ``--collect-interval`` (30 s by default), so windows must be many such
periods long, and the idle baseline spans ``update_period_s`` when it is known.

Counter resets: each series is differenced on its own; a series whose value went down
(the exporter or driver restarted, the counter began again at 0) contributes its value
after the restart, the increase since the reset, as Prometheus' ``increase()`` does: a
lower bound, flagged by a ``counter_reset`` warning. Series present at only one edge are
left out, with a ``counter_series_changed`` warning.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from llm_energy_measure.config.models import PrometheusEnergyConfig
from llm_energy_measure.core.energy_backends.base import BaseEnergyBackend
from llm_energy_measure.core.serving.prometheus import (
    MetricsError,
    MetricsFetchError,
    Sample,
    scrape,
)
from llm_energy_measure.core.types import EnergyReading
from llm_energy_measure.domain import DeviceEnergy, MeasurementWarning
from llm_energy_measure.exceptions import EnergyTrackingError
from llm_energy_measure.resilience import retry

#: Joules per unit of ``energy.prometheus.unit``.
JOULES_PER_UNIT = {"J": 1.0, "mJ": 1e-3, "kJ": 1e3, "Wh": 3600.0, "kWh": 3.6e6}
#: Scrapes of one edge: attempts and first delay (s) of the backoff between them.
SCRAPE_ATTEMPTS = 3
SCRAPE_FIRST_DELAY_S = 0.2

Scrape = Callable[[str, float], list[Sample]]
_SeriesKey = tuple[tuple[str, str], ...]


def series_label(metric: str, labels: Mapping[str, str]) -> str:
    """``metric{k="v",...}`` with the labels sorted (just ``metric`` without labels)."""
    if not labels:
        return metric
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


def prometheus_unmeasured(
    config: PrometheusEnergyConfig, is_host_leader: bool = True
) -> dict[str, str]:
    """Why a run measured by ``config`` has no figure for a device kind (``gpu``, ``cpu``,
    ``dram``): the counter covers ``config.device_kind`` only, or the whole system."""
    if not is_host_leader:
        why = ("not measured by this process: the energy.prometheus counter is read once, by "
               "the host leader (local rank 0)")
        return {kind: why for kind in ("gpu", "cpu", "dram")}
    if config.device_kind == "system":
        why = (f"included in the whole-system figure of {config.metric} "
               "(energy.prometheus.device_kind system), not broken down")
    else:
        why = (f"energy.backend prometheus measures {config.metric} only "
               f"(energy.prometheus.device_kind {config.device_kind})")
    return {kind: why for kind in ("gpu", "cpu", "dram") if kind != config.device_kind}


class PrometheusEnergyBackend(BaseEnergyBackend):
    """Energy of the series of ``config.metric`` matching ``config.labels``, from their
    increase over the window (see the module docstring for resets and precision).

    ``host``: this machine (the reader; the exporter's address is in the device's name).
    ``scrape(url, timeout_s)`` returns a page's samples (tests inject counters they
    control). ``update_period_s``: how often the exporter refreshes the counter, when
    known; the idle baseline then spans several updates and short windows are flagged.
    """

    name = "prometheus"

    def __init__(
        self,
        config: PrometheusEnergyConfig,
        *,
        host: str,
        scrape: Scrape = scrape,
        update_period_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.host = host
        self.update_period_s = update_period_s
        self.device_id = f"prometheus:{series_label(config.metric, config.labels)}"
        self._scrape = scrape
        self._clock = clock
        self._sleep = sleep
        self._start: dict[_SeriesKey, float] | None = None
        self._t0 = 0.0

    # ------------------------------------------------------------------ reading

    def _read(self) -> dict[_SeriesKey, float]:
        """Value (in the config's unit) of every matching series, by its labels."""
        url, metric, wanted = self.config.url, self.config.metric, self.config.labels
        try:
            samples = retry(
                lambda: self._scrape(url, self.config.timeout_s),
                attempts=SCRAPE_ATTEMPTS, base_delay_s=SCRAPE_FIRST_DELAY_S,
                retry_on=(MetricsFetchError,), sleep=self._sleep,
            )
        except MetricsError as exc:
            raise EnergyTrackingError(f"energy.prometheus: {exc}") from exc
        named = [s for s in samples if s.name == metric]
        series = {
            tuple(sorted(s.labels.items())): s.value
            for s in named
            if all(s.labels.get(k) == v for k, v in wanted.items())
        }
        if not series:
            raise EnergyTrackingError(self._no_series_message(named))
        bad = [key for key, value in series.items() if not math.isfinite(value)]
        if bad:
            raise EnergyTrackingError(
                f"energy.prometheus: {series_label(metric, dict(bad[0]))} at {url} is "
                f"{series[bad[0]]}, not a finite energy counter"
            )
        return series

    def _no_series_message(self, named: Sequence[Sample]) -> str:
        metric, url = self.config.metric, self.config.url
        if not named:
            return (f"energy.prometheus: {url} has no series named {metric!r}; check "
                    "energy.prometheus.metric (the name as on the page, e.g. "
                    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION)")
        example = series_label(metric, named[0].labels)
        return (f"energy.prometheus: no series of {metric} at {url} has the labels "
                f"{dict(self.config.labels)} ({len(named)} series with other labels, e.g. "
                f"{example}); fix energy.prometheus.labels")

    # ------------------------------------------------------------------ window

    def start(self) -> None:
        if self._start is not None:
            raise EnergyTrackingError("Prometheus energy window already open: call stop() "
                                      "first")
        self._start = self._read()
        self._t0 = self._clock()

    def stop(self) -> EnergyReading:
        if self._start is None:
            raise EnergyTrackingError("Prometheus energy window was not started")
        start, self._start = self._start, None
        end = self._read()
        duration_s = max(0.0, self._clock() - self._t0)
        increase, warnings = self._increase(start, end)
        energy_j = increase * JOULES_PER_UNIT[self.config.unit]
        warnings += self._window_warnings(energy_j, duration_s)
        netloc = urlsplit(self.config.url).netloc
        device = DeviceEnergy(
            device_id=self.device_id,
            kind=self.config.device_kind,
            scope="host",
            host=self.host,
            name=f"{series_label(self.config.metric, self.config.labels)} at {netloc}",
            method="counter",
            estimated=False,
            source=self.name,
            energy_j=energy_j,
            duration_s=duration_s,
            mean_power_w=energy_j / duration_s if duration_s > 0 else None,
        )
        return EnergyReading(devices=[device], backend=self.name, warnings=warnings)

    def _increase(
        self, start: Mapping[_SeriesKey, float], end: Mapping[_SeriesKey, float]
    ) -> tuple[float, list[MeasurementWarning]]:
        """Summed increase of the series at both edges (in the config's unit), warnings."""
        metric = self.config.metric
        total = 0.0
        warnings: list[MeasurementWarning] = []
        for key in start.keys() & end.keys():
            before, after = start[key], end[key]
            if after >= before:
                total += after - before
                continue
            total += after
            warnings.append(MeasurementWarning(
                code="counter_reset",
                message=(
                    f"{series_label(metric, dict(key))} went down during the window "
                    f"({before:g} -> {after:g} {self.config.unit}): the counter restarted; "
                    "only the energy since the restart is counted (a lower bound)"
                ),
            ))
        changed = start.keys() ^ end.keys()
        if changed:
            names = ", ".join(sorted(series_label(metric, dict(k)) for k in changed))
            warnings.append(MeasurementWarning(
                code="counter_series_changed",
                message=(
                    f"series present at only one edge of the window are not counted: {names}"
                ),
            ))
        return total, warnings

    def _window_warnings(self, energy_j: float, duration_s: float) -> list[MeasurementWarning]:
        period_s = self.update_period_s
        if period_s is not None and duration_s < 10 * period_s:
            return [MeasurementWarning(
                code="short_window",
                message=(
                    f"the {duration_s:.3g} s window is under 10 updates of "
                    f"{self.config.metric} (every {period_s:g} s): its energy is off by up "
                    "to an update's worth at each edge"
                ),
            )]
        if energy_j == 0 and duration_s > 0:
            return [MeasurementWarning(
                code="counter_unchanged",
                message=(
                    f"{self.config.metric} did not change over the {duration_s:.3g} s window: "
                    "the exporter may update less often than that (a DCGM exporter every "
                    "--collect-interval, 30 s by default)"
                ),
            )]
        return []
