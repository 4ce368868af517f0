"""Immutable domain models: metrics, results, model info, environment."""

from llm_energy_measure.domain.engine import EngineInfo
from llm_energy_measure.domain.environment import EnvironmentInfo, GpuInfo
from llm_energy_measure.domain.metrics import (
    ComputeMetrics,
    CycleMetrics,
    DeviceEnergy,
    EnergyMetrics,
    FlopsResult,
    InferenceMetrics,
    LatencyStats,
    MeasurementWarning,
    MemoryStats,
    MetricStats,
    RequestRecord,
    Timestamps,
    UnmeasuredEnergy,
    UtilisationSample,
)
from llm_energy_measure.domain.model_info import ModelInfo, QuantizationSpec
from llm_energy_measure.domain.results import (
    AggregatedResult,
    AggregationMetadata,
    ProcessSummary,
    RawProcessResult,
)
from llm_energy_measure.domain.serving import (
    EnergyAttribution,
    EnergyStats,
    OutputLength,
    PromptBucket,
    ServerCheck,
    ServingMetrics,
    SloMetrics,
    SloTarget,
    WindowFigures,
)

__all__ = [
    "AggregatedResult",
    "AggregationMetadata",
    "ComputeMetrics",
    "CycleMetrics",
    "DeviceEnergy",
    "EnergyAttribution",
    "EnergyMetrics",
    "EnergyStats",
    "EngineInfo",
    "EnvironmentInfo",
    "FlopsResult",
    "GpuInfo",
    "InferenceMetrics",
    "LatencyStats",
    "MeasurementWarning",
    "MemoryStats",
    "MetricStats",
    "ModelInfo",
    "OutputLength",
    "ProcessSummary",
    "PromptBucket",
    "QuantizationSpec",
    "RawProcessResult",
    "RequestRecord",
    "ServerCheck",
    "ServingMetrics",
    "SloMetrics",
    "SloTarget",
    "Timestamps",
    "UnmeasuredEnergy",
    "UtilisationSample",
    "WindowFigures",
]
