"""Student t quantiles (no scipy in the package) and metric statistics on known data."""

from __future__ import annotations

import math

import pytest

from llm_energy_measure.results import metric_stats
from llm_energy_measure.results.analysis.stats import (
    HIGH_VARIANCE_CV,
    regularized_incomplete_beta,
    student_t_cdf,
    student_t_ppf,
)

DFS = [*range(1, 31), 50, 100]


@pytest.mark.parametrize("df", DFS)
def test_t_quantiles_match_scipy(df):
    scipy_stats = pytest.importorskip("scipy.stats")
    for p in (0.5, 0.6, 0.9, 0.95, 0.975, 0.99, 0.995, 0.025, 0.001):
        assert student_t_ppf(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), abs=1e-6)


@pytest.mark.parametrize("df", [1, 2, 5, 30, 100, 2.5])
def test_t_cdf_matches_scipy(df):
    scipy_stats = pytest.importorskip("scipy.stats")
    for t in (-8.0, -1.3, 0.0, 0.4, 2.0, 12.7):
        assert student_t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), abs=1e-9)


def test_t_quantiles_match_printed_tables():
    # Classic two-sided 95% critical values.
    assert student_t_ppf(0.975, 1) == pytest.approx(12.7062047, abs=1e-6)
    assert student_t_ppf(0.975, 2) == pytest.approx(4.3026527, abs=1e-6)
    assert student_t_ppf(0.975, 10) == pytest.approx(2.2281389, abs=1e-6)
    assert student_t_ppf(0.975, 30) == pytest.approx(2.0422725, abs=1e-6)
    # df = 1 is the Cauchy distribution: quantile = tan(pi (p - 1/2)).
    assert student_t_ppf(0.9, 1) == pytest.approx(math.tan(math.pi * 0.4), abs=1e-6)


def test_incomplete_beta_known_values():
    # I_x(1, 1) = x; I_x(2, 1) = x^2; I_x(1, 2) = 1 - (1 - x)^2.
    assert regularized_incomplete_beta(1, 1, 0.3) == pytest.approx(0.3)
    assert regularized_incomplete_beta(2, 1, 0.3) == pytest.approx(0.09)
    assert regularized_incomplete_beta(1, 2, 0.3) == pytest.approx(1 - 0.49)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError):
        student_t_ppf(1.0, 3)
    with pytest.raises(ValueError):
        student_t_ppf(0.9, 0)


def test_metric_stats_on_known_data():
    stats = metric_stats([1.0, 2.0, 3.0, 4.0, 5.0])
    assert stats.n == 5
    assert stats.mean == pytest.approx(3.0)
    assert stats.std == pytest.approx(math.sqrt(2.5))  # ddof = 1
    assert stats.cv == pytest.approx(math.sqrt(2.5) / 3.0)
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert stats.ci95_low == pytest.approx(3.0 - half, abs=1e-6)
    assert stats.ci95_high == pytest.approx(3.0 + half, abs=1e-6)
    assert stats.high_variance is True


def test_high_variance_threshold():
    low = metric_stats([10.0, 10.5, 9.5])  # cv = 0.05
    assert low.cv == pytest.approx(0.05)
    assert low.high_variance is False
    high = metric_stats([10.0, 13.0, 7.0])  # cv = 0.3
    assert high.cv == pytest.approx(0.3)
    assert high.high_variance is True
    assert HIGH_VARIANCE_CV == 0.10


def test_zero_mean_has_no_cv():
    stats = metric_stats([-1.0, 1.0])
    assert stats.cv is None
    assert stats.high_variance is True
    assert metric_stats([0.0, 0.0]).high_variance is False


def test_constant_values_collapse_the_interval():
    stats = metric_stats([4.0, 4.0, 4.0])
    assert (stats.std, stats.ci95_low, stats.ci95_high) == (0.0, 4.0, 4.0)


def test_fewer_than_two_values_raise():
    with pytest.raises(ValueError, match="at least 2"):
        metric_stats([1.0])


def test_a_positive_quantity_whose_t_interval_crosses_zero_gets_a_log_scale_interval():
    # J/token over 3 noisy runs: mean 0.38, std sqrt(0.1612) = 0.40150, t(.975, 2) = 4.302653.
    # Student t: 0.38 +- 0.99738 = [-0.617, 1.377], impossible below 0. Log scale of the mean:
    # f = exp(4.302653 x (0.40150 / 0.38) / sqrt(3)) = 13.800: [0.027536, 5.2440].
    stats = metric_stats([0.1, 0.2, 0.84])
    assert stats.mean == pytest.approx(0.38)
    assert stats.std == pytest.approx(math.sqrt(0.1612))
    assert stats.ci_method == "log_scale" and stats.too_noisy is True
    assert stats.ci95_low == pytest.approx(0.027536, rel=1e-4)
    assert stats.ci95_high == pytest.approx(5.2440, rel=1e-4)
    assert stats.ci95_low * stats.ci95_high == pytest.approx(0.38**2)  # geometric about mean


def test_a_zero_value_floors_the_interval_at_zero():
    stats = metric_stats([0.0, 0.1, 0.9])  # mean 1/3, t interval [-0.88, 1.55]
    assert stats.ci_method == "student_t_floor" and stats.too_noisy is True
    assert stats.ci95_low == 0.0
    assert stats.ci95_high == pytest.approx(1 / 3 + 4.302653 * stats.std / math.sqrt(3))


def test_the_t_interval_is_kept_where_it_is_meaningful():
    stats = metric_stats([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (stats.ci_method, stats.too_noisy) == ("student_t", False)
    signed = metric_stats([-1.0, 1.0, 2.0], positive=False)  # not a positive quantity
    assert signed.ci_method == "student_t" and signed.ci95_low < 0
