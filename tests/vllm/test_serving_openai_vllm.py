"""Engine openai against a real vLLM server on CPU, managed by the run (``builtin:tiny-llama``):
a measured Poisson load end to end, and a server killed mid-run (failed run with the cause,
records kept, no process left)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import pytest

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.exceptions import InferenceError
from llm_energy_measure.orchestration import run_experiment

MAX_TOKENS = 16


def _config(**load: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "config_name": "vllm-served", "engine": "openai",
        "model": {"name": "builtin:tiny-llama", "precision": "float32"},
        "server": {"engine": "vllm", "startup_timeout_s": 600, "stop_grace_s": 10},
        "vllm": {"kv_cache_space_gib": 1, "max_model_len": 512},
        "load": {"arrival": "poisson", "rate_per_s": 4, "num_requests": 12,
                 "warmup_requests": 2, **load},
        "prompts": {"source": "builtin", "num_prompts": 12, "max_input_tokens": 64},
        "decoder": {"preset": "benchmark", "max_new_tokens": MAX_TOKENS},
        "energy": {"baseline": {"duration_s": 1.0}},
        "slo": {"ttft_ms": {"p99": 10_000}, "itl_ms": {"p50": 5_000}},
    })


def _vllm_servers() -> list[psutil.Process]:
    """The vLLM servers this test process started (other tests may run their own)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "vllm.entrypoints.openai.api_server" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_managed_vllm_server_under_poisson_load(tmp_path: Path) -> None:
    result = run_experiment(_config(), experiment_id="v1", results_dir=tmp_path).aggregated
    assert result is not None and result.serving is not None
    s = result.serving
    assert s.managed_server and s.requests_ok == 12 and s.requests_failed == 0
    assert s.token_count_method == "usage"
    assert s.output_length.extensions == ("ignore_eos", "min_tokens")
    assert s.output_length.honoured is True
    assert result.inference.output_tokens == 12 * MAX_TOKENS
    # vLLM's own counters over the window equal ours exactly.
    assert s.server is not None and s.server.mismatches == ()
    assert s.server.counts["generation_tokens"] == 12 * MAX_TOKENS
    assert s.server.counts["requests_ok"] == 12
    assert s.send_lag is not None and s.whole.output_tokens == 12 * MAX_TOKENS
    if result.energy is not None:  # an estimate on a machine without counters, and says so
        assert s.whole.energy_estimated == result.energy.estimated
        assert s.attribution is not None
        total = sum(r.energy_j or 0.0 for r in result_requests(tmp_path, "v1"))
        assert total == pytest.approx(s.whole.energy_j, rel=1e-6)
    assert s.slo is not None and s.slo.met and s.slo.requests_meeting == 12
    lines = (tmp_path / "raw" / "v1" / "requests_0.jsonl").read_text().splitlines()
    assert len(lines) == 12
    assert _gone(int(result.engine.details["server_pid"])) and _vllm_servers() == []


def result_requests(results: Path, exp_id: str) -> list[object]:
    from llm_energy_measure.results import FileSystemRepository

    (raw,) = FileSystemRepository(results).load_all_raw(exp_id)
    return list(raw.requests)


def test_vllm_server_killed_mid_run(tmp_path: Path) -> None:
    config = _config(arrival="concurrency", rate_per_s=None, concurrency=4, num_requests=400)
    group: list[int] = []

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage == "measuring" and done >= 5 and not group:
            (server,) = _vllm_servers()
            group.extend([server.pid, *(c.pid for c in server.children(recursive=True))])
            os.kill(server.pid, signal.SIGKILL)

    with pytest.raises(InferenceError, match="exited with code -9 during the run"):
        run_experiment(config, experiment_id="v2", results_dir=tmp_path,
                       on_progress=on_progress)
    assert group and all(_gone(pid) for pid in group) and _vllm_servers() == []
    state = json.loads((tmp_path / "state" / "v2.json").read_text())
    assert state["status"] == "failed" and "exited with code -9" in json.dumps(state)
    lines = (tmp_path / "raw" / "v2" / "requests_0.jsonl").read_text().splitlines()
    assert sum(1 for line in lines if json.loads(line)["status"] == "ok") >= 5
