"""Results store (atomic file repository), late aggregation, statistics and exporters.

Importing this package never imports torch or other heavy libraries.
"""

from llm_energy_measure.results.aggregation import aggregate_results
from llm_energy_measure.results.exporters import (
    export_aggregated,
    export_csv,
    export_json,
    export_parquet,
    flatten_result,
)
from llm_energy_measure.results.repository import FileSystemRepository
from llm_energy_measure.results.stats import metric_stats
from llm_energy_measure.results.summaries import ExperimentSummary

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
