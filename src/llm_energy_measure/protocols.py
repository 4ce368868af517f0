"""Interfaces the orchestrator depends on; each has a real implementation on the run path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from llm_energy_measure.config.models import ExperimentConfig
    from llm_energy_measure.core.types import (
        EnergyReading,
        InferenceOutput,
        LoadedModel,
        Prompt,
    )
    from llm_energy_measure.domain import (
        AggregatedResult,
        ComputeMetrics,
        MemoryStats,
        RawProcessResult,
    )


@runtime_checkable
class ModelLoader(Protocol):
    """Loads a model and tokenizer as the config says."""

    def load(self, config: ExperimentConfig) -> LoadedModel: ...


@runtime_checkable
class InferenceEngine(Protocol):
    """Runs the workload and measures tokens and latency per request.

    ``on_window_open`` / ``on_window_close`` are called at the edges of the measured window
    (after inputs are prepared, around the device synchronizes), so that energy and memory
    measurements bracket exactly what is timed.
    """

    def run(
        self,
        loaded: LoadedModel,
        prompts: Sequence[Prompt],
        config: ExperimentConfig,
        *,
        cycle: int = 0,
        on_batch_done: Callable[[int], None] | None = None,
        on_window_open: Callable[[], None] | None = None,
        on_window_close: Callable[[], None] | None = None,
    ) -> InferenceOutput: ...


@runtime_checkable
class EnergyBackend(Protocol):
    """Measures energy of the devices it covers over a window.

    ``measure_baseline`` returns idle power per device id (W); ``start``/``stop`` bracket the
    measured window; ``close`` releases resources and is safe to call twice.
    """

    name: str

    def measure_baseline(self, duration_s: float) -> dict[str, float]: ...

    def start(self) -> None: ...

    def stop(self) -> EnergyReading: ...

    def close(self) -> None: ...


@runtime_checkable
class MetricsCollector(Protocol):
    """Memory peaks over a window and compute efficiency of a workload."""

    def start_window(self) -> None: ...

    def stop_window(self) -> MemoryStats: ...

    def compute(self, loaded: LoadedModel, output: InferenceOutput) -> ComputeMetrics: ...


@runtime_checkable
class ResultsRepository(Protocol):
    """Stores raw and aggregated results."""

    def save_raw(self, result: RawProcessResult) -> object: ...

    def load_all_raw(self, experiment_id: str) -> list[RawProcessResult]: ...

    def save_aggregated(self, result: AggregatedResult) -> object: ...

    def load_aggregated(self, experiment_id: str) -> AggregatedResult | None: ...

    def list_experiments(self) -> list[str]: ...

    def list_aggregated(self) -> list[str]: ...

    def has_raw(self, experiment_id: str) -> bool: ...

    def has_aggregated(self, experiment_id: str) -> bool: ...

    def delete_experiment(self, experiment_id: str) -> None: ...
