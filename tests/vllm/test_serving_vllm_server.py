"""A real vLLM server (CPU, ``builtin:tiny-llama``) started and stopped by ManagedServer: it
becomes healthy, its /metrics counters match the client's counts exactly over a window
opened after the warm-up, and stopping it leaves none of its processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import psutil

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.builtin_model import ensure_builtin_model
from llm_energy_measure.core.serving.prometheus import cross_check, scrape, server_snapshot
from llm_energy_measure.core.serving.server import ManagedServer, free_port, group_members
from llm_energy_measure.core.serving.server_args import server_env, vllm_server_command


def _complete(client: httpx.Client, base_url: str, prompt: str, max_tokens: int) -> dict:
    response = client.post(f"{base_url}/completions", json={
        "model": "builtin:tiny-llama", "prompt": prompt, "max_tokens": max_tokens,
        "min_tokens": max_tokens, "ignore_eos": True, "temperature": 0.0,
    })
    response.raise_for_status()
    return dict(response.json()["usage"])


def test_managed_vllm_server_metrics_match_the_client(tmp_path: Path) -> None:
    config = ExperimentConfig.model_validate({
        "engine": "openai", "model": {"name": "builtin:tiny-llama", "device": "cpu"},
        "server": {"engine": "vllm", "startup_timeout_s": 600, "stop_grace_s": 10},
        "vllm": {"kv_cache_space_gib": 1, "enforce_eager": True, "max_model_len": 256},
    })
    port = free_port()
    model_path = str(ensure_builtin_model("builtin:tiny-llama"))
    command = vllm_server_command(config, model_path=model_path, host="127.0.0.1", port=port,
                                  python=sys.executable)
    root = f"http://127.0.0.1:{port}"
    server = ManagedServer(command, base_url=f"{root}/v1", health_url=f"{root}/health",
                           log_path=tmp_path / "server.log", env=server_env(config),
                           startup_timeout_s=600, stop_grace_s=10)
    with server, httpx.Client(trust_env=False, timeout=120) as client:
        pids = [server.pid or 0, *(c.pid for c in psutil.Process(server.pid).children(
            recursive=True))]
        _complete(client, server.base_url, "warm up", 4)
        time.sleep(0.5)  # counters are recorded just after the outputs are pushed: no race
        before = server_snapshot(scrape(f"{root}/metrics", 10))
        usages = [_complete(client, server.base_url, f"prompt number {i}", 8) for i in range(3)]
        time.sleep(0.5)
        after = server_snapshot(scrape(f"{root}/metrics", 10))
    figures, problems = cross_check(
        before, after,
        client_prompt_tokens=sum(u["prompt_tokens"] for u in usages),
        client_output_tokens=sum(u["completion_tokens"] for u in usages),
        client_requests_ok=len(usages),
    )
    assert problems == [], problems
    assert figures["generation_tokens"] == 24 and figures["requests_ok"] == 3
    assert {"kv_cache_usage", "running", "waiting", "preemptions"} <= set(figures)
    assert len(pids) >= 2  # the API server and its engine core
    assert group_members(pids[0]) == []
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == "zombie"
               for p in pids)
