"""Experiment state: lifecycle status per experiment and rank, stored atomically for resume."""

from llm_energy_measure.state.experiment_state import StateStore
from llm_energy_measure.state.liveness import is_stale, pid_is_alive
from llm_energy_measure.state.models import (
    STATE_SCHEMA_VERSION,
    ExperimentState,
    ExperimentStatus,
    ProcessState,
    ProcessStatus,
    derive_status,
)

__all__ = [
    "STATE_SCHEMA_VERSION",
    "ExperimentState",
    "ExperimentStatus",
    "ProcessState",
    "ProcessStatus",
    "StateStore",
    "derive_status",
    "is_stale",
    "pid_is_alive",
]
