"""Studies end to end on the embedded tiny model: every run a real worker process.

Each worker imports torch and loads the model (~3-6 s a run on 2 CPU cores); the workloads
are tiny (2 prompts, 2-3 new tokens, no warm-up, no baseline, null energy backend).
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from llm_energy_measure.cli import app
from llm_energy_measure.state.study_models import StudyManifest

pytestmark = pytest.mark.slow

BASE: dict[str, Any] = {
    "config_name": "study-e2e",
    "model": {"name": "builtin:tiny-llama", "device": "cpu"},
    "prompts": {"source": "builtin", "num_prompts": 2, "max_input_tokens": 32},
    "batching": {"batch_size": 1},
    "decoder": {"preset": "benchmark", "max_new_tokens": 2},
    "warmup": {"runs": 0},
    "energy": {"backend": "null", "baseline": {"enabled": False}},
}


def _study_file(tmp_path: Path, **fields: Any) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"study_name": "e2e", "base": "base.yaml", **fields}))
    return path


def _manifest(results: Path) -> StudyManifest:
    (folder,) = (results / "studies").iterdir()
    return StudyManifest.model_validate_json((folder / "manifest.json").read_bytes())


def _aggregated(results: Path, experiment_id: str | None) -> dict[str, Any]:
    return json.loads((results / "aggregated" / f"{experiment_id}.json").read_text())


def test_two_by_two_sweep_two_cycles_interleaved_through_the_cli(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    study = _study_file(tmp_path, sweep={"batching.batch_size": [1, 2],
                                         "decoder.max_new_tokens": [2, 3]},
                        cycles=2, order="interleaved")
    results = tmp_path / "results"
    out = CliRunner().invoke(app, ["study", "run", str(study), "--results-dir", str(results)])
    assert out.exit_code == 0, out.output
    manifest = _manifest(results)
    runs = sorted(manifest.runs, key=lambda r: r.order_index)
    assert [(r.point_id, r.cycle) for r in runs] == [
        ("p000", 0), ("p001", 0), ("p002", 0), ("p003", 0),
        ("p000", 1), ("p001", 1), ("p002", 1), ("p003", 1)]
    assert [r.status for r in runs] == ["completed"] * 8 and manifest.status == "completed"
    # Runs happened in that order, one at a time.
    for before, after in itertools.pairwise(runs):
        assert before.finished_at is not None and after.started_at is not None
        assert before.finished_at <= after.started_at
    swept = {"p000": (1, 2), "p001": (1, 3), "p002": (2, 2), "p003": (2, 3)}
    for run in runs:
        result = _aggregated(results, run.experiment_id)
        config = result["effective_config"]
        assert (config["batching"]["batch_size"],
                config["decoder"]["max_new_tokens"]) == swept[run.point_id]
        assert result["config_hash"] == manifest.point(run.point_id).config_hash
        assert result["inference"]["output_tokens"] == 2 * swept[run.point_id][1]
    assert len({p.config_hash for p in manifest.points}) == 4
    assert "p003   batching.batch_size=2, decoder.max_new_tokens=3  2" in out.output
    status = CliRunner().invoke(app, ["study", "status", manifest.study_id, "--results-dir",
                                      str(results)])
    assert status.exit_code == 0 and "runs        8 completed" in status.output


def test_killed_study_resumes_without_duplicates_or_losses(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    study = _study_file(tmp_path, sweep={"batching.batch_size": [1, 2]}, cycles=2)
    results = tmp_path / "results"
    log = open(tmp_path / "coordinator.log", "wb")  # noqa: SIM115 - closed below
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "llm_energy_measure.cli", "study", "run", str(study),
         "--results-dir", str(results)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        completed: list[str] = []
        while time.monotonic() < deadline and coordinator.poll() is None:
            try:
                manifest = _manifest(results)
            except (FileNotFoundError, ValueError):
                time.sleep(0.2)
                continue
            completed = [r.experiment_id or "" for r in manifest.runs if r.status == "completed"]
            if len(completed) >= 2:
                break
            time.sleep(0.2)
        assert coordinator.poll() is None, "the study ended before it could be killed"
        assert len(completed) >= 2, (tmp_path / "coordinator.log").read_text()
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=30)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
        log.close()
    killed = _manifest(results)
    assert killed.status == "running"  # the coordinator had no chance to write anything
    assert sum(r.status == "completed" for r in killed.runs) < 4
    mtimes = {eid: (results / "aggregated" / f"{eid}.json").stat().st_mtime_ns
              for eid in completed}
    time.sleep(1.5)  # the orphaned worker (if any) notices within a second and stops
    out = CliRunner().invoke(app, ["study", "resume", killed.study_id, "--results-dir",
                                   str(results)])
    assert out.exit_code == 0, out.output
    final = _manifest(results)
    assert final.status == "completed"
    ids = [r.experiment_id for r in final.runs]
    assert len(set(ids)) == 4 and all(r.status == "completed" for r in final.runs)
    for eid in completed:  # finished before the kill: not run again
        assert (results / "aggregated" / f"{eid}.json").stat().st_mtime_ns == mtimes[eid]
    assert sorted(p.stem for p in (results / "aggregated").glob("*.json")) == sorted(
        str(i) for i in ids)
    for eid in ids:
        assert [p.name for p in (results / "raw" / str(eid)).glob("process_*.json")] == [
            "process_0.json"]
        assert json.loads((results / "state" / f"{eid}.json").read_text())["status"] == (
            "completed")
    rerun = [line for line in out.output.splitlines() if " running (attempt" in line]
    assert len(rerun) == 4 - len(completed)
    assert not [line for line in rerun if any(line.endswith(eid) for eid in completed)]


def test_a_hanging_run_times_out_and_the_study_goes_on(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    # One request arrives at t=0, the next after 1000 s: the first point hangs.
    hang = {"traffic.enabled": True, "traffic.mode": "constant", "traffic.rate_per_s": 0.001}
    study = _study_file(tmp_path, points=[hang, {"decoder.max_new_tokens": 3}],
                        order="sequential", timeout_s=12)
    results = tmp_path / "results"
    started = time.monotonic()
    out = CliRunner().invoke(app, ["study", "run", str(study), "--results-dir", str(results)])
    assert out.exit_code == 1, out.output
    assert time.monotonic() - started < 90
    manifest = _manifest(results)
    hung, healthy = sorted(manifest.runs, key=lambda r: r.order_index)
    assert (hung.point_id, hung.status) == ("p000", "timeout")
    assert hung.error == "no result within timeout_s=12 s; the worker was stopped"
    assert hung.finished_at is not None and hung.started_at is not None
    assert 12 <= hung.finished_at - hung.started_at < 30
    assert not (results / "aggregated" / f"{hung.experiment_id}.json").exists()
    assert (healthy.point_id, healthy.status) == ("p001", "completed")
    assert manifest.status == "failed"
    assert "p000 c0 timeout" in out.output


@pytest.mark.parametrize("job_array", [True, False], ids=["array", "one-job-per-run"])
def test_submitit_local_executor_runs_the_slurm_submission_path(
        tmp_path: Path, tiny_model_dir: Path, job_array: bool) -> None:
    pytest.importorskip("submitit")
    study = _study_file(tmp_path, cycles=2 if job_array else 1, executor="submitit-local",
                        timeout_s=120, slurm={"job_array": job_array, "time_min": 5,
                                              "gpus_per_node": 0})
    results = tmp_path / "results"
    out = CliRunner().invoke(app, ["study", "run", str(study), "--results-dir", str(results)])
    assert out.exit_code == 0, out.output
    manifest = _manifest(results)
    assert manifest.executor == "submitit-local" and manifest.status == "completed"
    for run in manifest.runs:
        assert run.status == "completed" and run.job_id
        assert _aggregated(results, run.experiment_id)["experiment_id"] == run.experiment_id
    jobs = results / "studies" / manifest.study_id / "submitit"
    assert {p.name for p in jobs.iterdir()} >= {str(r.job_id) for r in manifest.runs}
