"""Stored results: one per process (raw) and one per experiment (aggregated)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from llm_energy_measure.constants import SCHEMA_VERSION, SUPPORTED_SCHEMA_VERSIONS
from llm_energy_measure.domain.base import Count, FrozenModel, NonNegative
from llm_energy_measure.domain.engine import EngineInfo
from llm_energy_measure.domain.environment import EnvironmentInfo
from llm_energy_measure.domain.metrics import (
    ComputeMetrics,
    CycleMetrics,
    EnergyMetrics,
    InferenceMetrics,
    MeasurementWarning,
    MemoryStats,
    MetricStats,
    RequestRecord,
    Timestamps,
    UtilisationSample,
)
from llm_energy_measure.domain.model_info import ModelInfo
from llm_energy_measure.domain.serving import ServingMetrics


def _check_schema_version(value: int) -> int:
    if value not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
        raise ValueError(
            f"unknown schema_version {value!r} (this llm-energy-measure reads {supported}); "
            "upgrade llm-energy-measure to read this file"
        )
    return value


class RawProcessResult(FrozenModel):
    """Everything one process measured in one experiment."""

    schema_version: int = SCHEMA_VERSION
    experiment_id: str
    process_index: int = Field(ge=0)
    num_processes: int = Field(ge=1)
    local_rank: int = 0
    hostname: str
    config_name: str
    config_hash: str
    effective_config: dict[str, Any]
    #: Results written before the engine was recorded were all measured by transformers.
    engine: EngineInfo = EngineInfo()
    model: ModelInfo
    timestamps: Timestamps
    inference: InferenceMetrics
    requests: tuple[RequestRecord, ...] = ()
    energy: EnergyMetrics | None = None
    compute: ComputeMetrics = ComputeMetrics()
    memory: MemoryStats = MemoryStats()
    cycles: tuple[CycleMetrics, ...] = ()
    timeseries: tuple[UtilisationSample, ...] = ()
    #: Serving runs only (engine ``openai``): windows, load, stability, server check.
    serving: ServingMetrics | None = None
    warmup_runs: int = 0
    warmup_converged: bool | None = None
    seed: int | None = None
    environment: EnvironmentInfo
    warnings: tuple[MeasurementWarning, ...] = ()

    _v = field_validator("schema_version")(_check_schema_version)


class ProcessSummary(FrozenModel):
    """One process's headline figures, kept in the aggregated result."""

    process_index: int
    hostname: str
    timestamps: Timestamps
    input_tokens: Count
    output_tokens: Count
    output_tokens_per_s: NonNegative
    energy_j: NonNegative | None = None
    device_ids: tuple[str, ...] = ()
    #: Wall-clock edges of the process's energy windows (first cycle's start, last's end).
    energy_window: Timestamps | None = None


class AggregationMetadata(FrozenModel):
    """How an aggregated result was produced, and what was checked."""

    aggregated_at: float
    num_processes: int
    expected_processes: int
    missing_ranks: tuple[int, ...] = ()
    partial: bool = False
    hosts: tuple[str, ...] = ()
    unique_devices: tuple[str, ...] = ()
    duplicate_devices: tuple[str, ...] = ()
    temporal_overlap: bool = True
    #: Smallest margin (s) by which an energy window of a process covered the measured
    #: windows of every process of its host in a cycle; negative: that much of a workload
    #: ran outside it (``energy_window_gap``). None without recorded energy windows.
    energy_window_margin_s: float | None = None
    config_hashes: tuple[str, ...] = ()
    method: str = "late"


class AggregatedResult(FrozenModel):
    """An experiment's combined result across processes (see DESIGN.md aggregation rules)."""

    schema_version: int = SCHEMA_VERSION
    experiment_id: str
    config_name: str
    config_hash: str
    effective_config: dict[str, Any]
    engine: EngineInfo = EngineInfo()
    model: ModelInfo
    aggregation: AggregationMetadata
    timestamps: Timestamps
    inference: InferenceMetrics
    energy: EnergyMetrics | None = None
    compute: ComputeMetrics = ComputeMetrics()
    memory: MemoryStats = MemoryStats()
    processes: tuple[ProcessSummary, ...] = ()
    cycle_stats: dict[str, MetricStats] = Field(default_factory=dict)
    #: Serving runs only: the serving figures (one load generator, so one process).
    serving: ServingMetrics | None = None
    environment: EnvironmentInfo | None = None
    warnings: tuple[MeasurementWarning, ...] = ()

    _v = field_validator("schema_version")(_check_schema_version)
