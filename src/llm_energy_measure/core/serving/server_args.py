"""Command line and environment of a managed server, from the experiment config.

Pure: nothing here starts a process or reads the environment. Flag names are those of vLLM's
``vllm.entrypoints.openai.api_server`` (its ``EngineArgs`` parser, ``vllm/engine/arg_utils.py``
of vLLM 0.1x-0.3x): a setting left None in the ``vllm`` section is not passed, so vLLM's own
default applies, as with engine ``vllm``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm_energy_measure.config.models import ExperimentConfig

_GIB = 1 << 30

#: The ``command`` placeholders ``command_server`` replaces (nothing else in braces is read).
PLACEHOLDERS = ("{port}", "{host}", "{model}")


def served_model_name(config: ExperimentConfig) -> str:
    """The model name the managed server answers to: ``endpoint.model``, else
    ``model.name`` (what requests then send as ``model``)."""
    return config.endpoint.model or config.model.name


def vllm_server_command(
    config: ExperimentConfig,
    *,
    model_path: str,
    host: str,
    port: int,
    python: str,
    revision: str | None = None,
) -> list[str]:
    """``python -m vllm.entrypoints.openai.api_server`` for ``config``, then ``server.args``.

    ``model_path``: the local folder or Hub id vLLM loads (``revision``, when given, pins the
    Hub commit). dtype from ``model.precision``, seed from ``seed``; each set field of the
    ``vllm`` section maps to its flag (``kv_cache_space_gib`` to ``--kv-cache-memory-bytes``
    in bytes). ``vllm.multiprocessing``, ``submission`` and ``wave_size`` concern the
    in-process engine only: the server always runs its engine core in a process of its own
    and schedules requests as they arrive.
    """
    v = config.vllm
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model_path,
        "--served-model-name", served_model_name(config),
        "--host", host,
        "--port", str(port),
        "--dtype", config.model.precision,
        "--seed", str(config.seed),
        "--tensor-parallel-size", str(v.tensor_parallel_size),
        "--pipeline-parallel-size", str(v.pipeline_parallel_size),
    ]
    if revision is not None:
        command += ["--revision", revision]
    if config.model.trust_remote_code:
        command.append("--trust-remote-code")
    valued = {
        "--max-model-len": v.max_model_len,
        "--gpu-memory-utilization": v.gpu_memory_utilization,
        "--max-num-seqs": v.max_num_seqs,
        "--max-num-batched-tokens": v.max_num_batched_tokens,
        "--quantization": v.quantization,
        "--kv-cache-memory-bytes": (
            v.kv_cache_space_gib * _GIB if v.kv_cache_space_gib is not None else None
        ),
    }
    for flag, value in valued.items():
        if value is not None:
            command += [flag, str(value)]
    if v.enable_prefix_caching is not None:
        command.append(
            "--enable-prefix-caching" if v.enable_prefix_caching else "--no-enable-prefix-caching"
        )
    if v.enforce_eager:
        command.append("--enforce-eager")
    server = config.server
    if server is not None:
        command += server.args
    return command


def managed_command(config: ExperimentConfig, *, model_path: str, host: str,
                    port: int) -> list[str]:
    """The command that starts the configured server."""
    server = config.server
    assert server is not None
    python = server.python or sys.executable
    if server.engine == "vllm":
        return vllm_server_command(config, model_path=model_path, host=host,
                                               port=port, python=python)
    if server.engine == "llama_cpp":
        from llm_energy_measure.core.engines.llama_cpp import llama_cpp_server_command

        return llama_cpp_server_command(config, port, python)
    assert server.command is not None
    return command_server(server.command, host=host, port=port, model=model_path)


def command_server(command: Sequence[str], host: str, port: int, model: str) -> list[str]:
    """``server.command`` (engine ``command``) with ``{port}``, ``{host}`` and ``{model}``
    replaced in every argument; other braces are left as they are (e.g. JSON arguments)."""
    values = {"{port}": str(port), "{host}": host, "{model}": model}
    out = []
    for arg in command:
        for placeholder, value in values.items():
            arg = arg.replace(placeholder, value)
        out.append(arg)
    return out


def server_env(config: ExperimentConfig) -> dict[str, str]:
    """Environment variables to add for the managed server (not the whole environment).

    For engine ``vllm`` with ``vllm.kv_cache_space_gib`` set, ``VLLM_CPU_KVCACHE_SPACE``
    (GiB) too: vLLM's CPU build reads it and would otherwise let a stray value in the
    user's environment override ``--kv-cache-memory-bytes`` (the GPU build ignores it).
    Then ``server.env``, which wins.
    """
    env: dict[str, str] = {}
    server = config.server
    if server is None:
        return env
    if server.engine == "vllm" and config.vllm.kv_cache_space_gib is not None:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(config.vllm.kv_cache_space_gib)
    env.update(server.env)
    return env
