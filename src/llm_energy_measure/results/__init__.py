"""Results store (atomic file repository), late aggregation, statistics and exporters.

Importing this package never imports torch or other heavy libraries.
"""

from llm_energy_measure.results.aggregation.experiment import aggregate_results
from llm_energy_measure.results.analysis.stats import metric_stats
from llm_energy_measure.results.export.exporters import (
    export_aggregated,
    export_csv,
    export_json,
    export_parquet,
    flatten_result,
)
from llm_energy_measure.storage.repository import FileSystemRepository
from llm_energy_measure.storage.summaries import ExperimentSummary

__all__ = [
    "ExperimentSummary",
    "FileSystemRepository",
    "aggregate_results",
    "export_aggregated",
    "export_csv",
    "export_json",
    "export_parquet",
    "flatten_result",
    "metric_stats",
]
