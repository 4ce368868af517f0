"""The search for the highest load meeting an SLO, as a pure rule over decided probes.

``next_step(search, decided)`` looks only at the probes decided so far (value -> SLO met),
so a search killed at any point resumes from its completed probes:

1. probe ``low``; if it fails, no value meets the SLO (``none_meets``);
2. probe ``high``; if it meets, ``high`` is the answer, the bound was met (``high_meets``);
3. bisect the bracket [highest value met below the lowest value failed, lowest value failed]
   at its arithmetic middle (rates rounded to 4 significant digits, concurrency to the
   integer below) until its width is at most ``tolerance`` x its lower end (concurrency: or
   the two are adjacent integers), or ``max_probes`` probes were run. The answer is the
   bracket's lower end: the highest value seen to meet the SLO.

A met value above the lowest failed value (noise, or a non-monotone server) is ignored by
the bracket and reported (``non_monotone``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from llm_energy_measure.config.study import SearchConfig

SearchOutcome = Literal["found", "none_meets", "high_meets"]
StopReason = Literal["low_fails", "high_meets", "tolerance", "max_probes"]
SIGNIFICANT_DIGITS = 4


@dataclass(frozen=True)
class SearchStep:
    """The next value to probe, or (``next_value`` None) how the search ended.

    ``answer``: the highest value that met the SLO (None when none did); ``bracket``:
    (highest met, lowest failed) once both are known.
    """

    next_value: float | None
    outcome: SearchOutcome | None = None
    stopped_by: StopReason | None = None
    answer: float | None = None
    bracket: tuple[float, float] | None = None
    non_monotone: tuple[float, ...] = ()


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def midpoint(low: float, high: float, *, integer: bool) -> float | None:
    """A value strictly between ``low`` and ``high`` (None when there is none)."""
    if integer:
        mid = float((int(low) + int(high)) // 2)
        return mid if low < mid < high else None
    exact = (low + high) / 2
    rounded = _round(exact)
    mid = rounded if low < rounded < high else exact
    return mid if low < mid < high else None


def bracket(decided: Mapping[float, bool]) -> tuple[float | None, float | None, tuple[float,
                                                                                    ...]]:
    """(highest met below the lowest failed, lowest failed, met values above it)."""
    failed = [v for v, met in decided.items() if not met]
    hi = min(failed) if failed else None
    met = [v for v, ok in decided.items() if ok]
    below = [v for v in met if hi is None or v < hi]
    above = tuple(sorted(v for v in met if hi is not None and v > hi))
    return (max(below) if below else None), hi, above


def next_step(search: SearchConfig, decided: Mapping[float, bool]) -> SearchStep:
    """What to do after the probes ``decided`` (value -> met); see the module docstring."""
    low, high = search.low, search.high
    if low not in decided:
        return SearchStep(next_value=low)
    if not decided[low]:
        return SearchStep(None, "none_meets", "low_fails", non_monotone=bracket(decided)[2])
    if high not in decided:
        return SearchStep(next_value=high)
    if decided[high]:
        return SearchStep(None, "high_meets", "high_meets", answer=high)
    lo, hi, above = bracket(decided)
    assert lo is not None and hi is not None  # low met, high failed
    mid = midpoint(lo, hi, integer=search.integer)
    narrow = mid is None or hi - lo <= search.tolerance * lo
    if narrow or len(decided) >= search.max_probes:
        return SearchStep(None, "found", "tolerance" if narrow else "max_probes", answer=lo,
                          bracket=(lo, hi), non_monotone=above)
    return SearchStep(next_value=mid)


def bisect(search: SearchConfig, probe: Callable[[float], bool],
           decided: Mapping[float, bool] | None = None) -> tuple[SearchStep,
                                                                 list[tuple[float, bool]]]:
    """Run the search with ``probe`` (value -> SLO met) from the probes already ``decided``;
    the final step and the new probes in the order they were run."""
    known = dict(decided or {})
    ran: list[tuple[float, bool]] = []
    while True:
        step = next_step(search, known)
        if step.next_value is None:
            return step, ran
        met = probe(step.next_value)
        known[step.next_value] = met
        ran.append((step.next_value, met))
