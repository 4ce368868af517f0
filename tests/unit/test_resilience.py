"""Retry backoff and circuit breaker, driven by a fake sleep and a fake clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llm_energy_measure.exceptions import CircuitOpenError, ConfigurationError, RetryableError
from llm_energy_measure.resilience import (
    CircuitBreaker,
    CircuitState,
    backoff_delay_s,
    retry,
    retrying,
)


class FakeSleep:
    def __init__(self) -> None:
        self.delays_s: list[float] = []

    def __call__(self, delay_s: float) -> None:
        self.delays_s.append(delay_s)


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def failing(times: int, error: Exception, value: str = "ok") -> tuple[Callable[[], str], list[int]]:
    """A function that raises ``error`` on its first ``times`` calls, then returns ``value``."""
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return value

    return fn, calls


# ----------------------------------------------------------------------------- retry


def test_exact_delays_without_jitter_and_cap() -> None:
    sleep = FakeSleep()
    fn, calls = failing(5, RetryableError("flaky"))
    result = retry(fn, attempts=6, base_delay_s=0.5, max_delay_s=3.0, jitter=0.0, sleep=sleep)
    assert result == "ok"
    assert len(calls) == 6
    # 0.5 * 2**k for k = 0..4, capped at 3.0
    assert sleep.delays_s == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_last_error_reraised_after_all_attempts() -> None:
    sleep = FakeSleep()
    errors = [RetryableError(f"e{i}") for i in range(3)]
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        raise errors[len(calls) - 1]

    with pytest.raises(RetryableError) as info:
        retry(fn, attempts=3, base_delay_s=1.0, jitter=0.0, sleep=sleep)
    assert info.value is errors[2]
    assert len(calls) == 3
    assert sleep.delays_s == [1.0, 2.0]  # no sleep after the final attempt


def test_non_retryable_error_propagates_immediately() -> None:
    sleep = FakeSleep()
    fn, calls = failing(1, ConfigurationError("bad key"))
    with pytest.raises(ConfigurationError, match="bad key"):
        retry(fn, attempts=5, sleep=sleep)
    assert len(calls) == 1
    assert sleep.delays_s == []


def test_custom_retry_on() -> None:
    sleep = FakeSleep()
    fn, calls = failing(2, TimeoutError("slow"))
    assert retry(fn, retry_on=(TimeoutError,), jitter=0.0, base_delay_s=0.1, sleep=sleep) == "ok"
    assert len(calls) == 3
    assert sleep.delays_s == pytest.approx([0.1, 0.2])


def test_jitter_bounds_extremes_and_midpoint() -> None:
    # rng()=0 -> factor 1 - jitter; rng()=0.5 -> factor 1; rng()->1 -> factor 1 + jitter
    cases = [(0.0, [0.9, 1.8, 3.6]), (0.5, [1.0, 2.0, 4.0]), (0.999999, [1.1, 2.2, 4.4])]
    for u, expected in cases:
        sleep = FakeSleep()
        fn, _ = failing(3, RetryableError("x"))
        retry(fn, attempts=4, base_delay_s=1.0, jitter=0.1, sleep=sleep, rng=lambda u=u: u)
        assert sleep.delays_s == pytest.approx(expected, rel=1e-5)


def test_jitter_with_real_random_stays_in_bounds() -> None:
    sleep = FakeSleep()
    fn, _ = failing(7, RetryableError("x"))
    retry(fn, attempts=8, base_delay_s=0.5, max_delay_s=10.0, jitter=0.25, sleep=sleep)
    for k, delay_s in enumerate(sleep.delays_s):
        nominal_s = min(0.5 * 2**k, 10.0)
        assert nominal_s * 0.75 <= delay_s <= min(nominal_s * 1.25, 10.0)


def test_jittered_delay_never_exceeds_max() -> None:
    assert backoff_delay_s(10, base_delay_s=1, max_delay_s=5, jitter=0.5, rng=lambda: 0.99) == 5.0
    assert backoff_delay_s(10, base_delay_s=1, max_delay_s=5, jitter=0.5, rng=lambda: 0.0) == 2.5


def test_on_retry_receives_attempt_error_and_delay() -> None:
    seen: list[tuple[int, str, float]] = []
    fn, _ = failing(2, RetryableError("boom"))
    retry(
        fn,
        base_delay_s=2.0,
        jitter=0.0,
        sleep=FakeSleep(),
        on_retry=lambda n, exc, d: seen.append((n, str(exc), d)),
    )
    assert seen == [(1, "boom", 2.0), (2, "boom", 4.0)]


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"jitter": 1.5}, {"jitter": -0.1}, {"base_delay_s": -1.0}]
)
def test_invalid_arguments_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        retry(lambda: None, **kwargs)  # type: ignore[arg-type]


def test_retrying_decorator_passes_arguments_and_retries() -> None:
    sleep = FakeSleep()
    calls: list[tuple[int, int]] = []

    @retrying(attempts=3, base_delay_s=0.25, jitter=0.0, sleep=sleep)
    def add(a: int, b: int = 0) -> int:
        calls.append((a, b))
        if len(calls) < 3:
            raise RetryableError("again")
        return a + b

    assert add(2, b=3) == 5
    assert calls == [(2, 3)] * 3
    assert sleep.delays_s == [0.25, 0.5]
    assert add.__name__ == "add"


def test_single_attempt_never_sleeps() -> None:
    sleep = FakeSleep()
    fn, calls = failing(1, RetryableError("x"))
    with pytest.raises(RetryableError):
        retry(fn, attempts=1, sleep=sleep)
    assert len(calls) == 1 and sleep.delays_s == []


# ----------------------------------------------------------------------------- circuit breaker


def boom() -> None:
    raise RuntimeError("down")


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=10.0, clock=clock)
    for expected in (1, 2):
        with pytest.raises(RuntimeError):
            breaker.call(boom)
        assert breaker.state is CircuitState.CLOSED
        assert breaker.consecutive_failures == expected
    with pytest.raises(RuntimeError):
        breaker.call(boom)
    assert breaker.state is CircuitState.OPEN

    called: list[int] = []
    with pytest.raises(CircuitOpenError, match=r"next trial in 10\.0 s"):
        breaker.call(lambda: called.append(1))
    assert called == []  # refused without calling


def test_success_resets_consecutive_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    with pytest.raises(RuntimeError):
        breaker.call(boom)
    assert breaker.call(lambda: 7) == 7
    with pytest.raises(RuntimeError):
        breaker.call(boom)
    assert breaker.state is CircuitState.CLOSED


def test_half_open_after_timeout_then_closed_on_success() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=60.0, clock=clock)
    with pytest.raises(RuntimeError):
        breaker.call(boom)
    clock.advance(59.9)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.1)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(lambda: "trial ok") == "trial ok"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0


def test_half_open_failure_reopens_with_fresh_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=30.0, clock=clock)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            breaker.call(boom)
    clock.advance(30.0)
    assert breaker.state is CircuitState.HALF_OPEN
    with pytest.raises(RuntimeError):
        breaker.call(boom)  # one failed trial is enough, threshold does not apply
    assert breaker.state is CircuitState.OPEN
    clock.advance(29.0)
    assert breaker.state is CircuitState.OPEN
    clock.advance(1.0)
    assert breaker.state is CircuitState.HALF_OPEN


def test_half_open_admits_only_one_trial_at_a_time() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5.0, clock=clock)
    with pytest.raises(RuntimeError):
        breaker.call(boom)
    clock.advance(5.0)
    inner: list[str] = []

    def trial() -> str:
        # A second caller arriving while the trial runs is refused.
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: inner.append("second"))
        return "first"

    assert breaker.call(trial) == "first"
    assert inner == []
    assert breaker.state is CircuitState.CLOSED


def test_reset_closes_breaker() -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=FakeClock())
    with pytest.raises(RuntimeError):
        breaker.call(boom)
    assert breaker.state is CircuitState.OPEN
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(lambda: 1) == 1


def test_breaker_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(reset_timeout_s=-1)
