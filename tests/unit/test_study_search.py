"""The search's bisection rule (known SLO threshold -> known probes and answer) and the
``search:`` section of a study file."""

from __future__ import annotations

from typing import Any

import pytest

from llm_energy_measure.config.study import SearchConfig, validate_study
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration.study.bisection import bisect, midpoint, next_step
from llm_energy_measure.orchestration.study.search import search_base


def _search(**fields: Any) -> SearchConfig:
    return SearchConfig.model_validate({"key": "load.rate_per_s", "low": 0.5, "high": 16,
                                        **fields})


def _below(threshold: float) -> Any:
    return lambda value: value <= threshold


def test_rate_bisection_known_probes_and_answer() -> None:
    step, probes = bisect(_search(max_probes=20, tolerance=0.1), _below(5.0))
    assert probes == [(0.5, True), (16.0, False), (8.25, False), (4.375, True),
                      (6.312, False), (5.344, False), (4.86, True)]
    assert (step.outcome, step.stopped_by, step.answer) == ("found", "tolerance", 4.86)
    assert step.bracket == (4.86, 5.344)
    assert step.bracket[1] - step.bracket[0] <= 0.1 * step.bracket[0]


def test_max_probes_stops_with_the_highest_value_met() -> None:
    step, probes = bisect(_search(max_probes=3), _below(5.0))
    assert [v for v, _ in probes] == [0.5, 16.0, 8.25]
    assert (step.stopped_by, step.answer, step.bracket) == ("max_probes", 0.5, (0.5, 8.25))


def test_integer_concurrency_ends_on_adjacent_integers() -> None:
    search = SearchConfig(key="load.concurrency", low=1, high=16, max_probes=10)
    step, probes = bisect(search, _below(5))
    assert probes == [(1.0, True), (16.0, False), (8.0, False), (4.0, True), (6.0, False),
                      (5.0, True)]
    assert (step.answer, step.bracket, step.stopped_by) == (5.0, (5.0, 6.0), "tolerance")


def test_low_fails_means_no_value_meets() -> None:
    step, probes = bisect(_search(), _below(0.1))
    assert probes == [(0.5, False)]
    assert (step.outcome, step.stopped_by, step.answer) == ("none_meets", "low_fails", None)


def test_high_meets_is_the_answer_and_says_the_bound_was_met() -> None:
    step, probes = bisect(_search(), _below(100.0))
    assert probes == [(0.5, True), (16.0, True)]
    assert (step.outcome, step.answer, step.bracket) == ("high_meets", 16.0, None)


def test_resume_rederives_the_bracket_from_decided_probes() -> None:
    search = _search(max_probes=20)
    full_step, full = bisect(search, _below(5.0))
    done = dict(full[:4])  # killed after four probes
    step, rest = bisect(search, _below(5.0), decided=done)
    assert rest == full[4:] and step == full_step


def test_a_met_value_above_a_failure_is_ignored_and_reported() -> None:
    decided = {0.5: True, 16.0: False, 8.25: False, 12.12: True, 4.375: True}
    step = next_step(_search(max_probes=5), decided)
    assert step.bracket == (4.375, 8.25) and step.non_monotone == (12.12,)


def test_midpoint_rounds_rates_and_floors_integers() -> None:
    assert midpoint(1.0, 2.0, integer=False) == 1.5
    assert midpoint(1.0, 1.0001, integer=False) == pytest.approx(1.00005)
    assert midpoint(4.0, 7.0, integer=True) == 5.0
    assert midpoint(4.0, 5.0, integer=True) is None


# ----------------------------------------------------------------- the search: section


def _study(**fields: Any) -> dict[str, Any]:
    return {"study_name": "s", "base_config": {}, **fields}


@pytest.mark.parametrize(("search", "message"), [
    ({"key": "load.rate_per_s", "low": 4, "high": 2}, r"search\.low \(4\) must be below"),
    ({"key": "load.concurrency", "low": 1.5, "high": 8}, "whole numbers"),
    ({"key": "load.batch", "low": 1, "high": 8}, "search.key"),
    ({"key": "load.rate_per_s", "low": 1, "high": 8, "max_probes": 1}, "max_probes"),
])
def test_bad_search_sections_are_one_line(search: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        validate_study(_study(search=search))
    assert "\n" not in str(info.value)


def test_a_search_with_a_sweep_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="no sweep or points"):
        validate_study(_study(search={"key": "load.rate_per_s", "low": 1, "high": 8},
                              sweep={"load.rate_per_s": [1, 2]}))


SERVED: dict[str, Any] = {
    "engine": "openai", "model": {"name": "m"},
    "server": {"engine": "command", "command": ["srv", "--port", "{port}"]},
    "load": {"arrival": "poisson"},
    "slo": {"ttft_ms": {"p99": 100}},
}


def test_search_base_needs_an_slo_section() -> None:
    study = validate_study(_study(search={"key": "load.rate_per_s", "low": 1, "high": 8}))
    base = {k: v for k, v in SERVED.items() if k != "slo"}
    with pytest.raises(ConfigurationError, match="search needs an slo section"):
        search_base(study, base, base_source="base.yaml")


def test_search_key_and_arrival_must_agree() -> None:
    study = validate_study(_study(search={"key": "load.concurrency", "low": 1, "high": 8}))
    with pytest.raises(ConfigurationError, match="needs load.arrival concurrency in the base "
                       r"config \(it has poisson\)"):
        search_base(study, SERVED, base_source="base.yaml")


def test_an_invalid_base_is_named_with_its_key() -> None:
    study = validate_study(_study(search={"key": "load.rate_per_s", "low": 1, "high": 8}))
    base = {**SERVED, "load": {"arrival": "poisson", "concurrency": 2}}
    with pytest.raises(ConfigurationError, match=r"^base\.yaml: load\.concurrency is only read"):
        search_base(study, base, base_source="base.yaml")


def test_search_base_sets_the_studys_cycles_and_hashes_the_slo() -> None:
    study = validate_study(_study(search={"key": "load.rate_per_s", "low": 1, "high": 8},
                                  cycles=3))
    base, low, digest = search_base(study, SERVED, base_source="base.yaml")
    assert base["cycles"] == 3 and low.cycles == 3 and low.load.rate_per_s == 1
    stricter = {**SERVED, "slo": {"ttft_ms": {"p99": 50}}}
    assert search_base(study, stricter, base_source="b")[2] != digest
    # Without cycles in the study file, the base's own cycles are kept.
    plain = validate_study(_study(search={"key": "load.rate_per_s", "low": 1, "high": 8}))
    assert search_base(plain, {**SERVED, "cycles": 2}, base_source="b")[1].cycles == 2
