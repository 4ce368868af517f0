"""What `study status` shows, and the Slurm parameters a study asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_energy_measure.config.study import SlurmConfig
from llm_energy_measure.orchestration.study.executors.submitit_executor import (
    slurm_parameters,
)
from llm_energy_measure.orchestration.study.status import (
    poll_job_states,
    run_counts,
    study_list_text,
    study_summary_text,
)
from llm_energy_measure.state.study_models import StudyManifest, StudyPoint, StudyRun


def _manifest(executor: str = "local") -> StudyManifest:
    runs = [
        StudyRun(point_id="p000", cycle=0, order_index=0, status="completed",
                 experiment_id="s-p000-c0", attempts=1),
        StudyRun(point_id="p001", cycle=0, order_index=1, status="timeout",
                 experiment_id="s-p001-c0", attempts=1, error="no result within 5 s",
                 job_id="77_1"),
        StudyRun(point_id="p000", cycle=1, order_index=2, status="failed",
                 experiment_id="s-p000-c1", attempts=2, error="CUDA out of memory"),
        StudyRun(point_id="p001", cycle=1, order_index=3, experiment_id="s-p001-c1"),
    ]
    points = [StudyPoint(point_id="p000", label="batching.batch_size=1"),
              StudyPoint(point_id="p001", label="batching.batch_size=4"),
              StudyPoint(point_id="p002", label="batching.batch_size=0", valid=False,
                         error="batching.batch_size: must be >= 1, got 0")]
    return StudyManifest(study_id="s", study_name="demo", study_hash="ab" * 8, created_at=0,
                         updated_at=0, status="failed", executor=executor, points=points,
                         runs=runs, error="3 run(s) not completed")


def test_counts_and_summary_show_points_failures_and_invalid_points() -> None:
    manifest = _manifest()
    assert run_counts(manifest) == {"completed": 1, "failed": 1, "timeout": 1, "running": 0,
                                    "pending": 1}
    text = study_summary_text(manifest)
    lines = text.splitlines()
    assert "status      failed: 3 run(s) not completed" in lines
    assert "points      2 valid, 1 invalid" in lines
    assert "runs        1 completed, 1 failed, 1 timeout, 1 pending" in lines
    row = next(line for line in lines if line.startswith("p000"))
    assert row.split() == ["p000", "batching.batch_size=1", "1", "1", "0", "0", "0"]
    assert "  p002 (batching.batch_size=0): batching.batch_size: must be >= 1, got 0" in lines
    assert "  p001 c0 s-p001-c0 timeout job 77_1 (attempts 1): no result within 5 s" in lines
    assert "  p000 c1 s-p000-c1 failed (attempts 2): CUDA out of memory" in lines


def test_job_states_are_polled_for_slurm_studies_only(tmp_path: Path) -> None:
    asked: list[str] = []

    def state_of(folder: Path, job_id: str) -> str:
        asked.append(job_id)
        return "TIMEOUT"

    assert poll_job_states(_manifest("local"), tmp_path, state_of) == {}
    states = poll_job_states(_manifest("slurm"), tmp_path, state_of)
    assert states == {"77_1": "TIMEOUT"} and asked == ["77_1"]
    assert "job 77_1 [TIMEOUT]" in study_summary_text(_manifest("slurm"), states)


def test_list_of_studies() -> None:
    assert study_list_text([]) == "no studies"
    assert study_list_text([_manifest()]).splitlines()[2].split() == ["s", "demo", "failed",
                                                                      "1/4"]


@pytest.mark.parametrize(("mem_gb", "mem"), [(32, "32GB"), (1.5, "1536MB")])
def test_slurm_parameters(mem_gb: float, mem: str) -> None:
    params = slurm_parameters(SlurmConfig(partition="gpu", time_min=90, gpus_per_node=2,
                                          cpus_per_task=4, mem_gb=mem_gb, array_parallelism=3,
                                          additional_parameters={"account": "proj"}))
    assert params == {"job_name": "llm-energy-measure", "time": 90, "gpus_per_node": 2,
                      "cpus_per_task": 4, "mem": mem, "array_parallelism": 3,
                      "partition": "gpu", "additional_parameters": {"account": "proj"}}
    assert "partition" not in slurm_parameters(SlurmConfig())


def test_real_submitit_accepts_our_slurm_parameters(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("submitit")
    import os

    from llm_energy_measure.orchestration.study.executors.submitit_executor import (
        SubmititStudyExecutor,
    )

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    executor = SubmititStudyExecutor("slurm", tmp_path / "jobs", SlurmConfig(
        partition="gpu", time_min=30, mem_gb=16, additional_parameters={"account": "proj"}))
    sbatch = executor._executor._make_submission_file_text("CMD", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=30", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=16GB", "#SBATCH --account=proj",
                 "#SBATCH --job-name=llm-energy-measure"):
        assert line in sbatch


def test_slurm_without_srun_says_what_to_do(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("submitit")
    import shutil

    from llm_energy_measure.exceptions import ConfigurationError
    from llm_energy_measure.orchestration.study.executors.submitit_executor import (
        SubmititStudyExecutor,
    )

    if shutil.which("srun"):
        pytest.skip("this host has Slurm")
    with pytest.raises(ConfigurationError, match="--executor submitit-local"):
        SubmititStudyExecutor("slurm", tmp_path / "jobs", SlurmConfig())


def test_search_result_text_gives_the_answer_its_cis_and_the_probes() -> None:
    from llm_energy_measure.domain import MetricStats
    from llm_energy_measure.domain.search import SearchFigure, SearchProbe, SearchResult
    from llm_energy_measure.orchestration.study.status import search_result_text

    stats = MetricStats(n=3, mean=0.5, std=0.1, cv=0.2, ci95_low=0.25, ci95_high=0.75)
    result = SearchResult(
        study_id="s", key="load.rate_per_s", low=0.5, high=16, tolerance=0.1, max_probes=6,
        cycles=3, outcome="found", stopped_by="tolerance", value=4.0, bracket=(4.0, 4.2),
        experiment_id="s-p003-c0",
        energy_per_output_token_j=SearchFigure(value=0.51, stats=stats),
        steady_energy_per_output_token_j=SearchFigure(value=None),
        goodput_per_s=SearchFigure(value=3.9), notes=("a note",),
        probes=(SearchProbe(point_id="p000", experiment_id="s-p000-c0", value=0.5,
                            slo_met=True, attainment=1.0, goodput_per_s=0.5),),
    )
    text = search_result_text(result)
    assert text.splitlines()[0] == ("search load.rate_per_s in [0.5, 16]: highest "
                                    "load.rate_per_s meeting the SLO = 4 (the next failed: 4.2)")
    assert "0.51 J (mean 0.5, 95% CI 0.25 .. 0.75, n=3)" in text
    assert "J/token (steady)  n/a" in text and "goodput           3.9 req/s" in text
    assert "note: a note" in text
    assert text.splitlines()[-1].split() == ["p000", "0.5", "yes", "1.000", "0.5"]
