"""What the study report shows, loaded once: the manifest, each point's aggregated results and
one run's utilisation samples. ``page`` lays it out and ``figures`` plots it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llm_energy_measure.domain import AggregatedResult, UtilisationSample
from llm_energy_measure.results.analysis.study_stats import load_study_results

if TYPE_CHECKING:
    from llm_energy_measure.state.study_models import StudyManifest
    from llm_energy_measure.storage.repository import FileSystemRepository


@dataclass(frozen=True)
class StudyReportData:
    """What the report shows: the manifest, each point's aggregated results (one per completed
    run) and the utilisation samples of one run (for the time-series plot)."""

    manifest: StudyManifest
    results_by_point: Mapping[str, Sequence[AggregatedResult]]
    timeseries_experiment_id: str | None = None
    timeseries: tuple[UtilisationSample, ...] = ()


def load_study_report_data(manifest: StudyManifest, repo: FileSystemRepository) -> StudyReportData:
    """Load the results of every completed run and the time series of the first completed run
    (in execution order) whose raw results hold samples."""
    results_by_point = load_study_results(manifest, repo)
    completed = sorted(
        (r.order_index, r.point_id, r.cycle, r.experiment_id)
        for r in manifest.runs if r.status == "completed" and r.experiment_id
    )
    for *_, experiment_id in completed:
        samples = tuple(s for raw in repo.load_all_raw(experiment_id) for s in raw.timeseries)
        if samples:
            return StudyReportData(manifest, results_by_point, experiment_id, samples)
    return StudyReportData(manifest, results_by_point)
