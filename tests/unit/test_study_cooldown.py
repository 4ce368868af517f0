"""Cool-down between study runs: fixed pause, then until the GPUs are back near idle."""

from __future__ import annotations

from collections.abc import Iterator

from llm_energy_measure.config.study import CooldownUntilIdleConfig
from llm_energy_measure.orchestration.study.cooldown import Cooldown, wait_until_idle


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds


def _reader(readings: list[dict[str, float]]):  # type: ignore[no-untyped-def]
    it: Iterator[dict[str, float]] = iter(readings)
    last: dict[str, dict[str, float]] = {}

    def read() -> dict[str, float]:
        last["v"] = next(it, last.get("v", {}))
        return last["v"]

    return read


SETTINGS = CooldownUntilIdleConfig(enabled=True, temperature_margin_c=3, timeout_s=10,
                                   poll_interval_s=2)


def test_waits_until_every_gpu_is_within_the_margin() -> None:
    clock = FakeClock()
    read = _reader([{"A": 60, "B": 40}, {"A": 50, "B": 40}, {"A": 43, "B": 44}, {"A": 43,
                                                                               "B": 43}])
    reached, waited_s = wait_until_idle(read, {"A": 40, "B": 40}, SETTINGS, sleep=clock.sleep,
                                        clock=clock)
    # 43 <= 40 + 3 for both only at the fourth reading (B was 44 at the third).
    assert reached is True and clock.sleeps == [2, 2, 2] and waited_s == 6


def test_gives_up_at_the_timeout() -> None:
    clock = FakeClock()
    settings = CooldownUntilIdleConfig(enabled=True, temperature_margin_c=3, timeout_s=5,
                                       poll_interval_s=2)
    reached, waited_s = wait_until_idle(_reader([{"A": 80}]), {"A": 40}, settings,
                                        sleep=clock.sleep, clock=clock)
    assert reached is False and clock.sleeps == [2, 2, 1] and waited_s == 5


def test_cooldown_pauses_then_waits_for_idle_measured_at_start() -> None:
    clock = FakeClock()
    read = _reader([{"A": 41.0}, {"A": 70.0}, {"A": 44.0}])
    cooldown = Cooldown(1.5, SETTINGS, read, sleep=clock.sleep, clock=clock)
    cooldown.measure_idle()
    assert cooldown.idle_c == {"A": 41.0}
    assert cooldown.wait() == 3.5  # 1.5 s fixed, then one 2 s poll until 44 <= 41 + 3
    assert clock.sleeps == [1.5, 2]


def test_without_a_gpu_only_the_fixed_pause_remains() -> None:
    clock = FakeClock()
    cooldown = Cooldown(2.0, SETTINGS, None, sleep=clock.sleep, clock=clock)
    cooldown.measure_idle()
    assert cooldown.idle_c is None
    assert cooldown.wait() == 2.0 and clock.sleeps == [2.0]


def test_disabled_until_idle_never_reads_temperatures() -> None:
    def read() -> dict[str, float]:
        raise AssertionError("must not read")

    clock = FakeClock()
    cooldown = Cooldown(0.0, CooldownUntilIdleConfig(enabled=False), read, sleep=clock.sleep,
                        clock=clock)
    cooldown.measure_idle()
    assert cooldown.wait() == 0.0 and clock.sleeps == []
