"""Pareto frontiers: which configurations are not beaten on every objective at once.

Point ``a`` dominates ``b`` when ``a`` is at least as good as ``b`` on every objective and
strictly better on at least one ("good" = lower for minimized, higher for maximized keys).
The frontier is the set of points no other point dominates. Identical points do not dominate
each other, so duplicates on the frontier are all kept. Points missing a value (None, NaN or
infinite) for any objective are left out.

Two objectives use the exact sort-and-sweep algorithm, O(n log n); other counts use the exact
pairwise check, O(n^2 k).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: Energy per token against end-to-end latency p50: lower is better for both.
ENERGY_VS_LATENCY: dict[str, tuple[str, ...]] = {
    "minimize": ("energy_per_output_token_j", "e2e_p50_s"),
    "maximize": (),
}
#: Energy per token against output throughput: less energy, more tokens per second.
ENERGY_VS_THROUGHPUT: dict[str, tuple[str, ...]] = {
    "minimize": ("energy_per_output_token_j",),
    "maximize": ("output_tokens_per_s",),
}


def _objective_vector(
    point: Mapping[str, Any], minimize: Sequence[str], maximize: Sequence[str]
) -> tuple[float, ...] | None:
    """The point's objectives, all turned into "lower is better"; None when one is missing."""
    values: list[float] = []
    for key, sign in [(k, 1.0) for k in minimize] + [(k, -1.0) for k in maximize]:
        raw = point.get(key)
        if raw is None or isinstance(raw, bool):
            return None
        value = float(raw)
        if not math.isfinite(value):
            return None
        values.append(sign * value)
    return tuple(values)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when ``a`` dominates ``b`` (all objectives to be minimized)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def _frontier_2d(vectors: Sequence[tuple[int, tuple[float, ...]]]) -> list[int]:
    """Sort by (first, second) objective, then sweep keeping the best second objective seen.

    A point is dominated exactly when an earlier point with different values has a second
    objective <= its own (earlier points have a first objective <= its own). Runs of identical
    points are decided together, so duplicates share their fate.
    """
    ordered = sorted(vectors, key=lambda item: (item[1], item[0]))
    frontier: list[int] = []
    best_second = math.inf
    i = 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j][1] == ordered[i][1]:
            j += 1
        second = ordered[i][1][1]
        if second < best_second:
            frontier.extend(index for index, _ in ordered[i:j])
            best_second = second
        i = j
    return frontier


def _frontier_pairwise(vectors: Sequence[tuple[int, tuple[float, ...]]]) -> list[int]:
    kept = [
        (vec, index)
        for index, vec in vectors
        if not any(dominates(other, vec) for _, other in vectors)
    ]
    return [index for _, index in sorted(kept)]


def pareto_frontier(
    points: Sequence[Mapping[str, Any]],
    *,
    minimize: Sequence[str] = ("energy_per_output_token_j",),
    maximize: Sequence[str] = (),
) -> list[int]:
    """Indices (into ``points``) of the non-dominated points.

    Each point maps metric keys to numbers; ``minimize`` and ``maximize`` name the objectives
    (units do not matter, only order). The indices come sorted along the frontier: by the first
    objective in its "better" direction (ascending when minimized, descending when maximized),
    ties by the next objective, then by index. Raises ValueError when no objective is given
    or a key is listed twice.
    """
    keys = list(minimize) + list(maximize)
    if not keys:
        raise ValueError("pareto_frontier needs at least one objective")
    if len(set(keys)) != len(keys):
        raise ValueError(f"an objective is listed twice: {keys}")
    vectors = []
    for index, point in enumerate(points):
        vec = _objective_vector(point, minimize, maximize)
        if vec is not None:
            vectors.append((index, vec))
    if len(keys) == 1:
        if not vectors:
            return []
        best = min(vec[0] for _, vec in vectors)
        return [index for index, vec in vectors if vec[0] == best]
    if len(keys) == 2:
        return _frontier_2d(vectors)
    return _frontier_pairwise(vectors)


def pareto_mask(
    points: Sequence[Mapping[str, Any]],
    *,
    minimize: Sequence[str] = ("energy_per_output_token_j",),
    maximize: Sequence[str] = (),
) -> list[bool]:
    """One flag per point: True when it is on the frontier (see ``pareto_frontier``)."""
    on = set(pareto_frontier(points, minimize=minimize, maximize=maximize))
    return [i in on for i in range(len(points))]
