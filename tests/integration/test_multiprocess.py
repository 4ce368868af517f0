"""Two processes on CPU (gloo) through accelerate launch, end to end, with known answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.integration.multiprocess_support import (
    MAX_NEW,
    NUM_PROMPTS,
    cli_env,
    load_raws,
    load_state,
    only_experiment,
    request_ids,
    run_cli,
    write_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_process_run(
    tmp_path_factory: pytest.TempPathFactory, session_cache_dir: Path
) -> tuple[Path, str, subprocess.CompletedProcess[str]]:
    base = tmp_path_factory.mktemp("mp")
    cfg = write_config(base, baseline=True)
    results = base / "results"
    out = run_cli("run", str(cfg), "--results-dir", str(results), cache_dir=session_cache_dir)
    assert out.returncode == 0, out.stderr[-3000:]
    return results, only_experiment(results), out


def _aggregated(results: Path, exp_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((results / "aggregated" / f"{exp_id}.json").read_text())
    return data


def test_each_rank_writes_its_file_and_marker_and_state_completes(two_process_run) -> None:  # type: ignore[no-untyped-def]
    results, exp_id, _ = two_process_run
    raw_dir = results / "raw" / exp_id
    assert sorted(p.name for p in raw_dir.iterdir()) == [
        ".completed_0", ".completed_1", "process_0.json", "process_1.json"]
    state = load_state(results, exp_id)
    assert state["status"] == "completed" and state["aggregated"] is True
    assert state["num_processes"] == 2
    assert {r: p["status"] for r, p in state["processes"].items()} == {
        "0": "completed", "1": "completed"}
    assert (results / "state" / f"{exp_id}.launch" / "config.json").is_file()


def test_prompts_are_split_between_ranks_each_request_once(two_process_run) -> None:  # type: ignore[no-untyped-def]
    results, exp_id, _ = two_process_run
    raws = load_raws(results, exp_id)
    assert [r["process_index"] for r in raws] == [0, 1]
    assert all(r["num_processes"] == 2 for r in raws)
    assert all(len(r["requests"]) > 0 for r in raws)  # both ranks measured something
    assert request_ids(raws) == list(range(NUM_PROMPTS))


def test_aggregated_tokens_are_sums_and_throughput_uses_the_wall_window(two_process_run) -> None:  # type: ignore[no-untyped-def]
    results, exp_id, _ = two_process_run
    raws = load_raws(results, exp_id)
    agg = _aggregated(results, exp_id)
    inf = agg["inference"]
    assert inf["output_tokens"] == NUM_PROMPTS * MAX_NEW  # fixed-length mode
    assert inf["output_tokens"] == sum(r["inference"]["output_tokens"] for r in raws)
    assert inf["input_tokens"] == sum(r["inference"]["input_tokens"] for r in raws)
    assert inf["num_requests"] == NUM_PROMPTS
    start = min(r["timestamps"]["start"] for r in raws)
    end = max(r["timestamps"]["end"] for r in raws)
    assert agg["aggregation"]["temporal_overlap"] is True
    assert agg["timestamps"]["duration_s"] == pytest.approx(end - start, rel=1e-9)
    assert inf["output_tokens_per_s"] == pytest.approx(inf["output_tokens"] / (end - start),
                                                       rel=1e-6)


def test_windows_open_at_a_barrier_so_they_overlap(two_process_run) -> None:  # type: ignore[no-untyped-def]
    results, exp_id, _ = two_process_run
    raws = load_raws(results, exp_id)
    starts = [r["timestamps"]["start"] for r in raws]
    ends = [r["timestamps"]["end"] for r in raws]
    # Both windows open right after one barrier: their starts differ by far less than either
    # window lasts (each rank runs several batches of real generation).
    assert max(starts) - min(starts) < 0.5 * min(e - s for s, e in zip(starts, ends, strict=True))


def test_host_energy_is_measured_by_local_rank_0_and_counted_once(two_process_run) -> None:  # type: ignore[no-untyped-def]
    results, exp_id, _ = two_process_run
    raws = load_raws(results, exp_id)
    agg = _aggregated(results, exp_id)
    by_rank = {r["process_index"]: r for r in raws}
    assert by_rank[0]["local_rank"] == 0 and by_rank[1]["local_rank"] == 1
    host0 = [d for d in (by_rank[0]["energy"] or {}).get("devices", []) if d["scope"] == "host"]
    host1 = [d for d in (by_rank[1]["energy"] or {}).get("devices", []) if d["scope"] == "host"]
    if not host0:
        pytest.skip("no host-level energy domain on this machine")
    assert host1 == []  # rank 1 (local rank 1) does not measure the host
    assert agg["aggregation"]["duplicate_devices"] == []
    ids = [d["device_id"] for d in agg["energy"]["devices"]]
    assert len(ids) == len(set(ids))
    assert agg["energy"]["total_energy_j"] == pytest.approx(
        sum(d["energy_j"] for d in agg["energy"]["devices"]))
    assert agg["energy"]["total_energy_j"] == pytest.approx(by_rank[0]["energy"]["total_energy_j"])
    # Rank 1 had nothing of its own to measure: not reported as missing energy.
    codes = {w["code"] for w in agg["warnings"]}
    assert "energy_missing" not in codes
    assert agg["energy"]["energy_per_output_token_j"] == pytest.approx(
        agg["energy"]["total_energy_j"] / agg["inference"]["output_tokens"])


def test_each_rank_gets_its_share_of_cpu_threads(two_process_run) -> None:  # type: ignore[no-untyped-def]
    results, exp_id, _ = two_process_run
    expected = max(1, (os.cpu_count() or 1) // 2)
    for raw in load_raws(results, exp_id):
        assert raw["environment"]["torch_num_threads"] == expected
        assert raw["model"]["sharding"] == "none"


def test_cli_prints_per_process_and_raw_tables(two_process_run, session_cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    results, exp_id, out = two_process_run
    assert "process  host" in out.stdout  # the per-process table after the summary
    shown = run_cli("results", "show", exp_id, "--raw", "--results-dir", str(results),
                    cache_dir=session_cache_dir)
    assert shown.returncode == 0, shown.stderr
    assert "== process 0" in shown.stdout and "== process 1" in shown.stdout


def test_direct_accelerate_launch_broadcasts_one_id(
    tmp_path: Path, session_cache_dir: Path
) -> None:
    cfg = write_config(tmp_path, name="direct", backend="null")
    results = tmp_path / "results"
    port = _free_port()
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(port),
           "-m", "llm_energy_measure.orchestration.launch.rank",
           "--config", str(cfg), "--results-dir", str(results)]
    out = subprocess.run(cmd, env=cli_env(session_cache_dir), capture_output=True, text=True,
                         timeout=180, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    (exp_dir,) = list((results / "raw").iterdir())  # one id for both ranks
    raws = load_raws(results, exp_dir.name)
    assert [r["process_index"] for r in raws] == [0, 1]
    assert {r["experiment_id"] for r in raws} == {exp_dir.name}
    assert request_ids(raws) == list(range(NUM_PROMPTS))
    assert (results / "aggregated" / f"{exp_dir.name}.json").is_file()
    assert load_state(results, exp_dir.name)["status"] == "completed"


def test_two_machines_on_loopback(tmp_path: Path, session_cache_dir: Path) -> None:
    """Two `run` invocations as machine 0 and 1 (one process each) sharing a results dir."""
    cfg = write_config(tmp_path, name="nodes", num_processes=1, backend="null")
    results = tmp_path / "results"
    port = _free_port()
    common = ["--results-dir", str(results), "--experiment-id", "nodes-test",
              "--set", "launch.num_machines=2", "--set", "launch.main_process_ip=127.0.0.1",
              "--set", f"launch.main_process_port={port}"]
    env = cli_env(session_cache_dir)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "llm_energy_measure.cli", "run", str(cfg), *common,
             "--set", f"launch.machine_rank={m}"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for m in (0, 1)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    if any(p.returncode != 0 for p in procs) and "rendezvous" in "".join(o[1] for o in outs):
        pytest.skip("torch refused two machines on one host: " + outs[1][1][-500:])
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    raws = load_raws(results, "nodes-test")
    assert [r["process_index"] for r in raws] == [0, 1]
    assert [r["local_rank"] for r in raws] == [0, 0]  # each machine's only process
    assert request_ids(raws) == list(range(NUM_PROMPTS))
    agg = json.loads((results / "aggregated" / "nodes-test.json").read_text())
    assert agg["inference"]["output_tokens"] == NUM_PROMPTS * MAX_NEW
    assert agg["aggregation"]["expected_processes"] == 2


def _free_port() -> int:
    from llm_energy_measure.orchestration.launch.accelerate import free_port

    return free_port()
