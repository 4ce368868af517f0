"""Pareto frontier on hand-made sets (ties, duplicates, missing values) and against brute force."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_energy_measure.results.analysis.pareto import (
    ENERGY_VS_LATENCY,
    ENERGY_VS_THROUGHPUT,
    dominates,
    pareto_frontier,
    pareto_mask,
)

E, L, T = "energy_per_output_token_j", "e2e_p50_s", "output_tokens_per_s"


def _pts(*pairs, keys=(E, L)):
    return [dict(zip(keys, p, strict=True)) for p in pairs]


def test_energy_vs_latency_hand_made():
    points = _pts(
        (1.0, 5.0),  # 0 frontier (lowest energy)
        (2.0, 3.0),  # 1 frontier
        (3.0, 1.0),  # 2 frontier (lowest latency)
        (2.5, 3.5),  # 3 dominated by 1
        (3.0, 3.0),  # 4 dominated by 1
        (4.0, 1.0),  # 5 dominated by 2 (same latency, more energy)
    )
    assert pareto_frontier(points, **ENERGY_VS_LATENCY) == [0, 1, 2]
    assert pareto_mask(points, **ENERGY_VS_LATENCY) == [True, True, True, False, False, False]


def test_energy_vs_throughput_maximizes_throughput():
    points = _pts((1.0, 10.0), (2.0, 30.0), (2.0, 20.0), (3.0, 30.0), (0.5, 5.0),
                  keys=(E, T))
    # (2,20) is beaten by (2,30); (3,30) by (2,30). Order: lowest energy first.
    assert pareto_frontier(points, **ENERGY_VS_THROUGHPUT) == [4, 0, 1]


def test_duplicates_are_all_kept_and_share_fate():
    points = _pts((1.0, 2.0), (1.0, 2.0), (2.0, 1.0), (2.0, 1.0), (2.0, 2.0), (2.0, 2.0))
    assert pareto_frontier(points, **ENERGY_VS_LATENCY) == [0, 1, 2, 3]


def test_ties_on_one_axis():
    # Same energy: only the lower latency survives; same latency: only the lower energy.
    points = _pts((1.0, 3.0), (1.0, 2.0), (0.5, 2.0))
    assert pareto_frontier(points, **ENERGY_VS_LATENCY) == [2]


def test_missing_or_non_finite_values_are_left_out():
    points = [
        {E: None, L: 0.1},
        {E: math.nan, L: 0.1},
        {E: 1.0},
        {E: 2.0, L: math.inf},
        {E: 3.0, L: 1.0},
    ]
    assert pareto_frontier(points, **ENERGY_VS_LATENCY) == [4]


def test_single_objective_keeps_all_minima():
    assert pareto_frontier(_pts((2.0,), (1.0,), (1.0,), keys=(E,))) == [1, 2]
    assert pareto_frontier([], minimize=(E,)) == []


def test_three_objectives_pairwise():
    keys = ("a", "b", "c")
    points = _pts((1, 1, 1), (0, 2, 2), (2, 2, 2), (1, 1, 1), (2, 0, 3), keys=keys)
    assert pareto_frontier(points, minimize=keys) == [1, 0, 3, 4]


def test_bad_objectives():
    with pytest.raises(ValueError, match="at least one"):
        pareto_frontier([], minimize=(), maximize=())
    with pytest.raises(ValueError, match="twice"):
        pareto_frontier([], minimize=(E,), maximize=(E,))


def test_dominates():
    assert dominates((1, 1), (1, 2))
    assert not dominates((1, 1), (1, 1))
    assert not dominates((0, 2), (1, 1))


_value = st.integers(min_value=0, max_value=5).map(float)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_value, _value), max_size=25))
def test_sweep_matches_brute_force(pairs):
    points = _pts(*pairs, keys=(E, T))
    vectors = [(e, -t) for e, t in pairs]
    expected = {
        i for i, v in enumerate(vectors)
        if not any(dominates(w, v) for w in vectors)
    }
    assert set(pareto_frontier(points, minimize=(E,), maximize=(T,))) == expected
