"""Send times of an open-loop load, computed up front from a seed.

Offsets are seconds from the load start (t0). The first request is sent at 0.0 for both
arrival processes (as vLLM's benchmark client does): a Poisson schedule then has ``n - 1``
exponential gaps, so a run does not begin with an idle wait whose length depends on the seed.
``arrivals_for_duration`` draws from the same random stream, so its offsets are a prefix of
``arrival_times`` with the same seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Literal

Arrival = Literal["poisson", "constant"]

#: The most offsets one schedule may hold (the largest ``load.num_requests``).
MAX_REQUESTS = 10_000_000


def _check(arrival: str, rate_per_s: float) -> None:
    if arrival not in ("poisson", "constant"):
        raise ValueError(f"arrival must be 'poisson' or 'constant', got {arrival!r}")
    if not rate_per_s > 0:
        raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")


def _offsets(arrival: str, rate_per_s: float, seed: int) -> Iterator[float]:
    """Endless offsets in seconds: 0.0, then cumulative gaps."""
    if arrival == "constant":
        i = 0
        while True:
            yield i / rate_per_s
            i += 1
    rng = random.Random(seed)
    offset_s = 0.0
    while True:
        yield offset_s
        offset_s += rng.expovariate(rate_per_s)


def arrival_times(arrival: str, rate_per_s: float, n: int, seed: int) -> list[float]:
    """``n`` send offsets in seconds from the load start, non-decreasing, the first 0.0.

    ``poisson``: gaps drawn from an exponential distribution of mean ``1 / rate_per_s``
    with ``random.Random(seed)`` (the same seed gives the same schedule on every platform);
    ``constant``: offset ``i / rate_per_s`` exactly. ``seed`` is not read for ``constant``.
    """
    _check(arrival, rate_per_s)
    if not 0 <= n <= MAX_REQUESTS:
        raise ValueError(f"n must be in [0, {MAX_REQUESTS}], got {n}")
    offsets = _offsets(arrival, rate_per_s, seed)
    return [next(offsets) for _ in range(n)]


def arrivals_for_duration(
    arrival: str, rate_per_s: float, duration_s: float, seed: int
) -> list[float]:
    """Every send offset in seconds that falls before ``duration_s`` (``arrival_times``'s rules).

    About ``rate_per_s * duration_s`` offsets; raises ValueError when that would exceed
    ``MAX_REQUESTS`` (by a margin for Poisson draws), so a typo cannot exhaust memory.
    """
    _check(arrival, rate_per_s)
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if rate_per_s * duration_s > MAX_REQUESTS * 0.9:
        raise ValueError(f"rate_per_s x duration_s = {rate_per_s * duration_s:.0f} requests, "
                         f"more than one run may send ({MAX_REQUESTS})")
    out: list[float] = []
    for offset_s in _offsets(arrival, rate_per_s, seed):
        if offset_s >= duration_s or len(out) >= MAX_REQUESTS:
            break
        out.append(offset_s)
    return out
