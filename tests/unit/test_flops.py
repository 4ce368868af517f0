"""Analytic FLOPs: hand-computed cases, closed forms vs step loops, config mapping."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

import pytest

from llm_energy_measure.core.arch_spec import (
    ArchSpec,
    arch_spec_from_config,
    arch_spec_from_model_info,
)
from llm_energy_measure.core.flops import (
    decode_layer_keys,
    estimate_flops,
    forward_flops,
    sequence_flops,
)
from llm_energy_measure.core.types import SequenceShape
from llm_energy_measure.domain import ModelInfo
from llm_energy_measure.exceptions import ConfigurationError


def tiny_spec(**overrides: object) -> ArchSpec:
    fields: dict[str, object] = dict(
        family="llama",
        num_layers=2,
        hidden_size=8,
        num_heads=2,
        num_kv_heads=1,
        head_dim=4,
        intermediate_size=16,
        vocab_size=32,
        gated_mlp=True,
    )
    fields.update(overrides)
    return ArchSpec(**fields)  # type: ignore[arg-type]


def test_tiny_spec_by_hand() -> None:
    spec = tiny_spec()
    # Per token and layer: q 2*8*(2*4)=128, k 2*8*(1*4)=64, v 64, o 128 -> 384;
    # gated MLP 3 * 2*8*16 = 768. Two layers: 2 * (384 + 768) = 2304.
    assert spec.attention_projection_flops == 384
    assert spec.dense_mlp_flops == 768
    assert spec.linear_flops_per_token == 2304
    assert spec.lm_head_flops_per_position == 2 * 8 * 32 == 512
    assert spec.attention_flops_per_query_key == 4 * 2 * 4 == 32

    # n = 3 prompt tokens, m = 3 generated tokens.
    # prefill: 3 * 2304 + LM head on the last position 512 + attention 2 layers * 32 * 3 * 3
    #        = 6912 + 512 + 576 = 8000
    # decode: 2 steps of (2304 + 512) = 5632, attending over 4 then 5 keys:
    #         2 layers * 32 * (4 + 5) = 576 -> 6208
    prefill, decode = sequence_flops(spec, 3, 3)
    assert (prefill, decode) == (8000, 6208)

    result = estimate_flops(spec, [SequenceShape(3, 3)])
    assert result.prefill_flops == 8000
    assert result.decode_flops == 6208
    assert result.total_flops == 14208
    assert result.flops_per_output_token == pytest.approx(14208 / 3)
    assert result.method == "analytic"
    assert result.confidence == "high"
    assert result.architecture == "llama"


def test_prefill_logits_all_positions() -> None:
    spec = tiny_spec()
    # With logits for all 3 prompt positions the LM head costs 2 more positions (2 * 512).
    last, _ = sequence_flops(spec, 3, 3, "last")
    every, _ = sequence_flops(spec, 3, 3, "all")
    assert every - last == 2 * 512


def test_plain_mlp_and_plain_attention() -> None:
    spec = tiny_spec(gated_mlp=False, num_kv_heads=2)
    # k, v projections now 2*8*8 each -> 4 * 128 = 512; plain MLP 2 * 2*8*16 = 512.
    assert spec.attention_projection_flops == 512
    assert spec.dense_mlp_flops == 512


def test_moe_layer_by_hand() -> None:
    spec = tiny_spec(
        num_experts=4,
        experts_per_token=2,
        expert_intermediate_size=6,
        num_moe_layers=1,
        shared_expert_intermediate_size=5,
        shared_expert_gate=True,
    )
    # router 2*8*4 = 64; 2 experts * 3 * 2*8*6 = 576; shared 3 * 2*8*5 = 240; gate 2*8 = 16
    assert spec.moe_mlp_flops == 64 + 576 + 240 + 16
    # one dense layer (384 + 768) + one MoE layer (384 + 896)
    assert spec.linear_flops_per_token == 384 + 768 + 384 + 896


def test_embedding_projection_by_hand() -> None:
    spec = tiny_spec(embed_proj_dim=4)
    # project_in + project_out: 2 * (2*4*8) = 128 more per token; LM head in the 4-dim space.
    assert spec.linear_flops_per_token == 2304 + 128
    assert spec.lm_head_flops_per_position == 2 * 4 * 32


def _decode_by_loop(spec: ArchSpec, n: int, m: int) -> int:
    """Brute force: one forward pass per decode step, KV cache of n + i - 1 past tokens."""
    return sum(
        forward_flops(spec, 1, past_tokens=n + i - 1, logits_positions=1) for i in range(1, m)
    )


def _keys_by_loop(spec: ArchSpec, n: int, m: int) -> int:
    window = spec.sliding_window or 0
    full = spec.num_layers - spec.num_sliding_layers
    return sum(full * (n + i) + spec.num_sliding_layers * min(n + i, window) for i in range(1, m))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"sliding_window": 7, "num_sliding_layers": 1},
        {"sliding_window": 3, "num_sliding_layers": 2},
        {"sliding_window": 50, "num_sliding_layers": 2},
    ],
)
def test_closed_form_matches_step_loop(overrides: dict[str, object]) -> None:
    spec = tiny_spec(**overrides)
    rng = random.Random(7)
    cases = [(1, 1), (1, 2), (5, 1), (6, 2), (2, 9)]
    cases += [(rng.randint(1, 40), rng.randint(1, 40)) for _ in range(40)]
    for n, m in cases:
        prefill, decode = sequence_flops(spec, n, m)
        assert prefill == forward_flops(spec, n, 0, logits_positions=1)
        assert decode == _decode_by_loop(spec, n, m), (n, m)
        assert decode_layer_keys(spec, n, m) == _keys_by_loop(spec, n, m), (n, m)


def test_sliding_window_caps_decode_attention() -> None:
    full = tiny_spec()
    sliding = tiny_spec(sliding_window=4, num_sliding_layers=2)
    # n = 3, m = 4: steps attend over 4, 5, 6 keys; capped at 4 -> 4, 4, 4 (2 layers each).
    assert decode_layer_keys(full, 3, 4) == 2 * (4 + 5 + 6)
    assert decode_layer_keys(sliding, 3, 4) == 2 * (4 + 4 + 4)
    # Prefill attention is the full n x n on sliding layers too (eager kernel).
    assert sequence_flops(full, 3, 4)[0] == sequence_flops(sliding, 3, 4)[0]


def test_estimate_sums_sequences_and_skips_empty_outputs() -> None:
    spec = tiny_spec()
    one = estimate_flops(spec, [SequenceShape(3, 3)])
    other = estimate_flops(spec, [SequenceShape(5, 2)])
    both = estimate_flops(spec, [SequenceShape(3, 3), SequenceShape(5, 2), SequenceShape(4, 0)])
    assert both.total_flops == one.total_flops + other.total_flops
    assert both.flops_per_output_token == pytest.approx(both.total_flops / 5)
    empty = estimate_flops(spec, [])
    assert empty.total_flops == 0
    assert empty.flops_per_output_token is None


def test_hundred_thousand_sequences_are_fast() -> None:
    spec = ArchSpec("llama", 32, 4096, 32, 8, 128, 14336, 128256, True)
    rng = random.Random(0)
    seqs = [SequenceShape(rng.randint(1, 4000), rng.randint(1, 1000)) for _ in range(100_000)]
    start = time.perf_counter()
    result = estimate_flops(spec, seqs)
    assert time.perf_counter() - start < 3.0
    assert result.total_flops > 0


def test_parameter_estimate_for_unknown_family() -> None:
    config = SimpleNamespace(model_type="mamba", hidden_size=64)
    spec = arch_spec_from_config(config, num_parameters=1000)
    assert not spec.analytic
    result = estimate_flops(spec, [SequenceShape(10, 5), SequenceShape(4, 1)])
    # 2 FLOPs per parameter per processed token: (10 + 4) prompt, (4 + 0) decode steps.
    assert result.prefill_flops == 2 * 1000 * 14
    assert result.decode_flops == 2 * 1000 * 4
    assert result.method == "parameter_estimate"
    assert result.confidence == "low"
    with pytest.raises(ValueError, match="num_parameters"):
        arch_spec_from_config(config)


def test_missing_config_key_names_it() -> None:
    config = SimpleNamespace(
        model_type="llama", hidden_size=8, num_hidden_layers=2, num_attention_heads=2
    )
    with pytest.raises(ConfigurationError, match="intermediate_size"):
        arch_spec_from_config(config)


def test_llama2_7b_flops_per_token_equal_twice_matmul_parameters() -> None:
    transformers = pytest.importorskip("transformers")
    spec = arch_spec_from_config(transformers.LlamaConfig())  # defaults are Llama-2-7B
    # Llama-2-7B has 6,738,415,616 parameters: embedding 32000*4096 = 131,072,000 and norms
    # 65 * 4096 = 266,240 do no matmul; every other weight (LM head included) does one
    # multiply-add per token.
    matmul_params = 6_738_415_616 - 131_072_000 - 266_240
    assert spec.linear_flops_per_token + spec.lm_head_flops_per_position == 2 * matmul_params


def test_configs_of_known_families() -> None:
    tf = pytest.importorskip("transformers")

    gpt2 = arch_spec_from_config(tf.GPT2Config(n_embd=64, n_layer=3, n_head=4))
    assert (gpt2.intermediate_size, gpt2.num_kv_heads, gpt2.gated_mlp) == (256, 4, False)

    falcon = arch_spec_from_config(tf.FalconConfig())
    assert falcon.num_kv_heads == 1  # multi-query
    assert falcon.intermediate_size == 4 * 4544
    falcon_new = arch_spec_from_config(
        tf.FalconConfig(new_decoder_architecture=True, num_kv_heads=8)
    )
    assert falcon_new.num_kv_heads == 8

    opt = arch_spec_from_config(tf.OPTConfig(hidden_size=1024, word_embed_proj_dim=512))
    assert opt.embed_proj_dim == 512
    assert arch_spec_from_config(tf.OPTConfig()).embed_proj_dim is None

    mixtral = arch_spec_from_config(tf.MixtralConfig())
    assert (mixtral.num_experts, mixtral.experts_per_token, mixtral.num_moe_layers) == (8, 2, 32)
    assert mixtral.expert_intermediate_size == 14336

    qwen3_moe = arch_spec_from_config(tf.Qwen3MoeConfig(mlp_only_layers=[0, 1]))
    assert qwen3_moe.num_moe_layers == 24 - 2
    assert qwen3_moe.expert_intermediate_size == 768

    gemma2 = arch_spec_from_config(tf.Gemma2Config())
    assert gemma2.num_sliding_layers == gemma2.num_layers // 2
    assert gemma2.sliding_window == 4096
    assert gemma2.head_dim == 256

    qwen2 = arch_spec_from_config(tf.Qwen2Config())
    assert qwen2.num_sliding_layers == 0  # use_sliding_window is off by default


def test_spec_from_model_info() -> None:
    info = ModelInfo(
        name="m",
        source="local",
        model_type="llama",
        num_parameters=123,
        num_layers=2,
        hidden_size=8,
        num_attention_heads=2,
        num_kv_heads=1,
        head_dim=4,
        intermediate_size=16,
        vocab_size=32,
        dtype="float16",
        weight_bytes=246,
    )
    spec = arch_spec_from_model_info(info)
    assert spec.linear_flops_per_token == tiny_spec().linear_flops_per_token
    assert spec.confidence == "medium"
    assert estimate_flops(spec, [SequenceShape(3, 3)]).total_flops == 14208

    gpt2 = arch_spec_from_model_info(
        info.model_copy(update={"model_type": "gpt2", "intermediate_size": None})
    )
    assert gpt2.intermediate_size == 32 and not gpt2.gated_mlp

    for fallback in ("mixtral", "mamba", None):
        spec = arch_spec_from_model_info(info.model_copy(update={"model_type": fallback}))
        assert not spec.analytic and spec.confidence == "low"
        assert estimate_flops(spec, [SequenceShape(3, 3)]).total_flops == 2 * 123 * (3 + 2)


def test_invalid_specs_are_refused() -> None:
    with pytest.raises(ValueError):
        tiny_spec(num_heads=0)
    with pytest.raises(ValueError):
        tiny_spec(num_sliding_layers=1)  # no window
    with pytest.raises(ValueError):
        tiny_spec(num_moe_layers=1)  # no experts
    with pytest.raises(ValueError):
        sequence_flops(tiny_spec(), -1, 2)
