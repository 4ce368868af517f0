"""Engine llama_cpp without llama-cpp-python: its config section, refusals, and the pure
parts (Llama kwargs, the server command, sampling arguments, EOS suppression, GGUF model
facts, the tokenizer adapter). The engine against the real library is tested in
tests/llama_cpp (skipped where llama-cpp-python is not installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_energy_measure.config import ExperimentConfig, config_hash, validate_config
from llm_energy_measure.core.arch_spec import arch_spec_from_config
from llm_energy_measure.core.engines import create_engine
from llm_energy_measure.core.engines.llama_cpp import (
    LlamaCppEngine,
    LlamaCppTokenizer,
    describe_gguf,
    flops_config,
    llama_cpp_installed,
    llama_cpp_server_command,
    llama_kwargs,
    sampling_kwargs,
    suppress_eog,
)
from llm_energy_measure.core.model_source import ModelSource
from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError, ModelLoadError

GGUF = {"model": {"name": "/models/m.Q4_1.gguf"}}


def _error(data: dict[str, object]) -> str:
    with pytest.raises(ConfigurationError) as info:
        validate_config(data, "x.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


def _config(**changes: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"engine": "llama_cpp", **GGUF, **changes})


def test_unknown_llama_cpp_option_is_refused_naming_the_allowed_ones() -> None:
    message = _error({"engine": "llama_cpp", **GGUF, "llama_cpp": {"n_parallel": 4}})
    assert message.startswith("x.yaml: unknown key 'llama_cpp.n_parallel' (allowed: n_ctx, ")
    assert "n_gpu_layers" in message and "flash_attn" in message


def test_engine_llama_cpp_needs_a_gguf_model() -> None:
    assert _error({"engine": "llama_cpp"}) == (
        "x.yaml: engine 'llama_cpp' runs GGUF files: model.name 'builtin:tiny-llama' is not "
        "a .gguf file or gguf: alias (or set model.gguf_file for a folder or Hub repo)")
    for model in ({"name": "gguf:smollm2-135m-instruct"}, {"name": "org/repo",
                                                          "gguf_file": "m.gguf"}):
        assert validate_config({"engine": "llama_cpp", "model": model}).engine == "llama_cpp"


@pytest.mark.parametrize(("data", "fragment"), [
    ({"launch": {"num_processes": 2}}, "use llama_cpp.n_threads"),
    ({"quantization": {"load_in_4bit": True}}, "the GGUF file's own quantization"),
    ({"sharding": {"strategy": "device_map"}}, "use llama_cpp.n_gpu_layers"),
    ({"model": {"name": "m.gguf", "precision": "bfloat16"}}, "leave model.precision"),
    ({"model": {"name": "m.gguf", "attn_implementation": "eager"}}, "llama_cpp.flash_attn"),
    ({"inference": {"torch_compile": True}}, "inference.torch_compile"),
    ({"inference": {"cache_implementation": "static"}}, "llama_cpp.n_ctx tokens"),
    ({"traffic": {"enabled": True}}, "traffic simulation is not supported"),
    ({"model": {"name": "m.gguf", "device": "cuda"}}, "needs llama_cpp.n_gpu_layers"),
    ({"model": {"name": "m.gguf", "device": "cpu"}, "llama_cpp": {"n_gpu_layers": -1}},
     "set n_gpu_layers to 0"),
])
def test_transformers_only_settings_are_refused_with_engine_llama_cpp(
    data: dict[str, object], fragment: str
) -> None:
    assert fragment in _error({"engine": "llama_cpp", **GGUF, **data})


def test_llama_cpp_option_values_are_checked() -> None:
    assert "llama_cpp.n_gpu_layers" in _error(
        {"engine": "llama_cpp", **GGUF, "llama_cpp": {"n_gpu_layers": -2}})
    assert "llama_cpp.n_threads" in _error(
        {"engine": "llama_cpp", **GGUF, "llama_cpp": {"n_threads": 0}})


def test_llama_cpp_section_enters_the_hash_only_with_engine_llama_cpp() -> None:
    # The default config's hash is what it was before the section existed.
    assert config_hash(ExperimentConfig()) == "5dadb8ff644f3fe6"
    tuned = {"llama_cpp": {"n_threads": 3}}
    assert config_hash(ExperimentConfig.model_validate(tuned)) == "5dadb8ff644f3fe6"
    assert config_hash(_config(**tuned)) != config_hash(_config())


def test_create_engine_knows_llama_cpp() -> None:
    assert isinstance(create_engine("llama_cpp"), LlamaCppEngine)


def test_a_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_energy_measure.core.engines import llama_cpp as module

    monkeypatch.setattr(module, "llama_cpp_installed", lambda: False)
    with pytest.raises(MissingExtraError) as info:
        LlamaCppEngine().load(_config())
    assert str(info.value) == ("engine 'llama_cpp' needs the 'llama-cpp-python' package: "
                               'pip install "llm-energy-measure[llama-cpp]"')
    assert LlamaCppEngine().version() is None


def test_a_folder_named_llama_cpp_is_not_the_library(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    if llama_cpp_installed():
        pytest.skip("llama-cpp-python is installed here")
    # tests/llama_cpp itself is such a folder: Python would import it as a namespace package.
    (tmp_path / "llama_cpp").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not llama_cpp_installed()


# --- mappings to the bindings' arguments -----------------------------------------------------


def test_llama_kwargs_pass_the_section_and_the_seed() -> None:
    config = _config(seed=7, llama_cpp={"n_ctx": 1024, "n_threads": 2, "n_batch": 64,
                                        "flash_attn": True})
    assert llama_kwargs(config, Path("/m/x.gguf"), 7) == {
        "model_path": "/m/x.gguf", "n_ctx": 1024, "n_batch": 64, "n_threads": 2,
        "n_threads_batch": None, "n_gpu_layers": 0, "flash_attn": True, "seed": 7,
        "verbose": False,
    }


def test_server_command_resolves_the_model_and_passes_the_section(tmp_path: Path) -> None:
    model = tmp_path / "m.Q4_1.gguf"
    model.write_bytes(b"GGUF")
    config = ExperimentConfig.model_validate({
        "engine": "llama_cpp", "seed": 3, "model": {"name": str(model)},
        "llama_cpp": {"n_ctx": 1024, "n_threads": 2, "n_batch": 128, "n_gpu_layers": -1,
                      "flash_attn": True},
    })
    assert llama_cpp_server_command(config, 8123, "/venv/bin/python") == [
        "/venv/bin/python", "-m", "llama_cpp.server", "--model", str(model),
        "--host", "127.0.0.1", "--port", "8123", "--n_ctx", "1024", "--n_batch", "128",
        "--n_gpu_layers", "-1", "--flash_attn", "True", "--seed", "3",
        "--model_alias", str(model), "--n_threads", "2",
    ]
    # The served model's name is endpoint.model when set (else model.name, as configured).
    named = config.model_copy(update={"endpoint": config.endpoint.model_copy(
        update={"model": "smol"})})
    command = llama_cpp_server_command(named, 1, "python")
    assert command[command.index("--model_alias") + 1] == "smol"
    default = llama_cpp_server_command(
        config.model_copy(update={"llama_cpp": config.llama_cpp.model_copy(
            update={"n_threads": None, "flash_attn": False})}), 1, "python")
    assert "--n_threads" not in default and default[default.index("--flash_attn") + 1] == "False"


def test_server_command_refuses_a_model_that_is_not_a_local_gguf_file(tmp_path: Path) -> None:
    config = _config(model={"name": str(tmp_path / "absent.gguf")})
    with pytest.raises(ModelLoadError, match="does not exist"):
        llama_cpp_server_command(config, 1, "python")


def test_sampling_kwargs_greedy_and_sampling() -> None:
    greedy = ExperimentConfig.model_validate({"decoder": {"preset": "benchmark"}}).decoder
    assert sampling_kwargs(greedy) == {
        "temp": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "typical_p": 1.0,
        "repeat_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0}
    sampling = ExperimentConfig.model_validate({"decoder": {
        "mode": "sampling", "temperature": 0.7, "top_p": 0.9, "top_k": 50, "min_p": 0.05,
        "repetition_penalty": 1.1}}).decoder
    kw = sampling_kwargs(sampling)
    assert (kw["temp"], kw["top_k"], kw["top_p"], kw["min_p"], kw["repeat_penalty"]) == (
        0.7, 50, 0.9, 0.05, 1.1)


def test_suppress_eog_bans_end_tokens_until_the_minimum_is_reached() -> None:
    import numpy as np

    processor = suppress_eog([2, 5], prompt_tokens=3, min_new_tokens=2)
    for generated in (0, 1):  # choosing tokens 1 and 2: banned
        scores = np.zeros(8, dtype=np.single)
        out = processor(np.zeros(3 + generated, dtype=np.intc), scores)
        assert np.isneginf(out[[2, 5]]).all() and np.isfinite(np.delete(out, [2, 5])).all()
    scores = np.zeros(8, dtype=np.single)
    assert np.isfinite(processor(np.zeros(5, dtype=np.intc), scores)).all()  # token 3: free


# --- model facts from GGUF metadata ----------------------------------------------------------

#: The metadata of the SmolLM2-135M-Instruct Q4_1 file (as Llama.metadata gives it).
SMOLLM2 = {
    "general.architecture": "llama", "general.file_type": "3", "llama.block_count": "30",
    "llama.context_length": "8192", "llama.embedding_length": "576",
    "llama.feed_forward_length": "1536", "llama.attention.head_count": "9",
    "llama.attention.head_count_kv": "3", "llama.vocab_size": "49152",
    "llama.rope.dimension_count": "64",
}


def test_describe_gguf_reads_architecture_and_quantized_size() -> None:
    source = ModelSource("gguf", "/m", "m.Q4_1.gguf", Path("/m/m.Q4_1.gguf"))
    info = describe_gguf(SMOLLM2, name="gguf:x", source=source, filename="m.Q4_1.gguf",
                         num_parameters=134_515_008, weight_bytes=96_576_768,
                         file_bytes=98_362_432, n_vocab=49152)
    assert (info.model_type, info.num_layers, info.hidden_size, info.num_attention_heads,
            info.num_kv_heads, info.head_dim, info.intermediate_size, info.vocab_size,
            info.max_position_embeddings) == ("llama", 30, 576, 9, 3, 64, 1536, 49152, 8192)
    assert (info.dtype, info.weight_bytes, info.source) == ("Q4_1", 96_576_768, "gguf")
    quant = info.quantization
    assert (quant.method, quant.bits) == ("gguf", 4)
    assert quant.details["bits_per_weight"] == pytest.approx(8 * 96_576_768 / 134_515_008,
                                                             abs=1e-3)
    assert quant.details["file_bytes"] == 98_362_432
    # The analytic FLOPs model reads the same facts as from the Hugging Face config.
    spec = arch_spec_from_config(flops_config(SMOLLM2, info), num_parameters=134_515_008)
    assert (spec.family, spec.num_layers, spec.num_kv_heads, spec.head_dim, spec.gated_mlp,
            spec.confidence) == ("llama", 30, 3, 64, True, "high")


def test_unknown_or_sliding_window_architectures_get_no_flops_config() -> None:
    source = ModelSource("gguf", "/m", "g.gguf", Path("/m/g.gguf"))
    gemma = {k.replace("llama.", "gemma3."): v for k, v in SMOLLM2.items()}
    gemma["general.architecture"] = "gemma3"
    info = describe_gguf(gemma, name="g", source=source, filename="g.gguf",
                         num_parameters=10, weight_bytes=5, file_bytes=6, n_vocab=None)
    assert info.model_type == "gemma3" and flops_config(gemma, info) is None
    sliding = {**SMOLLM2, "llama.attention.sliding_window": "4096"}
    assert flops_config(sliding, info) is None


class _Bindings:
    """tokenize/detokenize of a toy vocabulary: one token per character, BOS 0 first."""

    def tokenize(self, text: bytes, add_bos: bool, special: bool) -> list[int]:
        return ([0] if add_bos else []) + [ord(c) for c in text.decode()]

    def detokenize(self, ids: list[int], prev: object, special: bool) -> bytes:
        return "".join(chr(i) for i in ids if i != 0 or special).encode()


def test_tokenizer_adapter_counts_and_truncates_as_core_prompts_expects() -> None:
    from llm_energy_measure.core.prompts import count_tokens, truncate_prompts
    from llm_energy_measure.core.types import Prompt

    b = _Bindings()
    tok = LlamaCppTokenizer(b.tokenize, b.detokenize, 256, special_ids=[0], eos_token_id=0)
    assert count_tokens(["abc", "hello"], tok) == [4, 6]  # BOS included
    assert tok("abc", add_special_tokens=False)["input_ids"] == [97, 98, 99]
    assert tok.decode([0, 104, 105]) == "hi" and len(tok) == 256
    prompts, cut, counts = truncate_prompts([Prompt(0, "abcdefgh")], tok, 5)
    assert (prompts[0].text, cut, counts) == ("abcd", 1, [5])


# --- the example configs ---------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "configs" / "examples"


def test_llama_cpp_example_is_the_smollm2_q4_1_file_on_cpu_with_its_texts_kept() -> None:
    from llm_energy_measure.config import load_config

    config = load_config(EXAMPLES / "smollm2-llama-cpp.yaml")
    assert (config.engine, config.model.name, config.model.device) == (
        "llama_cpp", "gguf:smollm2-135m-instruct", "cpu")
    assert config.inference.save_outputs and config.decoder.fixed_length
    assert (config.llama_cpp.n_gpu_layers, config.batching.batch_size) == (0, 1)


def test_gguf_engines_study_example_sweeps_both_engines_over_one_workload() -> None:
    from llm_energy_measure.config.study import load_study_config
    from llm_energy_measure.orchestration.study.expansion import base_config_data, plan_study

    path = EXAMPLES / "study-engines-gguf.yaml"
    study = load_study_config(path)
    data, source = base_config_data(study, path)
    plan = plan_study(study, data, base_source=source)
    assert [p.label for p in plan.points] == ["engine=transformers", "engine=llama_cpp"]
    assert all(p.valid for p in plan.points) and len(plan.runs) == 4
    tf, lc = plan.configs["p000"], plan.configs["p001"]
    assert (tf.engine, lc.engine) == ("transformers", "llama_cpp")
    assert tf.model_dump(exclude={"engine"}) == lc.model_dump(exclude={"engine"})
    assert lc.model.name == "gguf:smollm2-135m-instruct" and lc.decoder.fixed_length
    # The llama_cpp section changes nothing engine transformers measures.
    threads = lc.llama_cpp.model_copy(update={"n_threads": 7})
    assert config_hash(tf) == config_hash(tf.model_copy(update={"llama_cpp": threads}))
