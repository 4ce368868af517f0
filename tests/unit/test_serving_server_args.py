"""The managed server's command line and environment, from the config (flag names checked
against vLLM 0.32's api_server parser; see docs of server_args)."""

from __future__ import annotations

from typing import Any

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.serving.server_args import (
    command_server,
    served_model_name,
    server_env,
    vllm_server_command,
)


def _config(**sections: Any) -> ExperimentConfig:
    data: dict[str, Any] = {"engine": "openai", "model": {"name": "builtin:tiny-llama"},
                            "server": {"engine": "vllm"}}
    data.update(sections)
    return ExperimentConfig.model_validate(data)


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_minimal_vllm_command_leaves_vllm_defaults() -> None:
    command = vllm_server_command(_config(seed=7), model_path="/models/tiny", host="127.0.0.1",
                                  port=8123, python="/py")
    assert command == [
        "/py", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "/models/tiny", "--served-model-name", "builtin:tiny-llama",
        "--host", "127.0.0.1", "--port", "8123", "--dtype", "float32", "--seed", "7",
        "--tensor-parallel-size", "1", "--pipeline-parallel-size", "1",
    ]


def test_every_set_vllm_field_maps_to_its_flag_then_server_args() -> None:
    config = _config(
        model={"name": "org/m", "precision": "bfloat16", "trust_remote_code": True},
        endpoint={"model": "served"},
        vllm={"max_model_len": 512, "gpu_memory_utilization": 0.5, "max_num_seqs": 8,
              "max_num_batched_tokens": 1024, "enable_prefix_caching": False,
              "quantization": "fp8", "tensor_parallel_size": 2, "pipeline_parallel_size": 2,
              "enforce_eager": True, "kv_cache_space_gib": 2},
        server={"engine": "vllm", "args": ["--max-logprobs", "5"]},
    )
    command = vllm_server_command(config, model_path="org/m", host="h", port=1, python="py",
                                  revision="abc123")
    assert _flag(command, "--served-model-name") == "served"
    assert _flag(command, "--dtype") == "bfloat16"
    assert _flag(command, "--revision") == "abc123"
    assert _flag(command, "--max-model-len") == "512"
    assert _flag(command, "--gpu-memory-utilization") == "0.5"
    assert _flag(command, "--max-num-seqs") == "8"
    assert _flag(command, "--max-num-batched-tokens") == "1024"
    assert _flag(command, "--quantization") == "fp8"
    assert _flag(command, "--tensor-parallel-size") == "2"
    assert _flag(command, "--pipeline-parallel-size") == "2"
    assert _flag(command, "--kv-cache-memory-bytes") == str(2 * 1024**3)
    assert "--no-enable-prefix-caching" in command and "--enable-prefix-caching" not in command
    assert "--enforce-eager" in command and "--trust-remote-code" in command
    assert command[-2:] == ["--max-logprobs", "5"]


def test_prefix_caching_on() -> None:
    command = vllm_server_command(_config(vllm={"enable_prefix_caching": True}),
                                  model_path="m", host="h", port=1, python="py")
    assert "--enable-prefix-caching" in command


def test_command_placeholders_are_replaced_and_other_braces_kept() -> None:
    command = ["srv", "--port={port}", "--host", "{host}", "{model}", '{"a": 1}', "{other}"]
    assert command_server(command, "127.0.0.1", 9000, "/m") == [
        "srv", "--port=9000", "--host", "127.0.0.1", "/m", '{"a": 1}', "{other}",
    ]


def test_server_env() -> None:
    assert server_env(_config()) == {}
    assert server_env(_config(engine="transformers", server=None)) == {}
    config = _config(vllm={"kv_cache_space_gib": 3},
                     server={"engine": "vllm", "env": {"A": "1", "VLLM_CPU_KVCACHE_SPACE": "4"}})
    assert server_env(config) == {"VLLM_CPU_KVCACHE_SPACE": "4", "A": "1"}
    assert server_env(_config(vllm={"kv_cache_space_gib": 3})) == {"VLLM_CPU_KVCACHE_SPACE": "3"}
    command = _config(vllm={"kv_cache_space_gib": 3},
                      server={"engine": "command", "command": ["x", "{port}"]})
    assert server_env(command) == {}


def test_served_model_name() -> None:
    assert served_model_name(_config()) == "builtin:tiny-llama"
    assert served_model_name(_config(endpoint={"model": "x"})) == "x"
