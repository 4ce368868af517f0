"""Study expansion: points (grid and explicit), labels, ids, invalid points, hash, run order."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from llm_energy_measure.config import config_hash
from llm_energy_measure.config.study import StudyConfig, validate_study
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration.study.expansion import (
    plan_study,
    point_label,
    run_experiment_id,
    run_order,
    study_hash,
)

BASE: dict[str, Any] = {
    "config_name": "base",
    "model": {"name": "builtin:tiny-llama", "device": "cpu"},
    "batching": {"batch_size": 2},
}


def _study(**fields: Any) -> StudyConfig:
    return validate_study({"study_name": "s", "base_config": BASE, **fields})


def _plan(**fields: Any):  # type: ignore[no-untyped-def]
    return plan_study(_study(**fields), BASE, base_source="base.yaml")


GRID = {"batching.batch_size": [1, 4], "model.precision": ["float32", "bfloat16"]}


def test_grid_then_explicit_points_in_order_with_ids_and_labels() -> None:
    plan = _plan(sweep=GRID, points=[{"decoder.max_new_tokens": 8}])
    assert [(p.point_id, p.label) for p in plan.points] == [
        ("p000", "batching.batch_size=1, model.precision=float32"),
        ("p001", "batching.batch_size=1, model.precision=bfloat16"),
        ("p002", "batching.batch_size=4, model.precision=float32"),
        ("p003", "batching.batch_size=4, model.precision=bfloat16"),
        ("p004", "decoder.max_new_tokens=8"),
    ]
    assert all(p.valid for p in plan.points)
    configs = plan.configs
    assert [(c.batching.batch_size, c.model.precision) for c in configs.values()][:4] == [
        (1, "float32"), (1, "bfloat16"), (4, "float32"), (4, "bfloat16")]
    # The explicit point keeps the base's other settings.
    assert configs["p004"].batching.batch_size == 2
    assert configs["p004"].decoder.max_new_tokens == 8
    assert configs["p004"].model.device == "cpu"
    assert plan.points[2].config_hash == config_hash(configs["p002"])


def test_labels_render_values_as_typed() -> None:
    assert point_label({}) == "base"
    assert point_label({"a.b": True, "c.d": None, "e.f": [0, 1], "g": 0.5}) == (
        "a.b=true, c.d=null, e.f=[0,1], g=0.5")


def test_invalid_point_is_reported_and_skipped() -> None:
    plan = _plan(sweep={"batching.batch_size": [1, 0, 4]})
    bad = plan.points[1]
    assert (bad.point_id, bad.valid) == ("p001", False)
    assert bad.error is not None and "batching.batch_size: must be >= 1, got 0" in bad.error
    assert "point p001" in bad.error  # the error names where the bad value came from
    assert set(plan.configs) == {"p000", "p002"}
    assert {r.point_id for r in plan.runs} == {"p000", "p002"}


def test_point_identical_to_an_earlier_one_is_skipped() -> None:
    plan = _plan(sweep={"batching.batch_size": [1, 4]}, points=[{"batching.batch_size": 4}])
    assert plan.points[2].valid is False
    assert plan.points[2].error is not None and plan.points[2].error.startswith(
        "same config as p001")


def test_all_points_invalid_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"no valid point in study 's': p000: .*"
                       r"batching.batch_size: must be >= 1.*\(and 1 more invalid point"):
        _plan(sweep={"batching.batch_size": [0, -1]})


def test_no_sweep_and_no_points_is_the_base_alone() -> None:
    plan = _plan(cycles=3)
    assert [(p.point_id, p.label) for p in plan.points] == [("p000", "base")]
    assert [(r.point_id, r.cycle) for r in plan.runs] == [("p000", 0), ("p000", 1), ("p000", 2)]


def test_study_hash_follows_its_definition() -> None:
    plan = _plan(sweep=GRID, cycles=2, order="interleaved", seed=3)
    hashes = [config_hash(plan.configs[p]) for p in ("p000", "p001", "p002", "p003")]
    canonical = json.dumps({"config_hashes": hashes, "cycles": 2, "order": "interleaved",
                            "seed": 3}, sort_keys=True, separators=(",", ":"))
    assert plan.study_hash == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_study_hash_is_stable_and_tracks_what_is_measured() -> None:
    reference = _plan(sweep=GRID, cycles=2).study_hash
    assert _plan(sweep=GRID, cycles=2).study_hash == reference
    # The name, the base's file and run policy that does not change measurements: no effect...
    same = plan_study(validate_study({"study_name": "other", "base_config": BASE, "sweep": GRID,
                                      "cycles": 2, "cooldown_s": 5, "timeout_s": 60,
                                      "retries": 2}),
                      BASE, base_source="elsewhere.yaml")
    assert same.study_hash == reference
    # ...while cycles, order, seed and the configs change it.
    assert _plan(sweep=GRID, cycles=3).study_hash != reference
    assert _plan(sweep=GRID, cycles=2, order="sequential").study_hash != reference
    assert _plan(sweep=GRID, cycles=2, seed=1).study_hash != reference
    assert _plan(sweep={**GRID, "batching.batch_size": [1, 8]}, cycles=2).study_hash != reference


def test_sequential_order() -> None:
    assert run_order(["a", "b", "c"], 2, "sequential", 0) == [
        ("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0), ("c", 1)]


def test_interleaved_order() -> None:
    assert run_order(["a", "b", "c"], 2, "interleaved", 0) == [
        ("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("c", 1)]


def test_shuffled_order_is_a_seeded_permutation() -> None:
    first = run_order(["a", "b", "c"], 2, "shuffled", 7)
    assert first == run_order(["a", "b", "c"], 2, "shuffled", 7)
    assert sorted(first) == run_order(["a", "b", "c"], 2, "sequential", 0)
    orders = {tuple(run_order(["a", "b", "c"], 2, "shuffled", seed)) for seed in range(6)}
    assert len(orders) > 1


def test_runs_carry_their_order_index() -> None:
    plan = _plan(sweep={"batching.batch_size": [1, 4]}, cycles=2, order="interleaved")
    assert [(r.order_index, r.point_id, r.cycle) for r in plan.runs] == [
        (0, "p000", 0), (1, "p001", 0), (2, "p000", 1), (3, "p001", 1)]


def test_study_hash_helper_and_experiment_ids() -> None:
    assert study_hash(["x"], 1, "sequential", 0) != study_hash(["y"], 1, "sequential", 0)
    assert run_experiment_id("s-20260101T000000Z-abcdef", "p003", 1) == (
        "s-20260101T000000Z-abcdef-p003-c1")
