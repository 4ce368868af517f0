"""Output tokens stop at the first EOS: a tiny Llama forced to emit EOS at a chosen step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.engines.transformers import run_inference
from llm_energy_measure.core.timing import count_output_tokens, latencies
from llm_energy_measure.core.types import LoadedModel, Prompt
from llm_energy_measure.domain import ModelInfo

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

EOS_STEP = 3  # the 3rd generated token is EOS for the chosen rows
EOS_ROWS = (0, 2)  # rows of each batch that stop early
MAX_NEW = 8


class EosAtStep(transformers.LlamaForCausalLM):
    """Tiny Llama whose EOS logit is -1e4 everywhere except for EOS_ROWS at step EOS_STEP,
    where it is +1e4. Every lm_head call of one generate is one step (the prefill is step 1).

    The logits are edited by a forward hook on lm_head, so ``forward`` keeps its signature
    (generate inspects it to enable the KV cache).
    """

    step = 0

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self.step = 0
        return super().generate(*args, **kwargs)

    def boost_eos(self, _module: Any, _inputs: Any, logits: Any) -> Any:
        self.step += 1
        eos = self.config.eos_token_id
        logits[:, -1, eos] = -1e4
        if self.step == EOS_STEP:
            rows = [r for r in EOS_ROWS if r < logits.shape[0]]
            logits[rows, -1, eos] = 1e4
        return logits


@pytest.fixture(scope="module")
def eos_model(tiny_model_dir: Path) -> LoadedModel:
    model = EosAtStep.from_pretrained(tiny_model_dir).eval()
    model.lm_head.register_forward_hook(model.boost_eos)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.padding_side = "left"
    info = ModelInfo(name="eos-at-step", source="local", num_parameters=1, dtype="float32",
                     weight_bytes=0)
    return LoadedModel(model=model, tokenizer=tokenizer, info=info, device="cpu")


PROMPTS = [Prompt(i, t) for i, t in enumerate(
    ["Hello there", "A much longer prompt about rivers and mountains", "x", "What is energy?",
     "Short", "Another one"]
)]


def _config(**decoder: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "batching": {"batch_size": 4},
        "decoder": {"max_new_tokens": MAX_NEW, **decoder},
        "inference": {"save_outputs": True},
    })


def _expected_tokens(request_id: int) -> int:
    row = request_id % 4
    return EOS_STEP if row in EOS_ROWS else MAX_NEW


def test_rows_stopping_at_eos_count_up_to_it_and_nothing_after(eos_model: LoadedModel) -> None:
    out = run_inference(eos_model, PROMPTS, _config())
    assert [r.output_tokens for r in out.requests] == [_expected_tokens(i) for i in range(6)]
    assert out.output_tokens == 3 * EOS_STEP + 3 * MAX_NEW  # ids 0, 2, 4 stop early
    assert [s.output_tokens for s in out.sequences] == [r.output_tokens for r in out.requests]
    by_id = {r.request_id: r for r in out.requests}
    # same batch (0..3): same first token time; the early row completes earlier but is
    # returned with its batch, so the caller sees the same e2e
    assert by_id[0].ttft_s == by_id[1].ttft_s
    assert by_id[0].completion_s < by_id[1].completion_s  # type: ignore[operator]
    assert by_id[0].e2e_s == by_id[1].e2e_s
    assert by_id[0].completion_s < by_id[0].e2e_s  # type: ignore[operator]
    assert by_id[0].tpot_s is not None and by_id[0].tpot_s > 0


def test_pad_equal_to_eos_still_counts_up_to_first_eos(eos_model: LoadedModel) -> None:
    tok = transformers.AutoTokenizer.from_pretrained(eos_model.tokenizer.name_or_path)
    tok.padding_side = "left"
    tok.pad_token = tok.eos_token
    loaded = LoadedModel(eos_model.model, tok, eos_model.info, "cpu")
    out = run_inference(loaded, PROMPTS, _config())
    assert [r.output_tokens for r in out.requests] == [_expected_tokens(i) for i in range(6)]


def test_output_text_stops_at_eos(eos_model: LoadedModel) -> None:
    tok = eos_model.tokenizer
    out = run_inference(eos_model, PROMPTS[:4], _config())
    enc = tok([p.text for p in PROMPTS[:4]], return_tensors="pt", padding=True)
    ids = eos_model.model.generate(
        **enc, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=tok.pad_token_id
    )[:, enc["input_ids"].shape[1]:]
    # row 0 generated 2 ordinary tokens, then EOS, then padding
    assert ids[0, EOS_STEP - 1].item() == tok.eos_token_id
    assert out.requests[0].output_text == tok.decode(ids[0, : EOS_STEP - 1])
    assert out.requests[1].output_text == tok.decode(ids[1], skip_special_tokens=True)


def test_fixed_length_suppresses_eos(eos_model: LoadedModel) -> None:
    out = run_inference(eos_model, PROMPTS, _config(fixed_length=True))
    assert [r.output_tokens for r in out.requests] == [MAX_NEW] * 6


def test_min_new_tokens_delays_eos(eos_model: LoadedModel) -> None:
    out = run_inference(eos_model, PROMPTS, _config(min_new_tokens=5))
    # EOS is only allowed from the 6th token on, and is then never boosted again
    assert [r.output_tokens for r in out.requests] == [MAX_NEW] * 6


@pytest.mark.parametrize(
    ("generated", "eos", "count"),
    [
        ([5, 6, 2, 3, 3], [2], 3),  # pad 3 after EOS 2
        ([5, 2, 2, 2], [2], 2),  # pad == EOS: first EOS ends it
        ([5, 6, 7], [2], 3),  # no EOS: all tokens
        ([9, 4, 1], [4, 9], 1),  # several EOS ids
        ([], [2], 0),
    ],
)
def test_count_output_tokens(generated: list[int], eos: list[int], count: int) -> None:
    assert count_output_tokens(generated, eos) == count


def test_latencies_by_hand() -> None:
    # A row of 3 tokens in a batch of 4 steps that returned at 11.6 s, submitted at 10.0 s.
    steps = [10.5, 10.7, 10.9, 11.5]
    lat = latencies(steps, 3, submitted_s=10.0, returned_s=11.6)
    assert lat.ttft_s == pytest.approx(0.5)
    assert lat.token_gaps_s == pytest.approx((0.2, 0.2))
    assert lat.tpot_s == pytest.approx(0.2)  # (10.9 - 10.5) / 2
    assert lat.completion_s == pytest.approx(0.9)  # its own last token
    assert lat.e2e_s == pytest.approx(1.6)  # returned with its batch
    one = latencies(steps, 1, submitted_s=10.0, returned_s=11.6)
    assert (one.ttft_s, one.tpot_s, one.token_gaps_s, one.completion_s) == (
        pytest.approx(0.5), None, (), pytest.approx(0.5))
    none = latencies(steps, 0, submitted_s=10.0, returned_s=11.6)
    assert (none.ttft_s, none.tpot_s, none.completion_s) == (None, None, None)
    assert none.e2e_s == pytest.approx(1.6)
