"""Experiment lifecycle: orchestrator, runner, warm-up, experiment entry point."""

from llm_energy_measure.orchestration.experiment import default_collaborators, run_experiment
from llm_energy_measure.orchestration.orchestrator import (
    Collaborators,
    ExperimentOrchestrator,
    ProcessContext,
)

__all__ = [
    "Collaborators",
    "ExperimentOrchestrator",
    "ProcessContext",
    "default_collaborators",
    "run_experiment",
]
