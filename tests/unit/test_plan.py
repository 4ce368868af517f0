"""The dry-run memory estimate: weights + KV cache of the largest batch + 20 %."""

from __future__ import annotations

import pytest

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.orchestration.plan import memory_estimate, weight_bytes_per_param

transformers = pytest.importorskip("transformers")


def _config(**quantization: bool) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "model": {"precision": "float16"},
        "prompts": {"max_input_tokens": 1024},
        "decoder": {"max_new_tokens": 1024},
        "batching": {"batch_size": 32},
        "quantization": quantization,
    })


def test_bytes_per_weight_follow_precision_then_quantization() -> None:
    assert weight_bytes_per_param(_config()) == 2.0
    assert weight_bytes_per_param(ExperimentConfig()) == 4.0  # float32 default
    assert weight_bytes_per_param(_config(load_in_8bit=True)) == 1.0
    assert weight_bytes_per_param(_config(load_in_4bit=True)) == 0.5


def test_memory_estimate_of_a_known_architecture() -> None:
    # 2 layers x 2 KV heads x head_dim 16 x (K and V) x 2 bytes = 256 bytes per token;
    # x 2048 tokens x batch 32 = 16 MiB = 0.015625 GiB. Weights: 2**30 params x 2 bytes = 2 GiB.
    hf_config = transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000,
    )
    estimate = memory_estimate(_config(), hf_config, num_parameters=2**30)
    assert estimate["weights"] == "2.000 GiB"
    assert estimate["kv_cache_largest_batch"] == "0.016 GiB"
    assert estimate["estimated_peak"] == "2.419 GiB"  # (2 + 0.015625) x 1.2
    assert estimate["basis"] == "weights + KV cache for batch 32 x 2048 tokens, + 20% margin"
