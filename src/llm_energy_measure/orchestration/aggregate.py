"""Late aggregation of stored raw results into aggregated results."""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger

from llm_energy_measure.exceptions import AggregationError, ConfigurationError
from llm_energy_measure.protocols import ResultsRepository


@dataclass(frozen=True)
class AggregateOutcome:
    """What happened to one experiment: aggregated, skipped (done already) or failed."""

    experiment_id: str
    status: str  # "aggregated" | "skipped" | "failed"
    detail: str = ""



def aggregate_one(
    repo: ResultsRepository, experiment_id: str, *, force: bool = False,
    allow_partial: bool = False,
) -> AggregateOutcome:
    """Aggregate one experiment; refuses incomplete ones unless ``allow_partial``."""
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
    detail = "partial" if result.aggregation.partial else ""
    return AggregateOutcome(experiment_id, "aggregated", detail)


def aggregate_all(
    repo: ResultsRepository, *, force: bool = False, allow_partial: bool = False
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
                aggregate_one(repo, exp_id, force=True, allow_partial=allow_partial)
            )
        except (AggregationError, ConfigurationError) as exc:
            logger.warning(f"{exp_id}: {exc}")
            outcomes.append(AggregateOutcome(exp_id, "failed", str(exc)))
    return outcomes
