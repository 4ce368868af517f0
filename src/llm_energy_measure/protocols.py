"""Interfaces the orchestrator depends on; each has a real implementation on the run path.

- ``InferenceEngine``: ``core.engines.*`` (the shared base is the interface itself);
- ``EnergyBackend``: ``core.energy_backends.*``, created by ``create_energy_backend``;
- ``MemoryWindow``: ``core.memory.MemoryWindow``;
- ``ComputeEstimator``: ``core.compute_metrics.ComputeEstimator``;
- ``ResultsRepository``: ``storage.repository.FileSystemRepository``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from llm_energy_measure.core.engines.base import EngineCapabilities, InferenceEngine

if TYPE_CHECKING:
    from llm_energy_measure.core.types import EnergyReading, InferenceOutput, LoadedModel
    from llm_energy_measure.domain import (
        AggregatedResult,
        ComputeMetrics,
        MemoryStats,
        RawProcessResult,
    )

__all__ = [
    "ComputeEstimator",
    "EnergyBackend",
    "EngineCapabilities",
    "InferenceEngine",
    "MemoryWindow",
    "ResultsRepository",
]


class EnergyBackend(Protocol):
    """Measures energy of the devices it covers over a window.

    ``measure_baseline`` returns idle power per device id (W); ``start``/``stop`` bracket the
    measured window; ``close`` releases resources (the device handles it owns too) and is safe
    to call twice.
    """

    name: str

    def measure_baseline(self, duration_s: float) -> dict[str, float]: ...

    def start(self) -> None: ...

    def stop(self) -> EnergyReading: ...

    def close(self) -> None: ...


class MemoryWindow(Protocol):
    """Memory peaks over the measured window."""

    def start_window(self) -> None: ...

    def stop_window(self) -> MemoryStats: ...


class ComputeEstimator(Protocol):
    """Compute efficiency (FLOPs, MFU, MBU) of a measured workload."""

    def compute(self, loaded: LoadedModel, output: InferenceOutput) -> ComputeMetrics: ...


class ResultsRepository(Protocol):
    """Stores raw and aggregated results."""

    def save_raw(self, result: RawProcessResult) -> object: ...

    def load_all_raw(self, experiment_id: str) -> list[RawProcessResult]: ...

    def completed_ranks(self, experiment_id: str) -> set[int]: ...

    def save_aggregated(self, result: AggregatedResult) -> object: ...

    def load_aggregated(self, experiment_id: str) -> AggregatedResult | None: ...

    def list_experiments(self) -> list[str]: ...

    def list_aggregated(self) -> list[str]: ...

    def has_raw(self, experiment_id: str) -> bool: ...

    def has_aggregated(self, experiment_id: str) -> bool: ...
