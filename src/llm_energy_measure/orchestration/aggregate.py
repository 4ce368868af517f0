"""Late aggregation of stored raw results into aggregated results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from llm_energy_measure.exceptions import AggregationError, ConfigurationError
from llm_energy_measure.protocols import ResultsRepository

if TYPE_CHECKING:
    from llm_energy_measure.domain import AggregatedResult, RawProcessResult
    from llm_energy_measure.results import FileSystemRepository
    from llm_energy_measure.state import StateStore


@dataclass(frozen=True)
class AggregateOutcome:
    """What happened to one experiment: aggregated, skipped (done already) or failed."""

    experiment_id: str
    status: str  # "aggregated" | "skipped" | "failed"
    detail: str = ""


@dataclass(frozen=True)
class Completion:
    """Result of ``aggregate_if_complete``: the aggregated result, or None and the ranks whose
    completion marker is missing."""

    aggregated: AggregatedResult | None
    missing_ranks: tuple[int, ...] = ()


def aggregate_and_complete(
    repo: ResultsRepository,
    states: StateStore,
    experiment_id: str,
    raws: Sequence[RawProcessResult],
    num_ranks: int,
) -> AggregatedResult:
    """Aggregate ``raws`` (every rank of the experiment), store the result and only then mark
    the experiment completed (``aggregated=True``).

    A failure is recorded as the experiment's error (``"aggregation failed: ..."``) and
    re-raised; the ranks keep their status (their raw results are complete), so
    ``run --resume`` only aggregates again. Ctrl+C marks the experiment interrupted.
    """
    from llm_energy_measure.results import aggregate_results

    try:
        aggregated = aggregate_results(raws, expected_processes=num_ranks)
        repo.save_aggregated(aggregated)
    except KeyboardInterrupt:
        states.mark_interrupted(experiment_id)
        raise
    except Exception as exc:
        states.mark_failed(experiment_id, f"aggregation failed: {type(exc).__name__}: {exc}")
        raise
    states.mark_completed(experiment_id, aggregated=True)
    return aggregated


def aggregate_if_complete(
    repo: FileSystemRepository, states: StateStore, experiment_id: str, num_ranks: int
) -> Completion:
    """Aggregate when the completion marker of every rank ``0..num_ranks-1`` is in ``repo``
    (see ``aggregate_and_complete``); otherwise do nothing and name the missing ranks."""
    missing = repo.missing_ranks(experiment_id, num_ranks)
    if missing:
        return Completion(None, missing)
    raws = repo.load_all_raw(experiment_id)
    return Completion(aggregate_and_complete(repo, states, experiment_id, raws, num_ranks))


def aggregate_one(
    repo: ResultsRepository, experiment_id: str, *, force: bool = False,
    allow_partial: bool = False, states: StateStore | None = None,
) -> AggregateOutcome:
    """Aggregate one experiment; refuses incomplete ones unless ``allow_partial``.

    With ``states``, an experiment whose every rank is aggregated (not partial) is marked
    completed in its state, as a run that aggregates itself would be.
    """
    from llm_energy_measure.results import aggregate_results

    if not repo.has_raw(experiment_id):
        raise ConfigurationError(f"no raw results for experiment {experiment_id!r}")
    if repo.has_aggregated(experiment_id) and not force:
        return AggregateOutcome(experiment_id, "skipped", "already aggregated (use --force)")
    raws = repo.load_all_raw(experiment_id)
    if not raws:
        raise AggregationError(f"experiment {experiment_id!r} has no readable raw results")
    expected = max(r.num_processes for r in raws)
    result = aggregate_results(raws, expected_processes=expected, allow_partial=allow_partial)
    repo.save_aggregated(result)
    partial = result.aggregation.partial
    if states is not None and not partial and states.load(experiment_id) is not None:
        states.mark_completed(experiment_id, aggregated=True)
    return AggregateOutcome(experiment_id, "aggregated", "partial" if partial else "")


def aggregate_all(
    repo: ResultsRepository, *, force: bool = False, allow_partial: bool = False,
    states: StateStore | None = None,
) -> list[AggregateOutcome]:
    """Aggregate every stored experiment; a failing one is reported, the rest go on."""
    outcomes: list[AggregateOutcome] = []
    done = set(repo.list_aggregated())
    for exp_id in repo.list_experiments():
        if exp_id in done and not force:
            outcomes.append(AggregateOutcome(exp_id, "skipped", "already aggregated"))
            continue
        try:
            outcomes.append(
                aggregate_one(repo, exp_id, force=True, allow_partial=allow_partial,
                              states=states)
            )
        except (AggregationError, ConfigurationError) as exc:
            logger.warning(f"{exp_id}: {exc}")
            outcomes.append(AggregateOutcome(exp_id, "failed", str(exc)))
    return outcomes
