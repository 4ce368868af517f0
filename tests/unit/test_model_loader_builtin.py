"""The embedded default model: deterministic build, cache, concurrency, facts."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.builtin_model import (
    BUILTIN_MARKER_FILE,
    TINY_LLAMA_RECIPE,
    build_into,
    builtin_names,
    ensure_builtin_model,
    recipe_hash,
)
from llm_energy_measure.core.model_loader import load_model_tokenizer
from llm_energy_measure.exceptions import ConfigurationError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

def _state_dict_hash(folder: Path) -> str:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().view(-1).numpy().tobytes())
    return digest.hexdigest()


def test_rebuild_gives_identical_weights_and_tokenizer(tmp_path: Path) -> None:
    build_into(tmp_path / "a")
    build_into(tmp_path / "b")
    assert _state_dict_hash(tmp_path / "a") == _state_dict_hash(tmp_path / "b")
    tok_a = (tmp_path / "a" / "tokenizer.json").read_bytes()
    assert tok_a == (tmp_path / "b" / "tokenizer.json").read_bytes()


def test_ensure_caches_under_recipe_hash_and_reuses(tmp_path: Path) -> None:
    folder = ensure_builtin_model("builtin:tiny-llama", cache_dir=tmp_path)
    assert folder == tmp_path / "builtin" / f"tiny-llama-{recipe_hash()}"
    marker = json.loads((folder / BUILTIN_MARKER_FILE).read_text())
    assert marker["random_weights"] is True
    assert marker["recipe_hash"] == recipe_hash()
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_builtin_model("tiny-llama", cache_dir=tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == before
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_recipe_hash_changes_with_recipe() -> None:
    changed = json.loads(json.dumps(TINY_LLAMA_RECIPE))
    changed["init"]["seed"] += 1
    assert recipe_hash(changed) != recipe_hash()


def test_unknown_builtin_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="builtin:tiny-llama") as info:
        ensure_builtin_model("builtin:huge-llama", cache_dir=tmp_path)
    assert "builtin:huge-llama" in str(info.value)
    assert "\n" not in str(info.value)


def test_two_processes_building_at_once_agree(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path;"
        "from llm_energy_measure.core.builtin_model import ensure_builtin_model;"
        "print(ensure_builtin_model('tiny-llama', cache_dir=Path(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    paths = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(paths) == 1
    folder = Path(paths.pop())
    assert (folder / BUILTIN_MARKER_FILE).is_file()
    assert [p.name for p in (tmp_path / "builtin").iterdir() if p.is_dir()] == [folder.name]


def _expected_params() -> int:
    m = TINY_LLAMA_RECIPE["model"]
    hidden, layers, inter = m["hidden_size"], m["num_hidden_layers"], m["intermediate_size"]
    head_dim = hidden // m["num_attention_heads"]
    kv_width = m["num_key_value_heads"] * head_dim
    vocab = TINY_LLAMA_RECIPE["tokenizer"]["vocab_size"]
    attention = 2 * hidden * hidden + 2 * hidden * kv_width  # q, o and k, v
    mlp = 3 * hidden * inter  # gate, up, down
    per_layer = attention + mlp + 2 * hidden  # two RMSNorms
    return 2 * vocab * hidden + layers * per_layer + hidden  # untied embed + head, final norm


def test_model_info_matches_recipe() -> None:
    loaded = load_model_tokenizer(ExperimentConfig())
    info = loaded.info
    m = TINY_LLAMA_RECIPE["model"]
    assert info.name == "builtin:tiny-llama"
    assert info.source == "builtin"
    assert info.random_weights is True
    assert info.revision == recipe_hash()
    assert info.architecture == "LlamaForCausalLM"
    assert info.model_type == "llama"
    assert info.num_layers == m["num_hidden_layers"] == 4
    assert info.hidden_size == 256
    assert info.num_attention_heads == 8
    assert info.num_kv_heads == 4
    assert info.head_dim == 32
    assert info.intermediate_size == 704
    assert info.vocab_size == 4096
    assert info.max_position_embeddings == 2048
    assert info.dtype == "float32"
    assert info.num_parameters == _expected_params() == 5_048_576
    # float32 weights plus the small rotary-embedding buffers
    assert 4 * info.num_parameters <= info.weight_bytes < 4 * info.num_parameters + 1024
    assert info.quantization.method == "none"
    assert info.attn_implementation == "sdpa"
    assert loaded.device == "cpu"
    tok = loaded.tokenizer
    assert tok.padding_side == "left"
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<s>", "</s>", "<pad>")
    assert loaded.warnings == []


def test_precision_float16_halves_weight_bytes() -> None:
    cfg = ExperimentConfig.model_validate({"model": {"precision": "float16"}})
    info = load_model_tokenizer(cfg).info
    assert info.dtype == "float16"
    assert 2 * info.num_parameters <= info.weight_bytes < 2 * info.num_parameters + 1024


def test_small_llama_has_the_layer_shapes_of_smollm2_135m() -> None:
    from transformers import LlamaForCausalLM

    from llm_energy_measure.core.builtin_model import (
        SMALL_LLAMA_RECIPE,
        build_tokenizer,
        llama_config,
    )
    from llm_energy_measure.core.model_loader import count_parameters

    tokenizer = build_tokenizer(SMALL_LLAMA_RECIPE)
    with torch.device("meta"):  # shapes only: nothing allocated
        model = LlamaForCausalLM(llama_config(tokenizer, SMALL_LLAMA_RECIPE))
    # Per layer: q, o 576x576; k, v 576x192 (3 KV heads of 64); gate, up, down 576x1536; two
    # norms of 576. 30 layers, tied 4096x576 embedding, final norm.
    per_layer = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536 + 2 * 576
    assert per_layer == 3_540_096
    assert count_parameters(model) == 30 * per_layer + 4096 * 576 + 576 == 108_562_752
    assert builtin_names() == ["builtin:small-llama", "builtin:tiny-llama"]
