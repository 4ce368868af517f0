"""The inline launcher: the experiment's single rank, in this process."""

from __future__ import annotations

import time

from llm_energy_measure.exceptions import describe_failure
from llm_energy_measure.orchestration.launch.base import LaunchOutcome, ProgressCallback, RankJob
from llm_energy_measure.orchestration.launch.worker import run_rank
from llm_energy_measure.orchestration.orchestrator import Collaborators, ProcessContext


class InlineLauncher:
    """Runs each local rank of a job in turn in this process (normally the only one).

    ``collaborators`` replaces the real implementations (tests, other deployments).
    """

    def __init__(self, collaborators: Collaborators | None = None) -> None:
        self.collaborators = collaborators

    def launch(self, job: RankJob, on_progress: ProgressCallback | None = None) -> LaunchOutcome:
        started = time.monotonic()
        for rank in job.local_ranks():
            context = ProcessContext(process_index=rank, num_processes=job.num_ranks)
            try:
                run_rank(job.config, job.experiment_id, job.workspace, context,
                         collaborators=self.collaborators, on_progress=on_progress)
            except (KeyboardInterrupt, SystemExit):
                job.workspace.states.mark_interrupted(job.experiment_id)
                raise
            except Exception as exc:
                cause = describe_failure(exc)
                job.workspace.states.mark_failed(job.experiment_id, cause)
                return LaunchOutcome("failed", 1, cause=cause, failed_rank=rank,
                                     duration_s=time.monotonic() - started, exception=exc)
        return LaunchOutcome("completed", 0, duration_s=time.monotonic() - started)
