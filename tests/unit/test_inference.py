"""The measured pass on the tiny builtin model: tokens, fixed length, timing, traffic, errors."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.engines.transformers import run_inference
from llm_energy_measure.core.generation import eos_token_ids, generation_kwargs, new_token_limits
from llm_energy_measure.core.model_loader import load_model_tokenizer
from llm_energy_measure.core.timing import arrival_times
from llm_energy_measure.core.types import LoadedModel, Prompt
from llm_energy_measure.exceptions import InferenceError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

TEXTS = [
    "Explain why the sky is blue.",
    "Hi",
    "Write a short story about a river that learned to sing, in three long sentences please.",
    "What is energy?",
    "Describe the history of the city, its music and its mountains in great detail, with numbers"
    " 1 2 3 and 4567.",
    "One two",
    "Summarise the research paper method and result.",
]


def _prompts(texts: list[str] = TEXTS) -> list[Prompt]:
    return [Prompt(request_id=i, text=t) for i, t in enumerate(texts)]


def _config(**sections: Any) -> ExperimentConfig:
    data: dict[str, Any] = {"batching": {"batch_size": 3}, "decoder": {"max_new_tokens": 5}}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return ExperimentConfig.model_validate(data)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> LoadedModel:
    cfg = ExperimentConfig.model_validate({"model": {"name": "builtin:tiny-llama"}})
    return load_model_tokenizer(cfg)


def test_input_tokens_match_independent_tokenizer_count(tiny: LoadedModel) -> None:
    out = run_inference(tiny, _prompts(), _config(decoder={"fixed_length": True}))
    per_prompt = [len(tiny.tokenizer(t).input_ids) for t in TEXTS]
    assert [r.input_tokens for r in out.requests] == per_prompt
    assert out.input_tokens == sum(per_prompt)
    assert [s.input_tokens for s in out.sequences] == per_prompt
    # fixed batching of 3: padded size = batch size x longest prompt of each batch
    batches = [per_prompt[0:3], per_prompt[3:6], per_prompt[6:7]]
    assert out.padded_input_tokens == sum(len(b) * max(b) for b in batches)
    assert out.num_batches == 3


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_fixed_length_generates_exactly_max_new_tokens(tiny: LoadedModel, batch_size: int) -> None:
    cfg = _config(decoder={"fixed_length": True, "max_new_tokens": 6},
                  batching={"batch_size": batch_size})
    out = run_inference(tiny, _prompts(), cfg)
    assert [r.output_tokens for r in out.requests] == [6] * len(TEXTS)
    assert out.output_tokens == len(TEXTS) * 6
    assert [s.output_tokens for s in out.sequences] == [6] * len(TEXTS)
    assert [r.request_id for r in out.requests] == list(range(len(TEXTS)))


def test_target_output_tokens_fix_the_batch_length(tiny: LoadedModel) -> None:
    prompts = [Prompt(0, "a b c", target_output_tokens=3), Prompt(1, "d e", target_output_tokens=3)]
    out = run_inference(tiny, prompts, _config(decoder={"max_new_tokens": 9}))
    assert [r.output_tokens for r in out.requests] == [3, 3]


def test_timing_inequalities_and_callbacks(tiny: LoadedModel) -> None:
    seen: list[int] = []
    out = run_inference(tiny, _prompts(), _config(), on_batch_done=seen.append, cycle=2)
    assert seen == [3, 6, 7]
    assert out.window.duration_s >= out.compute_time_s > 0
    assert out.window.end >= out.window.start
    for r in out.requests:
        assert r.cycle == 2
        assert r.ttft_s is not None
        assert r.submitted_s >= 0
        assert r.completion_s is not None
        assert 0 < r.ttft_s <= r.completion_s <= r.e2e_s
        assert r.submitted_s + r.e2e_s <= out.window.duration_s
        if r.output_tokens >= 2:
            assert r.tpot_s is not None and r.tpot_s > 0
            # own completion = ttft + (k - 1) x mean gap; the gaps add up to it
            assert r.completion_s == pytest.approx(r.ttft_s + (r.output_tokens - 1) * r.tpot_s)
            assert len(r.token_gaps_s) == r.output_tokens - 1
            assert sum(r.token_gaps_s) == pytest.approx(r.completion_s - r.ttft_s, abs=1e-5)
    # requests of one batch share the submission time (the batch start)
    assert len({r.submitted_s for r in out.requests[:3]}) == 1
    assert out.requests[3].submitted_s > out.requests[0].submitted_s


def test_single_token_has_no_itl(tiny: LoadedModel) -> None:
    out = run_inference(tiny, _prompts(), _config(decoder={"max_new_tokens": 1}))
    for r in out.requests:
        assert r.output_tokens == 1
        assert r.tpot_s is None and r.token_gaps_s == ()
        assert r.ttft_s == r.completion_s


def test_traffic_waits_are_inside_window_but_outside_compute(tiny: LoadedModel) -> None:
    late_s = 0.3
    out = run_inference(tiny, _prompts()[:4], _config(), arrival_times_s=[late_s] * 4)
    assert out.window.duration_s - out.compute_time_s >= late_s
    for r in out.requests:
        assert r.submitted_s == pytest.approx(late_s)
        assert r.ttft_s is not None and r.ttft_s > 0


def test_traffic_from_config_submits_at_arrival_and_waits_for_batch(tiny: LoadedModel) -> None:
    cfg = _config(traffic={"enabled": True, "mode": "constant", "rate_per_s": 10.0},
                  batching={"batch_size": 2})
    prompts = _prompts()[:4]
    out = run_inference(tiny, prompts, cfg)
    expected = arrival_times(4, cfg.traffic, cfg.seed)
    assert expected == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert [r.submitted_s for r in out.requests] == pytest.approx(expected)
    for r in out.requests:
        batch_last_arrival = expected[r.request_id | 1]  # batches are (0, 1) and (2, 3)
        assert r.ttft_s is not None
        # the first token comes after the batch's last request arrived
        assert r.submitted_s + r.ttft_s >= batch_last_arrival
    assert out.window.duration_s >= expected[-1]


def test_poisson_arrivals_are_seeded() -> None:
    cfg = _config(traffic={"enabled": True, "mode": "poisson", "rate_per_s": 4.0})
    first = arrival_times(2000, cfg.traffic, seed=7)
    assert first == arrival_times(2000, cfg.traffic, seed=7)
    assert first != arrival_times(2000, cfg.traffic, seed=8)
    assert first[0] == 0.0
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert all(g >= 0 for g in gaps)
    assert sum(gaps) / len(gaps) == pytest.approx(0.25, rel=0.1)  # mean gap 1 / rate


def test_save_outputs_and_seeded_sampling(tiny: LoadedModel) -> None:
    cfg = _config(decoder={"mode": "sampling", "temperature": 1.0, "top_k": 0,
                           "fixed_length": True},
                  inference={"save_outputs": True})
    a = run_inference(tiny, _prompts()[:3], cfg, cycle=0)
    b = run_inference(tiny, _prompts()[:3], cfg, cycle=0)
    assert [r.output_text for r in a.requests] == [r.output_text for r in b.requests]
    assert all(isinstance(r.output_text, str) for r in a.requests)
    plain = run_inference(tiny, _prompts()[:3], _config())
    assert all(r.output_text is None for r in plain.requests)


def test_static_cache_matches_dynamic_greedy(tiny: LoadedModel) -> None:
    dynamic = run_inference(tiny, _prompts(), _config(inference={"save_outputs": True}))
    static = run_inference(
        tiny, _prompts(),
        _config(inference={"save_outputs": True, "cache_implementation": "static"}),
    )
    assert [r.output_tokens for r in static.requests] == [r.output_tokens for r in dynamic.requests]
    assert [r.output_text for r in static.requests] == [r.output_text for r in dynamic.requests]


def test_loaded_warnings_reach_the_output(tiny: LoadedModel) -> None:
    from llm_energy_measure.domain import MeasurementWarning

    note = MeasurementWarning(code="pad_token_is_eos", message="m", severity="info")
    loaded = LoadedModel(tiny.model, tiny.tokenizer, tiny.info, tiny.device, warnings=[note])
    out = run_inference(loaded, _prompts()[:2], _config())
    assert note in out.warnings


class _FailingModel:
    """Stands in for a model whose generate raises."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.generation_config = None

    def generate(self, **_: Any) -> Any:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "out of memory"),
        (MemoryError("cannot allocate"), "out of memory"),
        (ValueError("bad shapes"), "ValueError: bad shapes"),
    ],
)
def test_generate_errors_become_inference_errors(
    tiny: LoadedModel, exc: BaseException, expected: str
) -> None:
    loaded = LoadedModel(_FailingModel(exc), tiny.tokenizer, tiny.info, "cpu")
    with pytest.raises(InferenceError, match=expected) as info:
        run_inference(loaded, _prompts(), _config())
    assert "batch of 3" in str(info.value)
    if "memory" in expected:
        assert "batching.batch_size" in str(info.value)


def test_empty_workload_is_an_error(tiny: LoadedModel) -> None:
    with pytest.raises(InferenceError, match="no prompts"):
        run_inference(tiny, [], _config())


# ----------------------------------------------------------------- generate arguments


def test_greedy_kwargs_clear_sampling_knobs() -> None:
    cfg = _config(decoder={"repetition_penalty": 1.3, "temperature": 0.5, "top_k": 20})
    kwargs = generation_kwargs(cfg.decoder, cfg.inference, pad_token_id=3, eos_ids=[2, 9])
    assert kwargs == {
        "do_sample": False, "temperature": None, "top_p": None, "top_k": None, "min_p": None,
        "repetition_penalty": 1.3, "pad_token_id": 3, "eos_token_id": [2, 9], "num_beams": 1,
        "disable_compile": True,
    }


@pytest.mark.parametrize(("top_k", "min_p", "want_k", "want_p"),
                         [(0, 0.0, None, None), (40, 0.05, 40, 0.05)])
def test_sampling_kwargs_disable_zero_knobs(
    top_k: int, min_p: float, want_k: int | None, want_p: float | None
) -> None:
    cfg = _config(decoder={"mode": "sampling", "temperature": 0.7, "top_p": 0.9, "top_k": top_k,
                           "min_p": min_p},
                  inference={"cache_implementation": "static"})
    kwargs = generation_kwargs(cfg.decoder, cfg.inference, pad_token_id=0, eos_ids=[1])
    assert (kwargs["do_sample"], kwargs["temperature"], kwargs["top_p"]) == (True, 0.7, 0.9)
    assert (kwargs["top_k"], kwargs["min_p"]) == (want_k, want_p)
    assert kwargs["cache_implementation"] == "static"


def test_new_token_limits() -> None:
    batch = [Prompt(0, "a"), Prompt(1, "b")]
    fixed = _config(decoder={"fixed_length": True, "max_new_tokens": 12, "min_new_tokens": 2})
    assert new_token_limits(batch, fixed.decoder) == (12, 12)
    free = _config(decoder={"max_new_tokens": 12, "min_new_tokens": 2})
    assert new_token_limits(batch, free.decoder) == (12, 2)
    targeted = [Prompt(0, "a", target_output_tokens=4), Prompt(1, "b", target_output_tokens=7)]
    assert new_token_limits(targeted, free.decoder) == (7, 7)


def test_eos_ids_merge_model_and_tokenizer() -> None:
    from types import SimpleNamespace

    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[2, 7]))
    assert eos_token_ids(model, SimpleNamespace(eos_token_id=2)) == [2, 7]
    assert eos_token_ids(SimpleNamespace(), SimpleNamespace(eos_token_id=5)) == [5]


def test_torch_compile_wraps_forward_once() -> None:
    from llm_energy_measure.core.engines.transformers import _compile_once

    module = torch.nn.Linear(2, 2)
    first = _compile_once(module)
    wrapped = module.forward
    second = _compile_once(module)
    assert module.forward is wrapped
    assert first.code == second.code == "torch_compile"


def test_outputs_are_decoded_after_the_window_closes(
    tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting tokens and decoding saved outputs are bookkeeping, not measured work."""
    closed: list[bool] = []
    decoded_while_open: list[bool] = []
    real_decode = tiny.tokenizer.decode

    def decode(*args: Any, **kwargs: Any) -> str:
        decoded_while_open.append(not closed)
        return str(real_decode(*args, **kwargs))

    monkeypatch.setattr(tiny.tokenizer, "decode", decode)
    out = run_inference(tiny, _prompts(), _config(inference={"save_outputs": True}),
                        on_window_close=lambda: closed.append(True))
    assert len(decoded_while_open) == len(TEXTS) and not any(decoded_while_open)
    assert all(r.output_text is not None for r in out.requests)


def test_ranks_send_their_share_of_one_system_wide_arrival_process() -> None:
    from llm_energy_measure.core.batching import shard_prompts
    from llm_energy_measure.core.timing import workload_arrival_times

    cfg = _config(traffic={"enabled": True, "mode": "poisson", "rate_per_s": 4.0})
    prompts = _prompts()  # 7 prompts, request ids 0..6
    system = arrival_times(len(prompts), cfg.traffic, cfg.seed)
    shards = [shard_prompts(prompts, [len(p.text) for p in prompts], 2, rank) for rank in (0, 1)]
    sent = {
        p.request_id: t
        for shard in shards
        for p, t in zip(shard, workload_arrival_times(shard, cfg.traffic, cfg.seed), strict=True)
    }
    # Every request arrives exactly once, at its time in the one system process: the two
    # ranks together send 7 arrivals at 4 requests/s, not two copies of the same schedule.
    assert sent == dict(enumerate(system))
    assert len(set(sent.values())) == len(prompts)


def test_a_shard_is_submitted_at_its_own_requests_arrivals(tiny: LoadedModel) -> None:
    # Constant 10 requests/s over the workload: request i arrives at i / 10 s. The shard of
    # requests 1 and 3 (rank 1 of 2) is submitted at 0.1 s and 0.3 s, not at 0 and 0.1 s.
    cfg = _config(traffic={"enabled": True, "mode": "constant", "rate_per_s": 10.0},
                  batching={"batch_size": 1})
    shard = [p for p in _prompts()[:4] if p.request_id in (1, 3)]
    out = run_inference(tiny, shard, cfg)
    assert [r.submitted_s for r in out.requests] == pytest.approx([0.1, 0.3])
    (note,) = [w for w in out.warnings if w.code == "traffic_arrivals"]
    assert "one system-wide constant process at 10 requests/s" in note.message
    assert "sharded by request" in note.message
