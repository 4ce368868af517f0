"""Engine vllm without vLLM: its config section, refusals, and the pure mappings to vLLM's
arguments (LLM kwargs, environment, SamplingParams, per-request records). The engine against
the real library is tested in tests/vllm (its own environment)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from llm_energy_measure.config import ExperimentConfig, config_hash, validate_config
from llm_energy_measure.core.engines import create_engine
from llm_energy_measure.core.engines.vllm import (
    VllmEngine,
    engine_environment,
    llm_kwargs,
    request_record,
    sampling_kwargs,
    submission_waves,
    vllm_installed,
)
from llm_energy_measure.core.model_source import ModelSource
from llm_energy_measure.core.types import Prompt
from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError


def _error(data: dict[str, object]) -> str:
    with pytest.raises(ConfigurationError) as info:
        validate_config(data, "x.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_vllm_option_is_refused_naming_the_allowed_ones() -> None:
    message = _error({"engine": "vllm", "vllm": {"swap_space": 4}})
    assert message.startswith("x.yaml: unknown key 'vllm.swap_space' (allowed: max_model_len, ")
    assert "kv_cache_space_gib" in message and "wave_size" in message


def test_several_processes_are_refused_with_engine_vllm() -> None:
    message = _error({"engine": "vllm", "launch": {"num_processes": 2}})
    assert message == (
        "x.yaml: launch.num_processes > 1 (or num_machines > 1) is not supported with engine "
        "'vllm': vLLM manages its own workers; use vllm.tensor_parallel_size (or "
        "vllm.pipeline_parallel_size) to use several GPUs")
    # The same launch with engine transformers is fine.
    assert validate_config({"launch": {"num_processes": 2}}).launch.num_processes == 2


@pytest.mark.parametrize(("data", "fragment"), [
    ({"quantization": {"load_in_4bit": True}}, "use vllm.quantization"),
    ({"sharding": {"strategy": "device_map"}}, "use vllm.tensor_parallel_size"),
    ({"inference": {"torch_compile": True}}, "unless vllm.enforce_eager"),
    ({"traffic": {"enabled": True}}, "traffic simulation is not supported"),
    ({"model": {"name": "x.gguf"}}, "GGUF models are not supported"),
])
def test_transformers_only_settings_are_refused_with_engine_vllm(
    data: dict[str, object], fragment: str
) -> None:
    assert fragment in _error({"engine": "vllm", **data})


def test_vllm_option_values_are_checked() -> None:
    assert "vllm.quantization: 'int3' is not one of awq, " in _error(
        {"engine": "vllm", "vllm": {"quantization": "int3"}})
    assert _error({"engine": "vllm", "vllm": {"submission": "waves"}}) == (
        "x.yaml: vllm.wave_size is required when vllm.submission is 'waves'")
    assert "only read when vllm.submission is 'waves'" in _error(
        {"engine": "vllm", "vllm": {"wave_size": 4}})
    assert "vllm.gpu_memory_utilization" in _error(
        {"engine": "vllm", "vllm": {"gpu_memory_utilization": 1.5}})


def test_vllm_section_enters_the_hash_only_with_engine_vllm() -> None:
    # The default config's hash is what it was before the section existed.
    assert config_hash(ExperimentConfig()) == "5dadb8ff644f3fe6"
    tuned = {"vllm": {"max_num_seqs": 3}}
    assert config_hash(ExperimentConfig.model_validate(tuned)) == "5dadb8ff644f3fe6"
    plain = ExperimentConfig.model_validate({"engine": "vllm"})
    assert config_hash(ExperimentConfig.model_validate({"engine": "vllm", **tuned})) != \
        config_hash(plain)


# --- mappings to vLLM's arguments ------------------------------------------------------------


def test_llm_kwargs_pass_every_set_option_and_leave_the_rest_to_vllm() -> None:
    config = ExperimentConfig.model_validate({
        "engine": "vllm", "seed": 7, "model": {"precision": "bfloat16"},
        "vllm": {"max_model_len": 1024, "max_num_seqs": 16, "enable_prefix_caching": False,
                 "kv_cache_space_gib": 2, "tensor_parallel_size": 2, "enforce_eager": True},
    })
    kwargs = llm_kwargs(config, ModelSource("local", "/m"))
    assert kwargs == {
        "model": "/m", "dtype": "bfloat16", "seed": 7, "trust_remote_code": False,
        "tensor_parallel_size": 2, "pipeline_parallel_size": 1, "enforce_eager": True,
        "disable_log_stats": False, "max_model_len": 1024, "max_num_seqs": 16,
        "enable_prefix_caching": False, "kv_cache_memory_bytes": 2 * 1024**3,
    }
    hub = ModelSource("hub", "org/m", revision="abc", hub_repo="org/m")
    assert llm_kwargs(config, hub)["revision"] == "abc"


def test_engine_environment_in_process_on_cpu_and_vllm_default_on_gpu() -> None:
    v = ExperimentConfig.model_validate({"engine": "vllm", "vllm": {"kv_cache_space_gib": 1}}).vllm
    assert engine_environment(v, "cpu") == {
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    assert engine_environment(v, "cuda") == {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    forced = v.model_copy(update={"multiprocessing": True})
    assert engine_environment(forced, "cpu")["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"


def test_sampling_kwargs_greedy_fixed_length_and_sampling() -> None:
    greedy = ExperimentConfig.model_validate({"decoder": {"preset": "benchmark"}}).decoder
    kw = sampling_kwargs(greedy, 16, 16, 42, detokenize=False)
    assert kw == {"n": 1, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0,
                  "repetition_penalty": 1.0, "max_tokens": 16, "min_tokens": 16,
                  "ignore_eos": True, "seed": 42, "detokenize": False}
    sampling = ExperimentConfig.model_validate({"decoder": {
        "mode": "sampling", "temperature": 0.7, "top_p": 0.9, "top_k": 50, "min_p": 0.05,
        "repetition_penalty": 1.1}}).decoder
    kw = sampling_kwargs(sampling, 32, 0, 3, detokenize=True)
    assert (kw["temperature"], kw["top_p"], kw["top_k"], kw["min_p"]) == (0.7, 0.9, 50, 0.05)
    assert (kw["repetition_penalty"], kw["max_tokens"], kw["min_tokens"]) == (1.1, 32, 0)
    assert kw["ignore_eos"] is False


def test_submission_waves_split_in_order() -> None:
    prompts = [Prompt(i, f"p{i}") for i in range(5)]
    all_at_once = ExperimentConfig.model_validate({"engine": "vllm"})
    assert submission_waves(prompts, all_at_once) == [prompts]
    waves = ExperimentConfig.model_validate(
        {"engine": "vllm", "vllm": {"submission": "waves", "wave_size": 2}})
    assert [[p.request_id for p in w] for w in submission_waves(prompts, waves)] == [
        [0, 1], [2, 3], [4]]
    assert VllmEngine().batching(waves) == (
        "continuous batching by vLLM's scheduler (waves of 2 prompts, one generate call each)")


def _output(ids: list[int], n_out: int, metrics: object) -> SimpleNamespace:
    completion = SimpleNamespace(token_ids=list(range(n_out)), text="t")
    return SimpleNamespace(prompt_token_ids=ids, outputs=[completion], metrics=metrics)


def test_request_record_from_engine_timestamps() -> None:
    # Window opened at 100.0, generate called at 100.5; first token at 100.75, last (5th)
    # at 101.75, generate returned at 102.0: TTFT 0.25, TPOT (101.75 - 100.75) / 4 = 0.25,
    # completion 1.25, e2e (what the caller sees: the call's return) 1.5.
    metrics = SimpleNamespace(first_token_ts=100.75, last_token_ts=101.75)
    record, timed = request_record(
        Prompt(3, "x"), _output([1, 2, 3], 5, metrics), submitted=100.5, returned=102.0,
        t0=100.0, cycle=1, save_text=False)
    assert timed
    assert (record.request_id, record.cycle, record.input_tokens, record.output_tokens) == (
        3, 1, 3, 5)
    assert record.submitted_s == pytest.approx(0.5)
    assert record.ttft_s == pytest.approx(0.25)
    assert record.tpot_s == pytest.approx(0.25)
    assert record.completion_s == pytest.approx(1.25)
    assert record.e2e_s == pytest.approx(1.5)
    assert record.token_gaps_s == ()  # vLLM's offline metrics have no per-token times
    assert record.output_text is None


def test_request_record_without_metrics_leaves_ttft_and_tpot_null() -> None:
    record, timed = request_record(
        Prompt(0, "x"), _output([1], 4, None), submitted=10.0, returned=12.5, t0=10.0,
        cycle=0, save_text=True)
    assert not timed
    assert record.ttft_s is None and record.tpot_s is None and record.completion_s is None
    assert record.e2e_s == pytest.approx(2.5)  # the generate call's duration
    assert record.output_text == "t"
    one_token = SimpleNamespace(first_token_ts=11.0, last_token_ts=11.0)
    record, _ = request_record(Prompt(0, "x"), _output([1], 1, one_token), submitted=10.0,
                               returned=12.0, t0=10.0, cycle=0, save_text=False)
    assert (record.ttft_s, record.tpot_s, record.completion_s, record.e2e_s) == (
        1.0, None, 1.0, 2.0)


@pytest.mark.skipif(vllm_installed(), reason="vllm is installed")
def test_missing_vllm_names_the_install_command() -> None:
    engine = create_engine("vllm")
    with pytest.raises(MissingExtraError) as info:
        engine.load(ExperimentConfig.model_validate({"engine": "vllm"}))
    assert str(info.value) == (
        "engine 'vllm' needs the 'vllm' package: pip install \"llm-energy-measure[vllm]\"")
    assert engine.version() is None


@pytest.mark.skipif(vllm_installed(), reason="vllm is installed")
def test_a_folder_named_vllm_on_the_path_is_not_vllm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tests/vllm itself is such a folder: Python would import it as a namespace package.
    (tmp_path / "vllm").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not vllm_installed()
    with pytest.raises(MissingExtraError):
        VllmEngine().load(ExperimentConfig.model_validate({"engine": "vllm"}))


def test_engines_study_example_sweeps_both_engines_over_one_workload() -> None:
    from llm_energy_measure.config.study import load_study_config
    from llm_energy_measure.orchestration.study.expansion import base_config_data, plan_study

    path = Path(__file__).resolve().parents[2] / "configs" / "examples" / "study-engines.yaml"
    study = load_study_config(path)
    data, source = base_config_data(study, path)
    plan = plan_study(study, data, base_source=source)
    assert [p.label for p in plan.points] == ["engine=transformers", "engine=vllm"]
    assert all(p.valid for p in plan.points) and len(plan.runs) == 4
    tf, vl = plan.configs["p000"], plan.configs["p001"]
    assert (tf.engine, vl.engine) == ("transformers", "vllm")
    assert tf.model_dump(exclude={"engine"}) == vl.model_dump(exclude={"engine"})
    assert (vl.model.name, vl.prompts.num_prompts, vl.decoder.max_new_tokens) == (
        "builtin:tiny-llama", 16, 16)
    assert vl.decoder.fixed_length and vl.vllm.kv_cache_space_gib == 1


def test_gpu_check_engines_runs_one_workload_through_both_engines() -> None:
    import argparse
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check_engines.py"
    spec = importlib.util.spec_from_file_location("gpu_check_engines", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = argparse.Namespace(model="m", precision="bfloat16", device="cuda", prompts=128,
                              batch_size=32, new_tokens=128, gpu_memory_utilization=0.5)
    tf, vl = (ExperimentConfig.model_validate(module.experiment_config(args, e))
              for e in ("transformers", "vllm"))
    assert tf.model_dump(exclude={"engine", "config_name"}) == vl.model_dump(
        exclude={"engine", "config_name"})
    assert vl.energy.backend == "nvml" and vl.decoder.fixed_length
    assert (vl.vllm.gpu_memory_utilization, vl.vllm.enforce_eager) == (0.5, False)
