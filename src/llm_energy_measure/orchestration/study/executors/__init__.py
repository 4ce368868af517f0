"""Study executors: where and how each run's worker process is started.

``local`` runs workers one after the other as subprocesses of this process; ``slurm`` submits
them through submitit (one job per run, or a job array); ``submitit-local`` is the same
submission code with submitit's LocalExecutor, on this host.
"""

from __future__ import annotations

from pathlib import Path

from llm_energy_measure.config.study import StudyConfig
from llm_energy_measure.orchestration.study.executors.base import (
    EXIT_ORPHANED,
    EXIT_RETRYABLE,
    ArrayStudyExecutor,
    RunOutcome,
    RunSpec,
    StudyExecutor,
    SubmittedRun,
)
from llm_energy_measure.orchestration.study.executors.local import (
    LocalStudyExecutor,
    run_worker,
)


def create_executor(study: StudyConfig, submitit_dir: Path) -> StudyExecutor:
    """The executor named by ``study.executor`` (submitit is imported only when needed)."""
    if study.executor == "local":
        return LocalStudyExecutor()
    from llm_energy_measure.orchestration.study.executors.submitit_executor import (
        SubmititStudyExecutor,
    )

    return SubmititStudyExecutor(study.executor, submitit_dir, study.slurm)


__all__ = [
    "EXIT_ORPHANED",
    "EXIT_RETRYABLE",
    "ArrayStudyExecutor",
    "LocalStudyExecutor",
    "RunOutcome",
    "RunSpec",
    "StudyExecutor",
    "SubmittedRun",
    "create_executor",
    "run_worker",
]
