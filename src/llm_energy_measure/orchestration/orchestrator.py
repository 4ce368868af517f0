"""The experiment lifecycle: load, baseline, warm-up, measured cycles, result.

The orchestrator receives its collaborators through the Protocols, so each can be replaced
(in tests by fakes of our own interfaces, in other deployments by other engines).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from loguru import logger

from llm_energy_measure.config import config_hash
from llm_energy_measure.config.models import EnergyConfig, ExperimentConfig
from llm_energy_measure.core.types import EnergyReading, InferenceOutput, LoadedModel, Prompt
from llm_energy_measure.domain import (
    ComputeMetrics,
    CycleMetrics,
    EnergyMetrics,
    EnvironmentInfo,
    InferenceMetrics,
    MeasurementWarning,
    MemoryStats,
    RawProcessResult,
    RequestRecord,
    ServingMetrics,
    Timestamps,
)
from llm_energy_measure.exceptions import LLMBenchError
from llm_energy_measure.interrupts import raise_if_stopped
from llm_energy_measure.orchestration.cycles import (
    combine_outputs,
    combine_readings,
    cycle_metrics,
    peak_memory,
    with_serving,
)
from llm_energy_measure.orchestration.serving import (
    combine_serving,
    serving_metrics,
    with_in_flight,
)
from llm_energy_measure.orchestration.slo import (
    attribute_window,
    combine_attributions,
    slo_metrics,
)
from llm_energy_measure.orchestration.warmup import WarmupResult, cleanup_on_exit, run_warmup
from llm_energy_measure.protocols import (
    ComputeEstimator,
    EnergyBackend,
    InferenceEngine,
    MemoryWindow,
    ResultsRepository,
)
from llm_energy_measure.security import redact_secrets


def _no_barrier(label: str) -> None:
    """A single process has no one to wait for."""


@dataclass
class ProcessContext:
    """Where this process sits in a (possibly multi-process) experiment.

    ``barrier(label)`` returns when every process of the launch has reached the point
    ``label``; the orchestrator calls it around the idle baseline and at both edges of every
    measured window, so that the windows of all processes overlap.
    """

    process_index: int = 0
    num_processes: int = 1
    local_rank: int = 0
    hostname: str = field(default_factory=socket.gethostname)
    barrier: Callable[[str], None] = _no_barrier

    @property
    def is_host_leader(self) -> bool:
        """Local rank 0 measures the host-level domains (CPU package, DRAM) of its host."""
        return self.local_rank == 0


class PromptSource(Protocol):
    """This process's prompts for ``config`` (tokenized with the loaded tokenizer) and
    notes for the result (e.g. how many were truncated)."""

    def __call__(
        self, config: ExperimentConfig, loaded: LoadedModel, /
    ) -> tuple[list[Prompt], list[str]]: ...


class EnergyBackendFactory(Protocol):
    """The energy backend covering the devices this process's model uses."""

    def __call__(
        self, config: ExperimentConfig, context: ProcessContext, loaded: LoadedModel, /
    ) -> EnergyBackend: ...


class EnergyBuilder(Protocol):
    """Energy figures of one window from a backend's reading (``core.energy``)."""

    def __call__(
        self,
        reading: EnergyReading,
        /,
        *,
        baseline_power_w: dict[str, float] | None,
        window_s: float,
        output_tokens: int,
        num_requests: int,
        config: EnergyConfig,
    ) -> tuple[EnergyMetrics | None, list[MeasurementWarning]]: ...


def _nothing_to_close() -> None:
    """Collaborators that own no resource."""


@dataclass
class Collaborators:
    """Everything the orchestrator calls out to."""

    engine: InferenceEngine
    energy_backend: EnergyBackendFactory
    memory: MemoryWindow
    compute: ComputeEstimator
    repository: ResultsRepository
    prompts: PromptSource
    energy_builder: EnergyBuilder
    environment: Callable[[], EnvironmentInfo]
    """Called once, after the model is loaded and before the idle baseline: the recorded
    clocks and temperatures are those the measurement started from."""
    close: Callable[[], None] = _nothing_to_close
    """Releases what the collaborators share (e.g. the GPU handles); called once at the end."""


class _Window:
    """Starts the energy backend and memory window when the engine opens its measured window,
    stops them when it closes (once, whichever of the engine or a failure closes it).

    With several processes, every process starts its energy backend and then passes the
    barrier that releases the workload, and passes another barrier before stopping it: all
    energy windows then span the same system window (first start to last end), so host
    domains measured by one process per host cover the time every process of that host was
    measuring, however long a backend takes to start. A process that finishes its share
    early waits inside its energy window; its own timing window (tokens / its time) ends when
    its last batch does. ``edges()`` gives the energy window's wall-clock edges (after the
    backend started, before it stops) so that aggregation can check the overlap.
    """

    def __init__(
        self,
        metrics: MemoryWindow,
        backend: EnergyBackend,
        barrier: Callable[[str], None] = _no_barrier,
    ) -> None:
        self._metrics = metrics
        self._backend = backend
        self._barrier = barrier
        self._opened = False
        self._reading: EnergyReading | None = None
        self._memory: MemoryStats | None = None
        self._energy_start = self._energy_end = 0.0
        self._memory_open = False

    def open(self) -> None:
        self._backend.start()
        self._opened = True
        self._energy_start = time.time()
        self._barrier("window_open")
        self._metrics.start_window()
        self._memory_open = True

    def close(self, *, synchronized: bool = True) -> None:
        """Stop the windows; ``synchronized=False`` (after a failure) skips the barrier."""
        if self._opened and self._reading is None:
            if synchronized:
                self._barrier("window_close")
            self._energy_end = time.time()
            self._reading = self._backend.stop()
            # A barrier that failed at the opening leaves no memory window to stop.
            self._memory = self._metrics.stop_window() if self._memory_open else MemoryStats()

    def edges(self) -> Timestamps:
        """Wall-clock (epoch s) edges of the energy window, inside the backend's own."""
        return Timestamps(start=self._energy_start, end=self._energy_end,
                          duration_s=max(0.0, self._energy_end - self._energy_start))

    def result(self) -> tuple[EnergyReading, MemoryStats]:
        if self._reading is None or self._memory is None:
            raise LLMBenchError("the inference engine never opened its measured window")
        return self._reading, self._memory


@dataclass
class _Measured:
    """What the measured cycles produced, cycle by cycle."""

    outputs: list[InferenceOutput] = field(default_factory=list)
    readings: list[EnergyReading] = field(default_factory=list)
    cycles: list[CycleMetrics] = field(default_factory=list)
    memories: list[MemoryStats] = field(default_factory=list)
    cycle_warnings: list[MeasurementWarning] = field(default_factory=list)
    serving: list[ServingMetrics] = field(default_factory=list)


class ExperimentOrchestrator:
    """Runs one process's share of an experiment and stores its raw result."""

    def __init__(
        self,
        collaborators: Collaborators,
        context: ProcessContext | None = None,
        *,
        on_progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.c = collaborators
        self.ctx = context or ProcessContext()
        self._progress = on_progress

    def _report(self, stage: str, done: int = 0, total: int = 0) -> None:
        if self._progress is not None:
            self._progress(stage, done, total)

    def run(self, config: ExperimentConfig, experiment_id: str) -> RawProcessResult:
        """Measure the workload and save this process's raw result (returned)."""
        loaded: LoadedModel | None = None
        backend: EnergyBackend | None = None

        def close_backend() -> None:
            if backend is not None:
                backend.close()

        with cleanup_on_exit(close_backend, lambda: self.c.engine.release(loaded), self.c.close):
            self._report("loading model")
            loaded = self.c.engine.load(config)
            prompts, prompt_notes = self.c.prompts(config, loaded)
            if not prompts:
                raise LLMBenchError("this process received no prompts to measure")
            backend = self.c.energy_backend(config, self.ctx, loaded)
            environment = self.c.environment()
            baseline: dict[str, float] | None = None
            if config.energy.baseline.enabled:
                # Every process idles together: none is loading or warming up meanwhile.
                self.ctx.barrier("baseline_start")
                self._report("measuring idle baseline")
                baseline = backend.measure_baseline(config.energy.baseline.duration_s)
                self.ctx.barrier("baseline_end")
            self._report("warming up")
            warm = run_warmup(self.c.engine, loaded, prompts, config)
            measured = self._measure(config, loaded, prompts, backend, baseline)
            return self._finish(
                config, experiment_id, loaded, warm, measured, baseline, prompt_notes,
                environment,
            )

    def _measure(
        self,
        config: ExperimentConfig,
        loaded: LoadedModel,
        prompts: Sequence[Prompt],
        backend: EnergyBackend,
        baseline: dict[str, float] | None,
    ) -> _Measured:
        measured = _Measured()
        total = len(prompts) * config.cycles
        for cycle in range(config.cycles):
            done_before = cycle * len(prompts)

            def on_batch(n: int, base: int = done_before) -> None:
                self._report("measuring", base + n, total)

            window = _Window(self.c.memory, backend, self.ctx.barrier)
            try:
                output = self.c.engine.run(
                    loaded, prompts, config, cycle=cycle, on_batch_done=on_batch,
                    on_window_open=window.open, on_window_close=window.close,
                )
            except BaseException:
                window.close(synchronized=False)  # the others are not waiting for a failure
                raise
            window.close()  # no-op when the engine closed it
            # A served load stopped by a signal returns what it measured: it is saved
            # (marked partial) before the stop goes on.
            partial = output.serving is not None and output.serving.stop_reason == "stopped"
            if not partial:
                raise_if_stopped()
            reading, memory = window.result()
            measured.memories.append(memory)
            energy, cycle_warnings = self._energy(config, output, reading, baseline)
            if output.serving is not None:
                reading = self._serving(config, output, reading, energy, measured)
            measured.cycle_warnings.extend(cycle_warnings)
            measured.outputs.append(output)
            measured.readings.append(reading)
            figures = cycle_metrics(cycle, output, energy, window.edges())
            if output.serving is not None:
                figures = with_serving(figures, measured.serving[-1])
            measured.cycles.append(figures)
            if partial:
                break
        return measured

    @staticmethod
    def _serving(
        config: ExperimentConfig,
        output: InferenceOutput,
        reading: EnergyReading,
        energy: EnergyMetrics | None,
        measured: _Measured,
    ) -> EnergyReading:
        """Serving figures of one cycle: windows, each request's energy (set on the
        output's records) and the SLO. Returns the reading with the in-flight count on each
        sample."""
        assert output.serving is not None
        baselines = [d.baseline_power_w for d in energy.devices] if energy is not None else []
        output.requests, attributed = attribute_window(
            output.requests, samples=reading.timeseries,
            window_start_epoch_s=output.window.start, window_s=output.window.duration_s,
            total_j=energy.total_energy_j if energy is not None else None,
            baseline_w=sum(b for b in baselines if b is not None) if any(
                b is not None for b in baselines) else None,
            estimated=bool(energy is not None and energy.estimated),
        )
        figures = serving_metrics(
            output.serving, output.requests, window_start_epoch_s=output.window.start,
            window_s=output.window.duration_s, energy=energy, reading=reading,
            sample_interval_ms=config.energy.sample_interval_ms,
        )
        slo = None
        if config.slo is not None:
            slo = slo_metrics(config.slo, output.requests, window_s=figures.whole.duration_s,
                              energy_j=figures.whole.energy_j,
                              estimated=figures.whole.energy_estimated)
        measured.serving.append(figures.model_copy(update={"attribution": attributed,
                                                           "slo": slo}))
        samples = with_in_flight(reading.timeseries, output.requests, output.window.start)
        return replace(reading, timeseries=samples)

    @staticmethod
    def _combined_serving(config: ExperimentConfig, parts: Sequence[ServingMetrics],
                          requests: Sequence[RequestRecord]) -> ServingMetrics | None:
        """The serving figures of every cycle as one (SLO over every request)."""
        if not parts:
            return None
        combined = combine_serving(parts, requests)
        if len(parts) == 1:
            return combined
        slo = None
        if config.slo is not None:
            slo = slo_metrics(config.slo, requests, window_s=combined.whole.duration_s,
                              energy_j=combined.whole.energy_j,
                              estimated=combined.whole.energy_estimated)
        attributions = [p.attribution for p in parts if p.attribution is not None]
        return combined.model_copy(update={
            "slo": slo,
            "attribution": combine_attributions(attributions, requests)
            if len(attributions) == len(parts) else None,
        })

    def _energy(
        self,
        config: ExperimentConfig,
        output: InferenceOutput,
        reading: EnergyReading,
        baseline: dict[str, float] | None,
    ) -> tuple[EnergyMetrics | None, list[MeasurementWarning]]:
        """Energy figures of ``output`` (one cycle, or all combined) from its reading."""
        return self.c.energy_builder(
            reading,
            baseline_power_w=baseline,
            window_s=output.window.duration_s,
            output_tokens=output.output_tokens,
            num_requests=output.ok_requests,
            config=config.energy,
        )

    def _finish(
        self,
        config: ExperimentConfig,
        experiment_id: str,
        loaded: LoadedModel,
        warm: WarmupResult,
        measured: _Measured,
        baseline: dict[str, float] | None,
        prompt_notes: list[str],
        environment: EnvironmentInfo,
    ) -> RawProcessResult:
        combined = combine_outputs(measured.outputs)
        reading = combine_readings(measured.readings)
        energy, energy_warnings = self._energy(config, combined, reading, baseline)
        inference = InferenceMetrics.from_requests(combined.requests, combined.compute_time_s)
        engine = self.c.engine.info(loaded, config)
        caps = self.c.engine.capabilities
        compute = (self.c.compute.compute(loaded, combined) if caps.flops_by_architecture
                   else ComputeMetrics())
        memory_update: dict[str, object] = {"model_weights_bytes": loaded.info.weight_bytes}
        if not caps.torch_memory_peaks:
            memory_update |= {"gpu_peak_allocated_bytes": None, "gpu_peak_reserved_bytes": None}
        if not caps.process_memory:
            memory_update |= {"cpu_peak_rss_bytes": None}
        memory = peak_memory(measured.memories).model_copy(update=memory_update)
        warnings = self._warnings(loaded, combined, reading, energy_warnings, prompt_notes, warm,
                                  measured.cycle_warnings)
        devices = energy.devices if energy is not None else ()
        counters = tuple(sorted({d.source for d in devices if d.method == "counter"}))
        raw = RawProcessResult(
            experiment_id=experiment_id,
            process_index=self.ctx.process_index,
            num_processes=self.ctx.num_processes,
            local_rank=self.ctx.local_rank,
            hostname=self.ctx.hostname,
            config_name=config.config_name,
            config_hash=config_hash(config),
            effective_config=redact_secrets(config.model_dump(mode="json")),
            engine=engine,
            model=loaded.info,
            timestamps=combined.window,
            inference=inference,
            requests=tuple(combined.requests),
            energy=energy,
            compute=compute,
            memory=memory,
            cycles=tuple(measured.cycles),
            timeseries=tuple(reading.timeseries) if config.energy.save_timeseries else (),
            serving=self._combined_serving(config, measured.serving, combined.requests),
            warmup_runs=warm.runs,
            warmup_converged=warm.converged,
            seed=config.seed,
            environment=environment.model_copy(update={"energy_counters": counters}),
            warnings=tuple(warnings),
        )
        # A stop swallowed during the last stage is not ignored; a served load that the stop
        # ended is saved first (marked partial), then the stop goes on.
        partial = raw.serving is not None and raw.serving.partial
        if not partial:
            raise_if_stopped()
        self.c.repository.save_raw(raw)
        if partial:
            raise_if_stopped()
        logger.info(
            f"process {self.ctx.process_index}: {inference.output_tokens} output tokens in "
            f"{inference.inference_time_s:.3f} s"
        )
        return raw

    def _warnings(
        self,
        loaded: LoadedModel,
        output: InferenceOutput,
        reading: EnergyReading,
        energy_warnings: list[MeasurementWarning],
        prompt_notes: list[str],
        warm: WarmupResult,
        cycle_warnings: list[MeasurementWarning],
    ) -> list[MeasurementWarning]:
        idx = self.ctx.process_index
        found: list[MeasurementWarning] = []
        if loaded.info.random_weights:
            found.append(MeasurementWarning(
                code="random_weights", severity="info",
                message=f"model {loaded.info.name} has random weights: timings and energy are "
                        "real, generated text is meaningless"))
        found.extend(MeasurementWarning(code="prompts", severity="info", message=note)
                     for note in prompt_notes)
        if warm.converged is False:
            found.append(MeasurementWarning(
                code="warmup_not_converged",
                message=f"warm-up did not converge in {warm.runs} runs"))
        found.extend(output.warnings)
        found.extend(reading.warnings)
        found.extend(energy_warnings)
        # Per-cycle checks (e.g. a cycle too short for the counter) are kept too; duplicates
        # of the whole-run warnings are dropped below.
        found.extend(cycle_warnings)
        unique: dict[tuple[str, str], MeasurementWarning] = {}
        for w in found:
            unique.setdefault((w.code, w.message), w.model_copy(update={"process_index": idx}))
        return list(unique.values())
