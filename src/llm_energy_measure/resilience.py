"""Retry with exponential backoff, and a circuit breaker, for transient failures.

Only errors the caller declares transient are retried (``RetryableError`` by default); every
other error propagates at once. Sleep, random source and clock are injectable so tests run
without waiting.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import ParamSpec, TypeVar

from loguru import logger

from llm_energy_measure.exceptions import CircuitOpenError, RetryableError

T = TypeVar("T")
P = ParamSpec("P")

#: Called before each wait as ``on_retry(failed_attempt_number, error, delay_s)``.
OnRetry = Callable[[int, BaseException, float], None]


def backoff_delay_s(
    retry_index: int,
    *,
    base_delay_s: float,
    max_delay_s: float,
    jitter: float,
    rng: Callable[[], float],
) -> float:
    """Delay in seconds before retry number ``retry_index`` (0 = after the first failure).

    ``min(base_delay_s * 2**retry_index, max_delay_s)`` scaled by a uniform factor in
    ``[1 - jitter, 1 + jitter]`` (``rng()`` in [0, 1) picks it), then clamped to
    ``[0, max_delay_s]``: the result never exceeds ``max_delay_s``.
    """
    nominal_s = min(base_delay_s * (2.0**retry_index), max_delay_s)
    factor = 1.0 + jitter * (2.0 * rng() - 1.0)
    return min(max(nominal_s * factor, 0.0), max_delay_s)


def _check_retry_args(
    attempts: int, base_delay_s: float, max_delay_s: float, jitter: float
) -> None:
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    if base_delay_s < 0 or max_delay_s < 0:
        raise ValueError("base_delay_s and max_delay_s must be >= 0")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter is a fraction in [0, 1], got {jitter}")


def retry(
    fn: Callable[[], T],
    *,
    attempts: int = 3,
    base_delay_s: float = 0.5,
    max_delay_s: float = 30.0,
    jitter: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (RetryableError,),
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    on_retry: OnRetry | None = None,
) -> T:
    """Call ``fn()`` up to ``attempts`` times, sleeping with exponential backoff in between.

    Errors that are instances of ``retry_on`` are retried (see ``backoff_delay_s`` for the
    delays); after the last attempt the last such error is re-raised unchanged. Any other error
    propagates immediately without a retry.
    """
    _check_retry_args(attempts, base_delay_s, max_delay_s, jitter)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except retry_on as exc:
            if attempt == attempts:
                raise
            delay_s = backoff_delay_s(
                attempt - 1,
                base_delay_s=base_delay_s,
                max_delay_s=max_delay_s,
                jitter=jitter,
                rng=rng,
            )
            logger.debug(
                "attempt {}/{} failed ({}); retrying in {:.3f} s", attempt, attempts, exc, delay_s
            )
            if on_retry is not None:
                on_retry(attempt, exc, delay_s)
            sleep(delay_s)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def retrying(
    *,
    attempts: int = 3,
    base_delay_s: float = 0.5,
    max_delay_s: float = 30.0,
    jitter: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (RetryableError,),
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    on_retry: OnRetry | None = None,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator form of ``retry``: ``@retrying(attempts=5)`` retries every call of the function."""
    _check_retry_args(attempts, base_delay_s, max_delay_s, jitter)

    def decorate(func: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return retry(
                lambda: func(*args, **kwargs),
                attempts=attempts,
                base_delay_s=base_delay_s,
                max_delay_s=max_delay_s,
                jitter=jitter,
                retry_on=retry_on,
                sleep=sleep,
                rng=rng,
                on_retry=on_retry,
            )

        return wrapper

    return decorate


class CircuitState(str, Enum):
    """State of a ``CircuitBreaker``."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Refuse calls to a failing dependency until it had ``reset_timeout_s`` to recover.

    closed --(``failure_threshold`` consecutive failures)--> open --(``reset_timeout_s``
    elapsed on ``clock``)--> half-open: exactly one trial call goes through (others are
    refused while it runs) --success--> closed, --failure--> open again with a fresh timeout.
    Any ``Exception`` raised by the wrapped call counts as a failure and is re-raised.
    Thread-safe.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if reset_timeout_s < 0:
            raise ValueError(f"reset_timeout_s must be >= 0, got {reset_timeout_s}")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at_s: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        """Current state; an open breaker whose timeout has elapsed reports HALF_OPEN."""
        with self._lock:
            return self._state_locked()

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success (or since the breaker was last closed)."""
        return self._failures

    def _state_locked(self) -> CircuitState:
        if self._opened_at_s is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at_s >= self.reset_timeout_s:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` through the breaker; raise CircuitOpenError without calling it if open."""
        with self._lock:
            state = self._state_locked()
            if state is CircuitState.OPEN or (
                state is CircuitState.HALF_OPEN and self._trial_in_flight
            ):
                assert self._opened_at_s is not None
                wait_s = max(self.reset_timeout_s - (self._clock() - self._opened_at_s), 0.0)
                raise CircuitOpenError(
                    f"circuit open after {self._failures} consecutive failures; "
                    f"next trial in {wait_s:.1f} s"
                )
            is_trial = state is CircuitState.HALF_OPEN
            self._trial_in_flight = is_trial
        try:
            result = fn()
        except Exception:
            self._record_failure(is_trial)
            raise
        self._record_success()
        return result

    def _record_failure(self, was_trial: bool) -> None:
        with self._lock:
            self._trial_in_flight = False
            self._failures += 1
            if was_trial or self._failures >= self.failure_threshold:
                self._opened_at_s = self._clock()
                logger.warning("circuit breaker open after {} consecutive failures", self._failures)

    def _record_success(self) -> None:
        with self._lock:
            self._trial_in_flight = False
            self._failures = 0
            self._opened_at_s = None

    def reset(self) -> None:
        """Close the breaker and forget past failures."""
        self._record_success()
