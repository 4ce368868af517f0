"""The study run loop, driven through a fake executor of our own StudyExecutor interface."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration.study.executors import RunOutcome, RunSpec
from llm_energy_measure.orchestration.study.runner import (
    StudyHooks,
    create_study,
    execute_study,
    refuse_active_jobs,
    resume_study,
    run_study,
)
from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.state.study_models import StudyManifest
from llm_energy_measure.state.study_store import StudyStore


def _write_study(tmp_path: Path, **extra: Any) -> Path:
    study = {
        "study_name": "unit",
        "base_config": {"model": {"name": "builtin:tiny-llama", "device": "cpu"}},
        "sweep": {"batching.batch_size": [1, 4]},
        "cycles": 2,
        "order": "interleaved",
        **extra,
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    return path


class FakeExecutor:
    """Plays scripted outcomes; a completed run leaves an aggregated file like the worker."""

    name = "fake"

    def __init__(self, script: dict[str, list[RunOutcome]] | None = None,
                 interrupt_on: int | None = None, parallel: bool = False) -> None:
        self.script = script or {}
        self.calls: list[str] = []
        self.specs: list[RunSpec] = []
        self.interrupt_on = interrupt_on
        self.parallel = parallel

    def _play(self, spec: RunSpec) -> RunOutcome:
        self.calls.append(spec.experiment_id)
        self.specs.append(spec)
        if self.interrupt_on is not None and len(self.calls) == self.interrupt_on:
            raise KeyboardInterrupt
        key = next((k for k in self.script if spec.experiment_id.endswith(k)), None)
        outcome = self.script[key].pop(0) if key and self.script[key] else RunOutcome(
            "completed", duration_s=0.1)
        if outcome.status == "completed":
            path = FileSystemRepository(spec.results_dir).aggregated_path(spec.experiment_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
        return outcome

    def run(self, spec: RunSpec, on_submitted: Callable[[str], None]) -> RunOutcome:
        on_submitted(f"job-{len(self.calls)}")
        return self._play(spec)

    def submit_many(self, specs: list[RunSpec]) -> list[Any]:
        return [_Done(self, spec, f"arr-{len(self.calls)}_{i}") for i, spec in enumerate(specs)]


class _Done:
    def __init__(self, fake: FakeExecutor, spec: RunSpec, job_id: str) -> None:
        self.fake, self.spec, self.job_id = fake, spec, job_id

    def done(self) -> bool:
        return True

    def outcome(self) -> RunOutcome:
        return self.fake._play(self.spec)

    def cancel(self) -> None:
        pass


def _hooks(executor: FakeExecutor, sleeps: list[float] | None = None,
           events: list[str] | None = None) -> StudyHooks:
    return StudyHooks(
        on_event=(events.append if events is not None else lambda line: None),
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        executor=executor, poll_interval_s=0.0,
    )


def _order(manifest: StudyManifest) -> list[tuple[str, int]]:
    return [(r.point_id, r.cycle) for r in sorted(manifest.runs, key=lambda r: r.order_index)]


def test_all_runs_complete_in_interleaved_order(tmp_path: Path) -> None:
    fake = FakeExecutor()
    events: list[str] = []
    manifest = run_study(_write_study(tmp_path), results_dir=tmp_path / "r",
                         hooks=_hooks(fake, events=events))
    assert manifest.status == "completed" and manifest.coordinator_pid is None
    assert _order(manifest) == [("p000", 0), ("p001", 0), ("p000", 1), ("p001", 1)]
    sid = manifest.study_id
    assert fake.calls == [f"{sid}-p000-c0", f"{sid}-p001-c0", f"{sid}-p000-c1", f"{sid}-p001-c1"]
    assert all(r.status == "completed" and r.attempts == 1 for r in manifest.runs)
    assert [r.job_id for r in sorted(manifest.runs, key=lambda r: r.order_index)] == [
        "job-0", "job-1", "job-2", "job-3"]
    # The worker gets the point's resolved config, absolute paths and the study's timeout.
    spec = fake.specs[1]
    assert spec.config_path.is_absolute() and spec.results_dir == (tmp_path / "r").resolve()
    assert json.loads(spec.config_path.read_text())["batching"]["batch_size"] == 4
    assert StudyStore(tmp_path / "r").load(sid) == manifest
    assert any("[4/4] p001 c1 completed" in e for e in events)


def test_cooldown_sleeps_between_runs_only(tmp_path: Path) -> None:
    sleeps: list[float] = []
    run_study(_write_study(tmp_path, cooldown_s=2.5), results_dir=tmp_path / "r",
              hooks=_hooks(FakeExecutor(), sleeps=sleeps))
    assert sleeps == [2.5, 2.5, 2.5]


def test_transient_failure_is_retried_then_completes(tmp_path: Path) -> None:
    fake = FakeExecutor({"p001-c0": [RunOutcome("failed", "NVML hiccup", retryable=True)]})
    sleeps: list[float] = []
    manifest = run_study(_write_study(tmp_path, retries=2), results_dir=tmp_path / "r",
                         hooks=_hooks(fake, sleeps=sleeps))
    run = next(r for r in manifest.runs if (r.point_id, r.cycle) == ("p001", 0))
    assert (run.status, run.attempts, run.error) == ("completed", 2, None)
    assert len(fake.calls) == 5 and manifest.status == "completed"
    assert len(sleeps) == 1 and 4.5 <= sleeps[0] <= 5.5  # the first backoff delay, jittered


def test_retries_exhausted_marks_failed_with_the_cause(tmp_path: Path) -> None:
    flaky = [RunOutcome("failed", "NVML hiccup", retryable=True)] * 2
    fake = FakeExecutor({"p000-c1": list(flaky)})
    manifest = run_study(_write_study(tmp_path, retries=1), results_dir=tmp_path / "r",
                         hooks=_hooks(fake))
    run = next(r for r in manifest.runs if (r.point_id, r.cycle) == ("p000", 1))
    assert (run.status, run.attempts) == ("failed", 2)
    assert run.error == "NVML hiccup (after 2 attempt(s))"
    assert manifest.status == "failed" and manifest.error == "1 run(s) not completed"


def test_permanent_failure_and_timeout_are_not_retried_and_the_study_goes_on(
        tmp_path: Path) -> None:
    fake = FakeExecutor({"p000-c0": [RunOutcome("failed", "CUDA out of memory")],
                         "p001-c0": [RunOutcome("timeout", "no result within 5 s")]})
    manifest = run_study(_write_study(tmp_path, retries=3), results_dir=tmp_path / "r",
                         hooks=_hooks(fake))
    by_key = {(r.point_id, r.cycle): r for r in manifest.runs}
    assert (by_key["p000", 0].status, by_key["p000", 0].attempts) == ("failed", 1)
    assert by_key["p000", 0].error == "CUDA out of memory"
    assert (by_key["p001", 0].status, by_key["p001", 0].attempts) == ("timeout", 1)
    assert by_key["p000", 1].status == by_key["p001", 1].status == "completed"
    assert len(fake.calls) == 4


def test_clean_exit_without_a_result_is_a_failure(tmp_path: Path) -> None:
    class NoResult(FakeExecutor):
        def run(self, spec: RunSpec, on_submitted: Callable[[str], None]) -> RunOutcome:
            return RunOutcome("completed")

    manifest = run_study(_write_study(tmp_path, cycles=1), results_dir=tmp_path / "r",
                         hooks=_hooks(NoResult()))
    assert {r.error for r in manifest.runs} == {
        "worker exited cleanly but left no aggregated result"}


def test_interrupt_then_resume_runs_each_run_exactly_once(tmp_path: Path) -> None:
    results = tmp_path / "r"
    first = FakeExecutor(interrupt_on=3)
    with pytest.raises(KeyboardInterrupt):
        run_study(_write_study(tmp_path), results_dir=results, hooks=_hooks(first))
    (manifest,) = StudyStore(results).list_studies()
    assert manifest.status == "interrupted" and manifest.coordinator_pid is None
    assert [r.status for r in sorted(manifest.runs, key=lambda r: r.order_index)] == [
        "completed", "completed", "pending", "pending"]
    second = FakeExecutor()
    final = resume_study(manifest.study_id, results_dir=results, hooks=_hooks(second))
    assert final.status == "completed"
    assert second.calls == [*first.calls[2:], f"{manifest.study_id}-p001-c1"]
    assert sorted(first.calls[:2] + second.calls) == sorted(r.experiment_id or ""
                                                            for r in final.runs)


def test_resume_marks_finished_but_unrecorded_runs_completed(tmp_path: Path) -> None:
    results = tmp_path / "r"
    store, manifest = create_study(_write_study(tmp_path), results_dir=results)
    done = manifest.runs[0].experiment_id
    assert done is not None
    path = FileSystemRepository(store.results_dir).aggregated_path(done)
    path.parent.mkdir(parents=True)
    path.write_text("{}")  # the worker finished; the coordinator died before recording it

    def left_running(m: StudyManifest) -> None:
        m.runs[0].status = "running"
        m.coordinator_pid = 2**22 + 12345  # not a live process
        m.coordinator_host = os.uname().nodename

    store.update(manifest.study_id, left_running)
    fake = FakeExecutor()
    final = resume_study(manifest.study_id, results_dir=results, hooks=_hooks(fake))
    assert done not in fake.calls and len(fake.calls) == 3
    assert final.status == "completed"


def test_a_live_coordinator_blocks_a_second_one(tmp_path: Path) -> None:
    import socket

    store, manifest = create_study(_write_study(tmp_path), results_dir=tmp_path / "r")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        def owned(m: StudyManifest) -> None:
            m.coordinator_pid, m.coordinator_host = sleeper.pid, socket.gethostname()

        store.update(manifest.study_id, owned)
        with pytest.raises(ConfigurationError, match=f"being run by process {sleeper.pid}"):
            execute_study(store, manifest.study_id, hooks=_hooks(FakeExecutor()))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert store.load(manifest.study_id).coordinator_pid == sleeper.pid  # untouched


def test_parallel_executor_resubmits_transient_failures(tmp_path: Path) -> None:
    fake = FakeExecutor({"p001-c1": [RunOutcome("failed", "node died", retryable=True)]},
                        parallel=True)
    events: list[str] = []
    manifest = run_study(_write_study(tmp_path, retries=1, cooldown_s=3),
                         results_dir=tmp_path / "r", hooks=_hooks(fake, events=events))
    assert manifest.status == "completed" and len(fake.calls) == 5
    run = next(r for r in manifest.runs if (r.point_id, r.cycle) == ("p001", 1))
    assert run.attempts == 2 and run.job_id == "arr-4_0"
    assert any("cool-downs do not apply" in e for e in events)


def test_unknown_executor_flag_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--executor must be one of local, slurm, "
                       "submitit-local, got 'pbs'"):
        run_study(_write_study(tmp_path), results_dir=tmp_path / "r", executor="pbs")


def test_resume_refuses_while_a_slurm_job_of_the_study_is_active(tmp_path: Path) -> None:
    store, manifest = create_study(_write_study(tmp_path), results_dir=tmp_path / "r",
                                   executor="slurm")

    def submitted(m: StudyManifest) -> None:
        m.runs[0].status, m.runs[0].job_id = "running", "1234_0"
        m.runs[1].status, m.runs[1].job_id = "failed", "1234_1"

    manifest = store.update(manifest.study_id, submitted)
    states = {"1234_0": "RUNNING", "1234_1": "FAILED"}
    with pytest.raises(ConfigurationError, match=r"job\(s\) 1234_0 still active"):
        refuse_active_jobs(store, manifest, lambda folder, job: states[job])
    states["1234_0"] = "CANCELLED by 42"
    refuse_active_jobs(store, manifest, lambda folder, job: states[job])


def test_cooldown_until_idle_without_a_gpu_keeps_only_the_fixed_pause(
        tmp_path: Path) -> None:
    from llm_energy_measure.core.devices import get_gpus

    with get_gpus() as gpus:
        if len(gpus):
            pytest.skip("this host has a readable NVIDIA GPU")
    sleeps: list[float] = []
    manifest = run_study(_write_study(tmp_path, cooldown_s=1.0, cooldown_until_idle={
        "enabled": True, "timeout_s": 30}), results_dir=tmp_path / "r",
        hooks=_hooks(FakeExecutor(), sleeps=sleeps))
    assert manifest.status == "completed" and sleeps == [1.0, 1.0, 1.0]
