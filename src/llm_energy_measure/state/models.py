"""Experiment and process state models (mutable, validated on assignment) and status rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llm_energy_measure.security import sanitize_experiment_id

#: Version of the state file format. Bump when a stored field changes meaning.
STATE_SCHEMA_VERSION = 1
SUPPORTED_STATE_SCHEMA_VERSIONS = frozenset({1})

ProcessStatus = Literal["pending", "running", "completed", "failed"]
ExperimentStatus = Literal["pending", "running", "completed", "failed", "interrupted"]
#: Statuses from which ``StateStore.find_resumable`` offers a resume.
RESUMABLE_STATUSES: frozenset[str] = frozenset({"failed", "interrupted"})


class _StateModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProcessState(_StateModel):
    """One process (rank) of an experiment. Times are timezone-aware UTC."""

    rank: int = Field(ge=0)
    status: ProcessStatus = "pending"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    pid: int | None = None
    hostname: str | None = None


class ExperimentState(_StateModel):
    """Lifecycle of one experiment, stored as ``<results>/state/<experiment_id>.json``.

    ``pid``/``hostname`` identify the coordinating process (the one that launched the ranks),
    so a run whose coordinator died can be recognised as stale. ``progress`` is free-form,
    JSON-serialisable resume information (for example completed cycles).
    """

    schema_version: int = STATE_SCHEMA_VERSION
    experiment_id: str
    config_name: str
    config_path: str | None = None
    config_hash: str | None = None
    status: ExperimentStatus = "pending"
    created_at: datetime
    updated_at: datetime
    num_processes: int = Field(ge=1)
    processes: dict[int, ProcessState]
    error: str | None = None
    progress: dict[str, Any] = Field(default_factory=dict)
    aggregated: bool = False
    pid: int | None = None
    hostname: str | None = None

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value not in SUPPORTED_STATE_SCHEMA_VERSIONS:
            raise ValueError(
                f"unknown state schema_version {value!r}; upgrade llm-energy-measure to read it"
            )
        return value

    @field_validator("experiment_id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        return sanitize_experiment_id(value)

    @model_validator(mode="after")
    def _ranks_match(self) -> ExperimentState:
        if set(self.processes) != set(range(self.num_processes)):
            raise ValueError(
                f"processes must have ranks 0..{self.num_processes - 1}, "
                f"got {sorted(self.processes)}"
            )
        for key, process in self.processes.items():
            if process.rank != key:
                raise ValueError(f"processes[{key}] has rank {process.rank}")
        return self

    @classmethod
    def new(
        cls,
        experiment_id: str,
        *,
        config_name: str,
        num_processes: int,
        now: datetime,
        config_path: str | None = None,
        config_hash: str | None = None,
    ) -> ExperimentState:
        """A pending experiment with ``num_processes`` pending ranks."""
        return cls(
            experiment_id=experiment_id,
            config_name=config_name,
            config_path=config_path,
            config_hash=config_hash,
            created_at=now,
            updated_at=now,
            num_processes=num_processes,
            processes={rank: ProcessState(rank=rank) for rank in range(num_processes)},
        )

    def ranks_with(self, status: ProcessStatus) -> list[int]:
        """Ranks whose process has ``status``, ascending."""
        return sorted(r for r, p in self.processes.items() if p.status == status)


def derive_status(state: ExperimentState) -> tuple[ExperimentStatus, str | None]:
    """Experiment status and error implied by its processes.

    Any failed rank -> ``failed``, error kept if already set, else ``"rank <r> failed: <err>"``
    for the lowest failed rank. All ranks completed -> ``completed`` only once the experiment
    is aggregated (``state.aggregated``): until then it is ``running`` (from pending, or from a
    ``completed`` recorded without aggregation) or keeps its status (interrupted or failed,
    e.g. by an aggregation error), so that ``run --resume`` can still aggregate it. Otherwise
    a pending experiment with a running or completed rank -> ``running``; else unchanged.
    """
    failed = state.ranks_with("failed")
    if failed:
        rank = failed[0]
        cause = state.error or f"rank {rank} failed: {state.processes[rank].error or 'no error'}"
        return "failed", cause
    if len(state.ranks_with("completed")) == state.num_processes:
        if state.aggregated:
            return "completed", None
        if state.status in ("pending", "completed"):
            return "running", state.error
        return state.status, state.error
    if state.status == "pending" and any(
        p.status in ("running", "completed") for p in state.processes.values()
    ):
        return "running", state.error
    return state.status, state.error
