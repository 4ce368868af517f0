"""Serving mode with a managed server (the scripted streaming server started by the run as
`server.engine: command`): start, measure, stop; a server killed mid-run; Ctrl+C.

No orphan is ever left: every check looks the server's PID up after the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from tests.integration.multiprocess_support import cli_command, cli_env, load_state

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.exceptions import InferenceError
from llm_energy_measure.orchestration import run_experiment

pytest.importorskip("httpx")
REPO = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, str(REPO / "tests" / "fakes" / "streaming_server.py"), "--forever",
          "--port", "{port}", "--ttft-s", "0.01", "--gap-s", "0.01", "--tokens", "4"]


def _config(num_requests: int = 6) -> dict[str, object]:
    return {
        "config_name": "managed", "engine": "openai",
        "model": {"name": "builtin:tiny-llama"},
        "server": {"engine": "command", "command": SERVER, "startup_timeout_s": 30,
                   "stop_grace_s": 5, "env": {"PYTHONPATH": str(REPO)}},
        "endpoint": {"model": "fake-model", "connect_timeout_s": 2, "read_timeout_s": 10},
        "load": {"arrival": "concurrency", "concurrency": 2, "num_requests": num_requests,
                 "warmup_requests": 1},
        "prompts": {"source": "builtin", "num_prompts": 4},
        "decoder": {"max_new_tokens": 4},
        "energy": {"backend": "none", "baseline": {"enabled": False}},
    }


def _server_pids(parent: int | None = None) -> list[int]:
    """The scripted servers started by ``parent`` (default: this process), however deep
    (other tests on the machine may run their own)."""
    try:
        children = psutil.Process(parent).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if "--forever" in cmdline and any("streaming_server.py" in c for c in cmdline):
            found.append(child.pid)
    return found


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_managed_server_is_started_measured_and_stopped(tmp_path: Path) -> None:
    config = ExperimentConfig.model_validate(_config())
    report = run_experiment(config, experiment_id="m1", results_dir=tmp_path)
    result = report.aggregated
    assert result is not None and result.serving is not None
    s = result.serving
    assert s.managed_server and s.requests_ok == 6 and s.endpoint.startswith("http://127.0.0.1:")
    assert "streaming_server.py" in " ".join(s.server_command)
    assert result.inference.output_tokens == 24  # usage: 4 tokens each
    pid = int(result.engine.details["server_pid"])
    assert _gone(pid)
    log = tmp_path / "logs" / "m1.server.log"
    assert "PORT" in log.read_text()


def test_server_killed_mid_run_fails_the_run_and_keeps_the_records(tmp_path: Path) -> None:
    config = ExperimentConfig.model_validate(_config(num_requests=400))
    killed: list[int] = []

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage == "measuring" and done >= 3 and not killed:
            (pid,) = _server_pids()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with pytest.raises(InferenceError, match="exited with code -9 during the run"):
        run_experiment(config, experiment_id="m2", results_dir=tmp_path,
                       on_progress=on_progress)
    assert killed and _gone(killed[0]) and _server_pids() == []
    state = load_state(tmp_path, "m2")
    assert state["status"] == "failed"
    assert "exited with code -9" in json.dumps(state)
    lines = (tmp_path / "raw" / "m2" / "requests_0.jsonl").read_text().splitlines()
    assert len(lines) >= 3
    assert sum(1 for line in lines if json.loads(line)["status"] == "ok") >= 3


def test_ctrl_c_saves_a_partial_result_and_stops_the_server(tmp_path: Path) -> None:
    config_file = tmp_path / "serve.json"
    config_file.write_text(json.dumps(_config(num_requests=2000)))
    results = tmp_path / "results"
    proc = subprocess.Popen(
        cli_command("run", str(config_file), "--results-dir", str(results),
                    "--experiment-id", "m3"),
        env=cli_env(tmp_path / "cache"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    records = results / "raw" / "m3" / "requests_0.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if records.exists() and len(records.read_text().splitlines()) >= 5:
            break
        time.sleep(0.1)
    server = _server_pids(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert server and all(_gone(pid) for pid in server)
    raw = json.loads((results / "raw" / "m3" / "process_0.json").read_text())
    assert raw["serving"]["partial"] is True and raw["serving"]["stop_reason"] == "stopped"
    assert raw["serving"]["requests_ok"] >= 5
    assert any(w["code"] == "partial" for w in raw["warnings"])
