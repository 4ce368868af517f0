"""What every inference engine provides, and what the orchestrator may rely on.

An engine owns what only it knows: loading the model, how the workload is submitted, and how
each request's tokens and times are obtained. The orchestrator owns the measured window,
energy, memory, baseline, warm-up and cycles for every engine alike (see
``orchestration.orchestrator``), so that every engine's numbers follow the same definitions.

An engine declares what it can report in ``capabilities``. A figure it cannot report is null
in the result, with the reason in ``EngineInfo.unreported``; never 0.
"""

from __future__ import annotations

import gc
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from llm_energy_measure.domain import EngineInfo

if TYPE_CHECKING:
    from llm_energy_measure.config.models import ExperimentConfig
    from llm_energy_measure.core.types import InferenceOutput, LoadedModel, Prompt


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine's results contain.

    ``token_timestamps``: TTFT and TPOT from the times of the generated tokens (or decoding
    steps). ``token_gaps``: every gap between consecutive tokens is known (ITL per token
    gap); an engine that exposes only the first and last token times has TPOT but not the
    gaps. ``flops_by_architecture``: the analytic FLOPs model applies (the architecture is
    known and the sequences are the real ones). ``torch_memory_peaks``: the model runs in
    this process under torch's caching allocator, so GPU peak allocated/reserved memory over
    the window is read from it. ``process_memory``: the model runs in this process (or its
    children), so this process's peak RSS is the model's; false for a model served by
    another process.
    """

    token_timestamps: bool = True
    token_gaps: bool = True
    flops_by_architecture: bool = True
    torch_memory_peaks: bool = True
    process_memory: bool = True

    def unreported(self) -> dict[str, str]:
        """Figures left null because of a missing capability, with the reason."""
        notes: dict[str, str] = {}
        if not self.token_timestamps:
            notes["ttft"] = notes["tpot"] = notes["itl"] = (
                "the engine does not expose per-token times")
        elif not self.token_gaps:
            notes["itl"] = ("the engine exposes only each request's first and last token "
                            "times: ITL per token gap is not reported (TPOT per request is)")
        if not self.flops_by_architecture:
            notes["compute"] = "the engine's workload has no analytic FLOPs model"
        if not self.torch_memory_peaks:
            notes["memory.gpu_peak_allocated_bytes"] = notes["memory.gpu_peak_reserved_bytes"] = (
                "the model does not run under this process's torch allocator"
            )
        if not self.process_memory:
            notes["memory.cpu_peak_rss_bytes"] = (
                "the model runs in the server's process, not in the measuring one")
        return notes


class InferenceEngine(ABC):
    """Loads a model and measures one pass over the workload.

    ``run`` calls ``on_window_open`` / ``on_window_close`` at the edges of its measured window
    (after inputs are prepared, each right after a device synchronize), so that energy and
    memory measurements bracket exactly what is timed; ``on_batch_done(n)`` after each
    submission with the requests finished so far in this call.
    """

    #: The ``engine`` config value that selects this engine.
    name: ClassVar[str]
    capabilities: EngineCapabilities = EngineCapabilities()

    @abstractmethod
    def load(self, config: ExperimentConfig) -> LoadedModel:
        """Load the model (and tokenizer) as the config says."""

    @abstractmethod
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
    ) -> InferenceOutput:
        """Measure one pass over ``prompts`` (times relative to the window start)."""

    def warmup_plan(
        self, prompts: Sequence[Prompt], config: ExperimentConfig
    ) -> tuple[list[Prompt], int | None]:
        """The prompts of one warm-up call and how many calls (None: as ``warmup`` says).
        Default: the workload's first batch, so shapes match the run."""
        return list(prompts[: max(1, config.batching.batch_size)]), None

    def version(self) -> str | None:
        """The version of the library the engine drives."""
        return None

    def batching(self, config: ExperimentConfig) -> str:
        """How the workload is submitted, in words recorded with the result."""
        return "engine-defined"

    def details(self, loaded: LoadedModel) -> dict[str, str]:
        """Engine facts worth recording (e.g. attention backend, KV-cache size)."""
        return {}

    def info(self, loaded: LoadedModel, config: ExperimentConfig) -> EngineInfo:
        """What the result records about the engine."""
        return EngineInfo(
            name=self.name, version=self.version(), batching=self.batching(config),
            unreported=self.capabilities.unreported(), details=self.details(loaded),
        )

    def release(self, loaded: LoadedModel | None) -> None:
        """Drop the model and free accelerator memory (safe with None, safe twice)."""
        if loaded is not None:
            loaded.model = None
            loaded.tokenizer = None
        gc.collect()
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a run dependency
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
