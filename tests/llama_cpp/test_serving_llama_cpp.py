"""Serving mode against a second real server: llama-cpp-python's OpenAI-compatible server,
started, measured and stopped by the run (``server.engine: llama_cpp``) with the SmolLM2 Q4_1
GGUF file; fixed-length outputs through ``ignore_eos``/``min_tokens``."""

from __future__ import annotations

from pathlib import Path

import psutil

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.orchestration import run_experiment


def test_managed_llama_cpp_server_under_load(tmp_path: Path) -> None:
    config = ExperimentConfig.model_validate({
        "config_name": "served-llama-cpp", "engine": "openai",
        "model": {"name": "gguf:smollm2-135m-instruct"},
        "server": {"engine": "llama_cpp", "startup_timeout_s": 120},
        "llama_cpp": {"n_ctx": 1024},
        "load": {"arrival": "concurrency", "concurrency": 1, "num_requests": 3,
                 "warmup_requests": 1},
        "prompts": {"source": "builtin", "num_prompts": 3},
        "decoder": {"preset": "benchmark", "max_new_tokens": 8},
        "inference": {"save_outputs": True},
        "energy": {"backend": "none", "baseline": {"enabled": False}},
    })
    result = run_experiment(config, experiment_id="l1", results_dir=tmp_path).aggregated
    assert result is not None and result.serving is not None
    s = result.serving
    assert s.managed_server and s.requests_ok == 3 and s.requests_failed == 0
    assert "llama_cpp.server" in " ".join(s.server_command)
    assert s.output_length.honoured is True and result.inference.output_tokens == 3 * 8
    assert result.inference.ttft is not None and result.inference.ttft.count == 3
    pid = int(result.engine.details["server_pid"])
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
