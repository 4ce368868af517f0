"""The study manifest: every point of a sweep, every run of a point, and their status.

Stored at ``<results>/studies/<study_id>/manifest.json`` and rewritten atomically after every
transition, so a killed study can be resumed with no duplicated and no lost runs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STUDY_SCHEMA_VERSION = 1

RunStatus = Literal["pending", "running", "completed", "failed", "timeout"]
StudyStatus = Literal["pending", "running", "completed", "failed", "interrupted"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StudyPoint(_Model):
    """One configuration of the sweep: the base config plus these dotted-key overrides."""

    point_id: str
    label: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    config_hash: str | None = None
    valid: bool = True
    error: str | None = None
    #: A search's probe: whether its run met the SLO (None until decided, or not a probe).
    slo_met: bool | None = None


class StudyRun(_Model):
    """One cycle of one point: an experiment run in its own subprocess."""

    point_id: str
    cycle: int = Field(ge=0)
    order_index: int = Field(ge=0)
    status: RunStatus = "pending"
    experiment_id: str | None = None
    error: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    job_id: str | None = None


class StudyManifest(_Model):
    """Everything needed to report on, resume or re-run a study."""

    schema_version: int = STUDY_SCHEMA_VERSION
    study_id: str
    study_name: str
    study_hash: str
    base_config_path: str | None = None
    created_at: float
    updated_at: float
    status: StudyStatus = "pending"
    executor: str = "local"
    #: The process driving the study (``study run`` / ``study resume``), to refuse a second one.
    coordinator_pid: int | None = None
    coordinator_host: str | None = None
    points: list[StudyPoint] = Field(default_factory=list)
    runs: list[StudyRun] = Field(default_factory=list)
    error: str | None = None

    def point(self, point_id: str) -> StudyPoint:
        """The point with this id (KeyError when absent)."""
        for p in self.points:
            if p.point_id == point_id:
                return p
        raise KeyError(point_id)

    def experiments_by_point(self) -> dict[str, list[str]]:
        """Completed runs' experiment ids, grouped by point id, in cycle order."""
        out: dict[str, list[str]] = {p.point_id: [] for p in self.points if p.valid}
        for run in sorted(self.runs, key=lambda r: (r.point_id, r.cycle)):
            if run.status == "completed" and run.experiment_id:
                out.setdefault(run.point_id, []).append(run.experiment_id)
        return out
