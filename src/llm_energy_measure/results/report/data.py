"""What the study report shows, loaded once: the manifest, each point's aggregated results,
one run's utilisation samples and, for a study with serving results, the serving figures.
``page`` lays it out, ``figures`` and ``serving`` plot it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llm_energy_measure.domain import AggregatedResult, UtilisationSample
from llm_energy_measure.results.analysis.serving_figures import study_serving
from llm_energy_measure.results.analysis.study_stats import load_study_results
from llm_energy_measure.results.report.serving import ServingReport, build_serving_report

if TYPE_CHECKING:
    from llm_energy_measure.state.study_models import StudyManifest
    from llm_energy_measure.storage.repository import FileSystemRepository


@dataclass(frozen=True)
class StudyReportData:
    """What the report shows: the manifest, each point's aggregated results (one per completed
    run), the utilisation samples of one run (for the time-series plot) and the serving
    figures (None without serving results)."""

    manifest: StudyManifest
    results_by_point: Mapping[str, Sequence[AggregatedResult]]
    timeseries_experiment_id: str | None = None
    timeseries: tuple[UtilisationSample, ...] = ()
    serving: ServingReport | None = None


def load_study_report_data(manifest: StudyManifest, repo: FileSystemRepository) -> StudyReportData:
    """Load the results of every completed run, the time series of the first completed run
    (in execution order) whose raw results hold samples and, when some results are serving
    runs, the serving figures (``serving_report``)."""
    results_by_point = load_study_results(manifest, repo)
    completed = sorted(
        (r.order_index, r.point_id, r.cycle, r.experiment_id)
        for r in manifest.runs if r.status == "completed" and r.experiment_id
    )
    serving = serving_report(manifest, results_by_point, repo)
    for *_, experiment_id in completed:
        samples = tuple(s for raw in repo.load_all_raw(experiment_id) for s in raw.timeseries)
        if samples:
            return StudyReportData(manifest, results_by_point, experiment_id, samples, serving)
    return StudyReportData(manifest, results_by_point, serving=serving)



def serving_report(manifest: StudyManifest,
                   results_by_point: Mapping[str, Sequence[AggregatedResult]],
                   repo: FileSystemRepository) -> ServingReport | None:
    """The serving figures of the study (``serving_figures.study_serving``); None when no
    result is a serving run."""
    found = study_serving(manifest, results_by_point, repo)
    return None if found is None else build_serving_report(*found)
