"""The rank worker: what every launcher runs for one rank of an experiment.

It marks the rank running, measures its share with the orchestrator (which saves the raw
result and its completion marker), and marks the rank completed, or failed with
``describe_failure(exc)``. The experiment state is the only record it writes: aggregation
happens after the launcher returns.
"""

from __future__ import annotations

from collections.abc import Callable

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.domain import RawProcessResult
from llm_energy_measure.exceptions import describe_failure
from llm_energy_measure.orchestration.orchestrator import (
    Collaborators,
    ExperimentOrchestrator,
    ProcessContext,
)
from llm_energy_measure.storage.workspace import Workspace


def run_rank(
    config: ExperimentConfig,
    experiment_id: str,
    workspace: Workspace,
    context: ProcessContext,
    *,
    collaborators: Collaborators | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> RawProcessResult:
    """Measure rank ``context.process_index`` and record how it ended.

    A failure marks the rank failed with its cause and is re-raised; KeyboardInterrupt and
    SystemExit (a stop) are re-raised unrecorded: the caller knows why it stopped.
    """
    from llm_energy_measure.orchestration.collaborators import default_collaborators

    states = workspace.states
    rank = context.process_index
    states.mark_process(experiment_id, rank, "running")
    collab = collaborators or default_collaborators(workspace, context, config, experiment_id)
    try:
        raw = ExperimentOrchestrator(collab, context, on_progress=on_progress).run(
            config, experiment_id)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        states.mark_process(experiment_id, rank, "failed", error=describe_failure(exc))
        raise
    states.mark_process(experiment_id, rank, "completed")
    return raw
