"""Clocks for tests: one the test advances by hand, and polling until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable


class StepClock:
    """A clock the test advances by hand (seconds)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def wait_until(predicate: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    """Poll ``predicate`` every 10 ms of real time for up to ``timeout_s``; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
