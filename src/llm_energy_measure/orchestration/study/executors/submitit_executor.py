"""Dispatching study runs through submitit: Slurm on a cluster, or LocalExecutor on this host.

Each job runs ``run_job``, which starts the same worker subprocess as the local executor (so
the per-run timeout and the crash isolation are the same). The results directory must be on
a file system shared by the submitting host and the compute nodes. submitit is imported
lazily; without it, MissingExtraError names ``pip install "llm-energy-measure[slurm]"``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llm_energy_measure.config.study import SlurmConfig
from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError
from llm_energy_measure.orchestration.study.executors.base import (
    RunOutcome,
    RunSpec,
    SubmittedRun,
)
from llm_energy_measure.orchestration.study.executors.local import run_worker

JOB_NAME = "llm-energy-measure"
#: Slurm job states in which a job may still write results.
ACTIVE_JOB_STATES = frozenset({"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING",
                               "RESIZING", "SUSPENDED"})


def import_submitit() -> Any:
    """The submitit module, or MissingExtraError when it is not installed."""
    try:
        import submitit
    except ImportError:
        raise MissingExtraError("slurm", "submitit", "Slurm dispatch") from None
    return submitit


def slurm_parameters(slurm: SlurmConfig) -> dict[str, Any]:
    """``SlurmExecutor.update_parameters`` arguments for the study's ``slurm`` section."""
    mem = f"{int(slurm.mem_gb)}GB" if slurm.mem_gb.is_integer() else f"{int(slurm.mem_gb * 1024)}MB"
    params: dict[str, Any] = {
        "job_name": JOB_NAME,
        "time": slurm.time_min,
        "gpus_per_node": slurm.gpus_per_node,
        "cpus_per_task": slurm.cpus_per_task,
        "mem": mem,
        "array_parallelism": slurm.array_parallelism,
    }
    if slurm.partition:
        params["partition"] = slurm.partition
    if slurm.additional_parameters:
        params["additional_parameters"] = dict(slurm.additional_parameters)
    return params


def run_job(spec: RunSpec) -> RunOutcome:
    """The function a submitit job runs: the run's worker in a subprocess of the job."""
    return run_worker(spec)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text.strip()


class _SubmititRun:
    """A submitted job and how to read its outcome."""

    def __init__(self, job: Any) -> None:
        self._job = job
        self.job_id = str(job.job_id)

    def done(self) -> bool:
        return bool(self._job.done())

    def outcome(self) -> RunOutcome:
        """The job's RunOutcome; a job that died (node failure, Slurm time limit, preemption)
        is a retryable failure, or ``timeout`` when Slurm says so."""
        try:
            result = self._job.result()
        except Exception as exc:
            state = str(getattr(self._job, "state", "UNKNOWN"))
            message = f"job {self.job_id} ended {state}: {_last_line(str(exc))}"
            if "TIMEOUT" in state:
                return RunOutcome("timeout", message)
            return RunOutcome("failed", message, retryable=True)
        if isinstance(result, RunOutcome):
            return result
        return RunOutcome("failed", f"job {self.job_id} returned {type(result).__name__}")

    def cancel(self) -> None:
        self._job.cancel(check=False)


class SubmititStudyExecutor:
    """Slurm (``kind="slurm"``) or submitit's LocalExecutor (``kind="submitit-local"``),
    through the same submission code. ``slurm.job_array`` makes it ``parallel``."""

    def __init__(self, kind: str, folder: Path, slurm: SlurmConfig) -> None:
        submitit = import_submitit()
        self.name = kind
        self.parallel = slurm.job_array
        job_folder = Path(folder) / "%j"
        if kind == "slurm":
            try:
                self._executor = submitit.SlurmExecutor(folder=job_folder, max_num_timeout=0)
            except RuntimeError as exc:  # submitit: 'Could not detect "srun"'
                raise ConfigurationError(
                    f"--executor slurm: {exc} Run `study run` on a Slurm login node, or try "
                    "the study on this host with --executor submitit-local"
                ) from exc
            self._executor.update_parameters(**slurm_parameters(slurm))
        elif kind == "submitit-local":
            self._executor = submitit.LocalExecutor(folder=job_folder, max_num_timeout=0)
            self._executor.update_parameters(timeout_min=slurm.time_min,
                                             gpus_per_node=slurm.gpus_per_node)
        else:
            raise ValueError(f"not a submitit executor: {kind!r}")

    def run(self, spec: RunSpec, on_submitted: Callable[[str], None]) -> RunOutcome:
        """Submit one job, record its id, wait for it (cancelled if we are interrupted)."""
        job = _SubmititRun(self._executor.submit(run_job, spec))
        on_submitted(job.job_id)
        try:
            return job.outcome()
        except BaseException:
            job.cancel()
            raise

    def submit_many(self, specs: list[RunSpec]) -> list[SubmittedRun]:
        """Submit every spec at once (a job array on Slurm, at most ``array_parallelism``
        tasks at a time)."""
        return [_SubmititRun(job) for job in self._executor.map_array(run_job, specs)]


def job_state(folder: Path, job_id: str) -> str:
    """Slurm's state of a job of this study (``RUNNING``, ``COMPLETED``, ...; via sacct)."""
    submitit = import_submitit()
    return str(submitit.SlurmJob(folder=Path(folder) / "%j", job_id=job_id).state)
