"""What a launcher is given and what it returns.

A launcher only starts the rank worker (``launch.worker.run_rank``) for the ranks of a job,
in this process (``InlineLauncher``) or as processes under ``accelerate launch``
(``AccelerateLauncher``), and reports how that ended. It knows nothing of engines or
energy; the experiment (``orchestration.experiment``) creates the job and aggregates after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.storage.workspace import Workspace

#: ``on_progress(stage, done, total)``: what the ranks are doing, for the console.
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RankJob:
    """The ranks to run of one experiment.

    ``ranks`` None means every rank of this machine (all ``num_ranks`` on one machine);
    a resume names the missing ones. ``config_file`` is the resolved config saved at the
    experiment's start (launched processes read it).
    """

    config: ExperimentConfig
    experiment_id: str
    workspace: Workspace
    config_file: Path
    num_ranks: int
    ranks: tuple[int, ...] | None = None

    def local_ranks(self) -> tuple[int, ...]:
        """The experiment ranks this machine runs."""
        if self.ranks is not None:
            return self.ranks
        per_machine = self.num_ranks // self.config.launch.num_machines
        first = self.config.launch.machine_rank * per_machine
        return tuple(range(first, first + per_machine))


@dataclass
class LaunchOutcome:
    """How a launch ended. ``status``: completed, failed or interrupted. ``failed_rank`` is
    None when no rank failed (e.g. every rank finished but the aggregation failed).
    ``exception`` is the rank's own exception when it ran in this process."""

    status: str
    returncode: int | None
    cause: str | None = None
    failed_rank: int | None = None
    duration_s: float = 0.0
    log_file: Path | None = None
    exception: BaseException | None = None


class Launcher(Protocol):
    """Starts the rank worker for a job's ranks and waits for them."""

    def launch(self, job: RankJob, on_progress: ProgressCallback | None = None) -> LaunchOutcome:
        """Run every local rank of ``job``; KeyboardInterrupt after stopping them."""
        ...
