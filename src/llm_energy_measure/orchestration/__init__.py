"""One experiment's lifecycle: the orchestrator, its collaborators, the experiment entry
points (run, resume), the launchers (``launch/``) and studies (``study/``)."""

from llm_energy_measure.orchestration.collaborators import default_collaborators
from llm_energy_measure.orchestration.experiment import (
    ExperimentReport,
    resume_experiment,
    run_experiment,
)
from llm_energy_measure.orchestration.orchestrator import (
    Collaborators,
    ExperimentOrchestrator,
    ProcessContext,
)

__all__ = [
    "Collaborators",
    "ExperimentOrchestrator",
    "ExperimentReport",
    "ProcessContext",
    "default_collaborators",
    "resume_experiment",
    "run_experiment",
]
