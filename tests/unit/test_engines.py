"""The engine axis: registry, config key, what a result records, capabilities."""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tests.factories import make_environment, make_model_info

from llm_energy_measure.config.models import EngineName, ExperimentConfig
from llm_energy_measure.config.study import validate_study
from llm_energy_measure.core.energy import build_energy_metrics
from llm_energy_measure.core.engines import ENGINES, create_engine
from llm_energy_measure.core.engines.base import EngineCapabilities, InferenceEngine
from llm_energy_measure.core.engines.transformers import TransformersEngine
from llm_energy_measure.core.types import EnergyReading, InferenceOutput, LoadedModel, Prompt
from llm_energy_measure.domain import ComputeMetrics, MemoryStats, RequestRecord, Timestamps
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration import Collaborators, run_experiment
from llm_energy_measure.orchestration.study.expansion import plan_study
from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.results.export.exporters import flatten_result


def test_every_config_engine_name_is_registered() -> None:
    assert set(typing.get_args(EngineName)) == set(ENGINES)


def test_create_engine_by_name() -> None:
    engine = create_engine("transformers")
    assert isinstance(engine, TransformersEngine) and engine.name == "transformers"
    known = "choose one of: llama_cpp, openai, transformers, vllm"
    with pytest.raises(ConfigurationError, match=known):
        create_engine("tensorrt")


def test_config_refuses_an_unknown_engine() -> None:
    assert ExperimentConfig().engine == "transformers"
    with pytest.raises(ValueError, match="engine"):
        ExperimentConfig.model_validate({"engine": "tensorrt"})


def test_transformers_engine_records_its_batching_and_version() -> None:
    engine = TransformersEngine()
    config = ExperimentConfig.model_validate({"batching": {"batch_size": 4}})
    info = engine.info(LoadedModel(None, None, make_model_info(), "cpu"), config)
    assert info.name == "transformers"
    assert info.version is not None and info.version[0].isdigit()
    assert info.batching == "static batches (fixed, batch_size 4)"
    assert info.unreported == {}  # it reports every figure


def test_a_study_sweeps_the_engine_axis() -> None:
    base = {"config_name": "b", "model": {"name": "builtin:tiny-llama", "device": "cpu"}}
    study = validate_study({"study_name": "s", "base_config": base,
                            "sweep": {"engine": ["transformers", "tensorrt"]}})
    plan = plan_study(study, base, base_source="base.yaml")
    assert [p.label for p in plan.points] == ["engine=transformers", "engine=tensorrt"]
    assert plan.points[0].valid and plan.configs["p000"].engine == "transformers"
    assert not plan.points[1].valid and "engine" in (plan.points[1].error or "")


# --- an engine that cannot report everything -------------------------------------------------


class _CountingCompute:
    def __init__(self) -> None:
        self.calls = 0

    def compute(self, loaded: LoadedModel, output: InferenceOutput) -> ComputeMetrics:
        self.calls += 1
        return ComputeMetrics(achieved_flops_per_s=1.0)


class _Memory:
    def start_window(self) -> None:
        pass

    def stop_window(self) -> MemoryStats:
        return MemoryStats(gpu_peak_allocated_bytes=999, gpu_peak_reserved_bytes=999,
                           cpu_peak_rss_bytes=5)


class _RemoteEngine(InferenceEngine):
    """Runs elsewhere: no per-token times, no FLOPs model, no torch memory here."""

    name = "remote"
    capabilities = EngineCapabilities(
        token_timestamps=False, flops_by_architecture=False, torch_memory_peaks=False)

    def load(self, config: ExperimentConfig) -> LoadedModel:
        return LoadedModel(model=object(), tokenizer=object(), info=make_model_info(),
                           device="cpu")

    def run(self, loaded: LoadedModel, prompts: Sequence[Prompt], config: ExperimentConfig, *,
            cycle: int = 0, on_batch_done: Callable[[int], None] | None = None,
            on_window_open: Callable[[], None] | None = None,
            on_window_close: Callable[[], None] | None = None) -> InferenceOutput:
        if on_window_open:
            on_window_open()
        if on_window_close:
            on_window_close()
        requests = [RequestRecord(request_id=p.request_id, cycle=cycle, input_tokens=3,
                                  output_tokens=2, submitted_s=0.0, e2e_s=1.0) for p in prompts]
        return InferenceOutput(requests=requests, window=Timestamps(start=10.0, end=12.0,
                               duration_s=2.0), compute_time_s=2.0, num_batches=1)

    def batching(self, config: ExperimentConfig) -> str:
        return "all prompts at once"


class _Backend:
    name = "null"

    def measure_baseline(self, duration_s: float) -> dict[str, float]:
        return {}

    def start(self) -> None:
        pass

    def stop(self) -> EnergyReading:
        return EnergyReading(devices=[], backend="null")

    def close(self) -> None:
        pass


def test_unreported_figures_are_null_with_the_reason(tmp_path: Path) -> None:
    compute = _CountingCompute()
    collab = Collaborators(
        engine=_RemoteEngine(), energy_backend=lambda c, ctx, loaded: _Backend(),
        memory=_Memory(), compute=compute, repository=FileSystemRepository(tmp_path),
        prompts=lambda c, loaded: ([Prompt(i, f"p{i}") for i in range(3)], []),
        energy_builder=build_energy_metrics, environment=lambda: make_environment("h"),
    )
    config = ExperimentConfig.model_validate({"config_name": "r", "warmup": {"runs": 0},
                                              "energy": {"baseline": {"enabled": False}}})
    report = run_experiment(config, experiment_id="e1", results_dir=tmp_path,
                            collaborators=collab)
    agg = report.aggregated
    assert agg is not None and compute.calls == 0
    raw = FileSystemRepository(tmp_path).load_raw("e1", 0)
    assert raw is not None
    for result in (raw, agg):
        assert result.engine.name == "remote"
        assert result.engine.batching == "all prompts at once"
        assert result.engine.unreported["ttft"] == "the engine does not expose per-token times"
        assert "compute" in result.engine.unreported
        assert result.compute.achieved_flops_per_s is None and result.compute.flops is None
        assert result.memory.gpu_peak_allocated_bytes is None
        assert result.memory.cpu_peak_rss_bytes == 5  # what it can report is kept
        assert result.inference.ttft is None
    assert agg.inference.output_tokens == 6
    flat = flatten_result(agg)
    assert flat["engine.name"] == "remote"
