"""Pauses between the runs of a study: a fixed sleep, then optionally until the GPUs are idle.

``cooldown_until_idle`` compares every GPU's temperature with the idle temperature measured
when the study started, and waits until each is within ``temperature_margin_c`` of it, for at
most ``timeout_s``. Temperatures come from the device layer (``core.devices.get_gpus``); on a
host without a readable NVIDIA GPU the wait is skipped with a logged note. Nothing here
changes any device setting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from loguru import logger

from llm_energy_measure.config.study import CooldownUntilIdleConfig

#: Reads every GPU's temperature: GPU UUID -> degrees Celsius.
TemperatureReader = Callable[[], dict[str, float]]


@contextmanager
def gpu_temperature_reader() -> Iterator[TemperatureReader | None]:
    """A reader of the visible GPUs' temperatures, or None when there is no GPU to read."""
    from llm_energy_measure.core.devices import get_gpus

    gpus = get_gpus()
    try:
        if len(gpus) == 0:
            yield None
        else:
            yield lambda: {gpu.uuid: gpu.temperature_c() for gpu in gpus}
    finally:
        gpus.close()


def wait_until_idle(
    read_c: TemperatureReader,
    idle_c: dict[str, float],
    settings: CooldownUntilIdleConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bool, float]:
    """Poll until every GPU of ``idle_c`` is at most ``temperature_margin_c`` above its idle
    temperature, or ``timeout_s`` has passed. Returns (reached, seconds waited)."""
    start_s = clock()
    while True:
        now_c = read_c()
        hot = {uuid: now_c[uuid] for uuid in idle_c
               if uuid in now_c and now_c[uuid] > idle_c[uuid] + settings.temperature_margin_c}
        waited_s = clock() - start_s
        if not hot:
            return True, waited_s
        if waited_s >= settings.timeout_s:
            logger.warning(
                "cool-down: GPU(s) still above idle + {:g} C after {:g} s ({}); continuing",
                settings.temperature_margin_c, settings.timeout_s,
                ", ".join(f"{u}: {t:.0f} C (idle {idle_c[u]:.0f} C)" for u, t in hot.items()),
            )
            return False, waited_s
        sleep(min(settings.poll_interval_s, max(settings.timeout_s - waited_s, 0.0)))


class Cooldown:
    """The pause before every run but the first: ``cooldown_s``, then until idle if asked."""

    def __init__(
        self,
        cooldown_s: float,
        until_idle: CooldownUntilIdleConfig,
        read_c: TemperatureReader | None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cooldown_s = cooldown_s
        self.until_idle = until_idle
        self._read_c = read_c
        self._sleep = sleep
        self._clock = clock
        self.idle_c: dict[str, float] | None = None
        if until_idle.enabled and read_c is None:
            logger.info("cooldown_until_idle: no readable GPU on this host; skipped")

    def measure_idle(self) -> None:
        """Record the idle temperatures (call before the first run)."""
        if self.until_idle.enabled and self._read_c is not None:
            self.idle_c = self._read_c()
            logger.info("cool-down: idle GPU temperatures {}", self.idle_c)

    def wait(self) -> float:
        """Pause; returns the seconds spent."""
        start_s = self._clock()
        if self.cooldown_s > 0:
            self._sleep(self.cooldown_s)
        if self.idle_c and self._read_c is not None:
            wait_until_idle(self._read_c, self.idle_c, self.until_idle, sleep=self._sleep,
                            clock=self._clock)
        return self._clock() - start_s
