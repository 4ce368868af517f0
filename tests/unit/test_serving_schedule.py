"""Open-loop send times: computed up front, seeded, first request at 0.0."""

from __future__ import annotations

import itertools
import statistics

import pytest

from llm_energy_measure.core.serving.schedule import arrival_times, arrivals_for_duration


def test_constant_rate_is_exactly_i_over_rate() -> None:
    assert arrival_times("constant", 4.0, 5, seed=0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert arrival_times("constant", 3.0, 4, seed=9) == [i / 3.0 for i in range(4)]
    assert arrival_times("constant", 4.0, 0, seed=0) == []


def test_poisson_is_reproducible_for_a_seed_and_starts_at_zero() -> None:
    first = arrival_times("poisson", 10.0, 50, seed=7)
    assert first == arrival_times("poisson", 10.0, 50, seed=7)
    assert first != arrival_times("poisson", 10.0, 50, seed=8)
    assert first[0] == 0.0
    assert all(b >= a for a, b in itertools.pairwise(first))
    # The known draws of random.Random(7): the schedule does not change across releases.
    assert first[1:3] == pytest.approx([0.0391314844, 0.0554833301], abs=1e-9)


def test_poisson_mean_gap_is_one_over_rate() -> None:
    offsets = arrival_times("poisson", 200.0, 20_001, seed=0)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert statistics.fmean(gaps) == pytest.approx(1 / 200.0, rel=0.03)
    assert statistics.pstdev(gaps) == pytest.approx(1 / 200.0, rel=0.05)  # exponential


def test_duration_schedule_is_the_prefix_before_the_duration() -> None:
    offsets = arrivals_for_duration("poisson", 50.0, 2.0, seed=3)
    longer = arrival_times("poisson", 50.0, len(offsets) + 1, seed=3)
    assert offsets == longer[:-1]
    assert max(offsets) < 2.0 <= longer[-1]
    assert arrivals_for_duration("constant", 2.0, 2.0, seed=0) == [0.0, 0.5, 1.0, 1.5]


@pytest.mark.parametrize("call", [
    lambda: arrival_times("gamma", 1.0, 3, seed=0),
    lambda: arrival_times("poisson", 0.0, 3, seed=0),
    lambda: arrival_times("poisson", 1.0, -1, seed=0),
    lambda: arrivals_for_duration("constant", 1.0, 0.0, seed=0),
    lambda: arrivals_for_duration("constant", 100_000.0, 7 * 86_400.0, seed=0),
])
def test_bad_arguments_are_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]
