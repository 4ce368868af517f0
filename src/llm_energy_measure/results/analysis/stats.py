"""Statistics of a headline metric over repeated cycles: mean, spread and a 95% CI (Student
t, or on the log scale where the t interval would cross zero for a positive quantity).

The Student t quantile is computed here (regularized incomplete beta by continued fraction,
then bisection on the tail probability) so that the package does not depend on scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from llm_energy_measure.domain import MetricStats
from llm_energy_measure.domain.metrics import CiMethod

#: A metric whose coefficient of variation over cycles exceeds this is flagged high_variance.
HIGH_VARIANCE_CV = 0.10
#: Confidence level of the interval reported by ``metric_stats``.
CONFIDENCE_LEVEL = 0.95

_CF_MAX_ITERATIONS = 500
_CF_EPS = 1e-15
_TINY = 1e-300


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < _TINY:
        d = _TINY
    d = 1.0 / d
    h = d
    for m in range(1, _CF_MAX_ITERATIONS + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _CF_EPS:
            return h
    return h  # pragma: no cover - converges in far fewer steps for the t distribution


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError("regularized_incomplete_beta needs a > 0 and b > 0")
    if not 0.0 <= x <= 1.0:
        raise ValueError("regularized_incomplete_beta needs 0 <= x <= 1")
    if x == 0.0 or x == 1.0:
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
        + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry
    # I_x(a, b) = 1 - I_{1-x}(b, a) on the other side.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_sf(t: float, df: float) -> float:
    """Upper tail probability P(T > t) of Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError("degrees of freedom must be > 0")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) of Student's t with ``df`` degrees of freedom."""
    return 1.0 - student_t_sf(t, df)


@lru_cache(maxsize=1024)
def student_t_ppf(p: float, df: float) -> float:
    """Quantile t with P(T <= t) = p of Student's t (absolute error well below 1e-6).

    Solved by bisection on the tail probability, which stays accurate far into the tails.
    """
    if not 0.0 < p < 1.0:
        raise ValueError("quantile probability must be strictly between 0 and 1")
    if df <= 0:
        raise ValueError("degrees of freedom must be > 0")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -student_t_ppf(1.0 - p, df)
    tail = 1.0 - p
    lo, hi = 0.0, 1.0
    while student_t_sf(hi, df) > tail:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_sf(mid, df) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def metric_stats(values: Sequence[float], *, positive: bool = True) -> MetricStats:
    """Mean, sample standard deviation (ddof=1), coefficient of variation and 95% CI.

    The CI is mean +- t_{0.975, n-1} * std / sqrt(n) (``ci_method`` ``student_t``). For a
    ``positive`` quantity (every headline metric: throughput, energy, power, latency, MFU)
    whose t interval crosses zero, a bound below zero is impossible: when every value is > 0
    the interval is taken on the log scale of the mean (delta method: log(mean) +- t * cv /
    sqrt(n), i.e. mean / f .. mean * f with f = exp(t * cv / sqrt(n)); ``log_scale``), else
    (some value is 0) the t interval with its lower bound at 0 (``student_t_floor``); either
    way ``too_noisy`` is set: the spread is as large as the mean, too noisy to rank. ``cv`` =
    std / |mean| is None when the mean is zero; ``high_variance`` is set when cv >
    ``HIGH_VARIANCE_CV`` (or when the mean is zero but the values differ). Units are those of
    ``values``. Needs at least two values.
    """
    xs = [float(v) for v in values]
    n = len(xs)
    if n < 2:
        raise ValueError(f"metric_stats needs at least 2 values, got {n}")
    if not all(math.isfinite(x) for x in xs):
        raise ValueError("metric_stats needs finite values")
    mean = math.fsum(xs) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    cv = std / abs(mean) if mean != 0 else None
    t = student_t_ppf(0.5 + CONFIDENCE_LEVEL / 2.0, n - 1)
    half_width = t * std / math.sqrt(n)
    high_variance = cv > HIGH_VARIANCE_CV if cv is not None else std > 0
    low, high = mean - half_width, mean + half_width
    method: CiMethod = "student_t"
    crosses_zero = positive and low < 0 and min(xs) >= 0
    if crosses_zero:
        if min(xs) > 0 and cv is not None:
            factor = math.exp(t * cv / math.sqrt(n))
            low, high, method = mean / factor, mean * factor, "log_scale"
        else:
            low, method = 0.0, "student_t_floor"
    return MetricStats(
        n=n,
        mean=mean,
        std=std,
        cv=cv,
        ci95_low=low,
        ci95_high=high,
        high_variance=high_variance,
        ci_method=method,
        too_noisy=crosses_zero,
    )
