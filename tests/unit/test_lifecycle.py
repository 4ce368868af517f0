"""Warm-up: fixed count, convergence by coefficient of variation, shape of the calls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.factories import make_model_info

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.engines.base import InferenceEngine
from llm_energy_measure.core.types import LoadedModel, Prompt
from llm_energy_measure.orchestration.warmup import (
    cleanup_on_exit,
    coefficient_of_variation,
    run_warmup,
)


class RecordingEngine:
    warmup_plan = InferenceEngine.warmup_plan  # the default: the workload's first batch

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.traffic: list[bool] = []

    def run(self, loaded, prompts, config, *, cycle=0, **kw):  # type: ignore[no-untyped-def]
        self.batches.append([p.request_id for p in prompts])
        self.traffic.append(config.traffic.enabled)


def _clock(durations: list[float]) -> Iterator[float]:
    t = 0.0
    for d in durations:
        yield t
        t += d
        yield t


def _loaded() -> LoadedModel:
    return LoadedModel(model=None, tokenizer=None, info=make_model_info(), device="cpu")


PROMPTS = [Prompt(i, f"p{i}") for i in range(10)]


def test_fixed_warmup_runs_the_workloads_first_batch_without_traffic_waits() -> None:
    cfg = ExperimentConfig.model_validate({"warmup": {"runs": 3}, "batching": {"batch_size": 4},
                                           "traffic": {"enabled": True}})
    engine = RecordingEngine()
    ticks = _clock([1.0, 1.0, 1.0])
    result = run_warmup(engine, _loaded(), PROMPTS, cfg, clock=lambda: next(ticks))
    assert result.runs == 3 and result.converged is None
    assert engine.batches == [[0, 1, 2, 3]] * 3
    assert engine.traffic == [False] * 3


def test_convergence_stops_when_cv_of_last_three_is_under_threshold() -> None:
    # durations 5, 2, 1.0, 1.01, 0.99: CV of (1.0, 1.01, 0.99) = 0.01 < 0.05 after run 5
    cfg = ExperimentConfig.model_validate(
        {"warmup": {"mode": "convergence", "max_runs": 10, "cv_threshold": 0.05}})
    ticks = _clock([5.0, 2.0, 1.0, 1.01, 0.99, 1.0, 1.0])
    result = run_warmup(RecordingEngine(), _loaded(), PROMPTS, cfg, clock=lambda: next(ticks))
    assert result.runs == 5 and result.converged is True
    assert result.durations_s == pytest.approx([5.0, 2.0, 1.0, 1.01, 0.99])


def test_convergence_gives_up_at_max_runs() -> None:
    cfg = ExperimentConfig.model_validate(
        {"warmup": {"mode": "convergence", "max_runs": 4, "cv_threshold": 0.01}})
    ticks = _clock([1.0, 2.0, 1.0, 2.0])
    result = run_warmup(RecordingEngine(), _loaded(), PROMPTS, cfg, clock=lambda: next(ticks))
    assert result.runs == 4 and result.converged is False


def test_coefficient_of_variation_known_values() -> None:
    assert coefficient_of_variation([2.0, 4.0, 6.0]) == pytest.approx(0.5)  # std 2 / mean 4
    assert coefficient_of_variation([1.0]) is None
    assert coefficient_of_variation([0.0, 0.0]) is None


def test_cleanup_runs_every_closer_even_when_one_fails() -> None:
    calls: list[str] = []

    def bad() -> None:
        calls.append("bad")
        raise RuntimeError("boom")

    with pytest.raises(ValueError), cleanup_on_exit(bad, lambda: calls.append("good")):
        raise ValueError("original error is kept")
    assert calls == ["bad", "good"]
