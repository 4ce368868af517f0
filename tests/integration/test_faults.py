"""Fault injection on a 2-process CPU run: a rank killed, hung or out of memory, Ctrl+C on the
launcher, then `run --resume`. Faults come from LLM_ENERGY_MEASURE_FAULT (orchestration.faults).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.integration.multiprocess_support import (
    MAX_NEW,
    NUM_PROMPTS,
    cli_command,
    cli_env,
    load_raws,
    load_state,
    only_experiment,
    request_ids,
    run_cli,
    write_config,
)

from llm_energy_measure.state import pid_is_alive

pytestmark = pytest.mark.slow


def _beats(results: Path, exp_id: str) -> dict[int, dict[str, object]]:
    folder = results / "state" / f"{exp_id}.launch"
    return {int(p.name.split("_")[1].split(".")[0]): json.loads(p.read_text())
            for p in folder.glob("rank_*.heartbeat.json")}


def _no_rank_alive(results: Path, exp_id: str) -> bool:
    return not any(pid_is_alive(int(b["pid"])) for b in _beats(results, exp_id).values())  # type: ignore[call-overload]


def _resume_and_check(results: Path, exp_id: str, cache: Path) -> dict[str, object]:
    out = run_cli("run", "--resume", exp_id, "--results-dir", str(results), cache_dir=cache)
    assert out.returncode == 0, out.stderr[-3000:]
    raws = load_raws(results, exp_id)
    assert [r["process_index"] for r in raws] == [0, 1]
    assert request_ids(raws) == list(range(NUM_PROMPTS))  # none lost, none duplicated
    agg: dict[str, object] = json.loads((results / "aggregated" / f"{exp_id}.json").read_text())
    assert agg["inference"]["output_tokens"] == NUM_PROMPTS * MAX_NEW  # type: ignore[index]
    state = load_state(results, exp_id)
    assert state["status"] == "completed" and state["error"] is None
    return agg


def test_sigkill_of_one_rank_stops_the_other_and_resume_completes(
    tmp_path: Path, session_cache_dir: Path
) -> None:
    cfg = write_config(tmp_path, timeout_s=60)
    results = tmp_path / "results"
    out = run_cli("run", str(cfg), "--results-dir", str(results), cache_dir=session_cache_dir,
                  fault="rank=1:after=window_open:kind=sigkill")
    ended = time.time()
    assert out.returncode == 1
    exp_id = only_experiment(results)
    assert f"--resume {exp_id}" in out.stderr
    state = load_state(results, exp_id)
    assert state["status"] == "failed"
    assert state["error"].startswith("rank 1:") and "died" in state["error"]
    assert state["processes"]["1"]["status"] == "failed"
    assert state["processes"]["0"]["status"] in ("pending", "completed")
    assert not (results / "aggregated" / f"{exp_id}.json").exists()
    # The survivor was stopped within bounded time (far below process_timeout_s=60).
    killed_at = float(_beats(results, exp_id)[1]["time_s"])  # type: ignore[arg-type]
    assert ended - killed_at < 20
    assert _no_rank_alive(results, exp_id)

    _resume_and_check(results, exp_id, session_cache_dir)


def test_hung_rank_is_named_finished_rank_is_kept_and_only_the_missing_one_reruns(
    tmp_path: Path, session_cache_dir: Path
) -> None:
    cfg = write_config(tmp_path, timeout_s=15)  # above the model load (no heartbeat inside)
    results = tmp_path / "results"
    started = time.time()
    out = run_cli("run", str(cfg), "--results-dir", str(results), cache_dir=session_cache_dir,
                  fault="rank=1:after=window_close:kind=hang")
    assert out.returncode == 1
    assert time.time() - started < 90
    exp_id = only_experiment(results)
    state = load_state(results, exp_id)
    assert state["status"] == "failed" and state["error"].startswith("rank 1: hung")
    assert state["processes"]["0"]["status"] == "completed"
    raw0 = results / "raw" / exp_id / "process_0.json"
    assert raw0.is_file() and (results / "raw" / exp_id / ".completed_0").is_file()
    assert not (results / "raw" / exp_id / "process_1.json").exists()
    assert not (results / "aggregated" / f"{exp_id}.json").exists()
    assert _no_rank_alive(results, exp_id)

    refused = run_cli("aggregate", exp_id, "--results-dir", str(results),
                      cache_dir=session_cache_dir)
    assert refused.returncode != 0 and "1" in refused.stderr and "missing" in refused.stderr

    kept = raw0.read_bytes()
    agg = _resume_and_check(results, exp_id, session_cache_dir)
    assert raw0.read_bytes() == kept  # rank 0 was not measured again
    raws = {r["process_index"]: r for r in load_raws(results, exp_id)}
    assert raws[1]["local_rank"] == 0  # the resumed rank ran alone: it measured its host
    # Host energy of the two separate windows is summed, each reading once.
    host = [{d["device_id"]: d["energy_j"] for d in (raws[r]["energy"] or {}).get("devices", [])
             if d["scope"] == "host"} for r in (0, 1)]
    if host[0] and host[1]:
        devices = {d["device_id"]: d["energy_j"] for d in agg["energy"]["devices"]}  # type: ignore[index]
        for device_id in host[0]:
            assert devices[device_id] == pytest.approx(host[0][device_id] + host[1][device_id])


def test_out_of_memory_is_recorded_as_the_cause(tmp_path: Path, session_cache_dir: Path) -> None:
    cfg = write_config(tmp_path, backend="null")
    results = tmp_path / "results"
    out = run_cli("run", str(cfg), "--results-dir", str(results), cache_dir=session_cache_dir,
                  fault="rank=0:after=window_open:kind=oom")
    assert out.returncode == 1
    exp_id = only_experiment(results)
    state = load_state(results, exp_id)
    assert state["status"] == "failed"
    assert state["error"].startswith("rank 0: out of memory")
    assert "out of memory" in state["processes"]["0"]["error"]
    assert state["processes"]["1"]["status"] == "pending"
    assert _no_rank_alive(results, exp_id)

    unknown = run_cli("run", "--resume", "nope-20260101T000000Z-abcdef", "--results-dir",
                      str(results), cache_dir=session_cache_dir)
    assert unknown.returncode == 2 and "no such experiment" in unknown.stderr


def test_ctrl_c_stops_cleanly_saves_state_and_resume_completes(
    tmp_path: Path, session_cache_dir: Path
) -> None:
    cfg = write_config(tmp_path, backend="null")
    results = tmp_path / "results"
    proc = subprocess.Popen(
        cli_command("run", str(cfg), "--results-dir", str(results)),
        env=cli_env(session_cache_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # both ranks started
        states = list((results / "state").glob("*.json")) if (results / "state").is_dir() else []
        if states and len(_beats(results, states[0].stem)) == 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    exp_id = only_experiment(results)
    state = load_state(results, exp_id)
    assert state["status"] == "interrupted"
    assert all(p["status"] in ("pending", "completed") for p in state["processes"].values())
    assert _no_rank_alive(results, exp_id)

    _resume_and_check(results, exp_id, session_cache_dir)
    again = run_cli("run", "--resume", exp_id, "--results-dir", str(results),
                    cache_dir=session_cache_dir)
    assert again.returncode == 2 and "already completed" in again.stderr
