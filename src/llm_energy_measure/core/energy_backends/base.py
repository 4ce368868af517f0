"""Shared base of the energy backends (see protocols.EnergyBackend)."""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable

from llm_energy_measure.core.types import EnergyReading

#: An idle baseline spans at least this many updates of the backend's slowest source.
MIN_BASELINE_UPDATES = 3


def baseline_power_from_reading(reading: EnergyReading) -> dict[str, float]:
    """Mean power per device id (W) over a reading: energy_j / duration_s.

    Devices with a zero-length window are left out.
    """
    return {
        device.device_id: device.energy_j / device.duration_s
        for device in reading.devices
        if device.duration_s > 0
    }


def baseline_window_s(requested_s: float, update_period_s: float | None) -> float:
    """Length (s) of the idle-baseline window for a backend updating every ``update_period_s``.

    Without a period (counters read on demand) the requested length. Otherwise at least
    ``requested_s`` and ``MIN_BASELINE_UPDATES`` periods, rounded to whole periods plus half
    of one, so that neither edge falls on an update of a poller started with the window: a
    window of exactly one poll period read codecarbon's update twice and doubled the baseline,
    and the +-1 update of quantisation weighs at most 1 / 3.5 of the window.
    """
    if update_period_s is None or update_period_s <= 0:
        return requested_s
    periods = max(MIN_BASELINE_UPDATES, math.ceil(requested_s / update_period_s - 1e-9))
    return (periods + 0.5) * update_period_s


class BaseEnergyBackend(abc.ABC):
    """A backend measures energy between ``start`` and ``stop``.

    The idle baseline is measured as an ordinary window of idling, so it uses the same method
    (counter, sampled power, estimate) as the run itself, over ``baseline_window_s``.
    """

    name: str = "base"
    #: Seconds between updates of the figures this backend reads (a poller's period, a
    #: counter's refresh); None when they are read on demand.
    update_period_s: float | None = None
    #: How the backend waits while idling (tests replace it with a fake clock's advance).
    idle: Callable[[float], None] = time.sleep
    #: Length (s) of the last idle-baseline window, once one was measured.
    last_baseline_window_s: float | None = None

    def measure_baseline(self, duration_s: float) -> dict[str, float]:
        """Idle power per device id in watts, measured over at least ``duration_s`` seconds.

        The window is ``baseline_window_s(duration_s, self.update_period_s)`` long (recorded
        in ``self.last_baseline_window_s``). Call it while nothing else runs on the devices
        (before the measured window).
        """
        if duration_s <= 0:
            raise ValueError(f"baseline duration_s must be > 0, got {duration_s}")
        window_s = baseline_window_s(duration_s, self.update_period_s)
        self.start()
        try:
            self.idle(window_s)
        finally:
            reading = self.stop()
        self.last_baseline_window_s = window_s
        return baseline_power_from_reading(reading)

    @abc.abstractmethod
    def start(self) -> None:
        """Open a window: read counters / start sampling now."""

    @abc.abstractmethod
    def stop(self) -> EnergyReading:
        """Close the window and return the energy of each device over it."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources; safe to call twice."""
