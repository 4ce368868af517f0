"""Fakes of the orchestrator's collaborators with known numbers, set through constructors.

``FakeEngine(window_s=...)`` gives every prompt ``in_tokens`` in and ``out_tokens`` out, each
pass lasting ``window_s`` of fake time; ``FakeBackend(power_w=..., window_s=...)`` reports
``power_w x window_s`` joules on one GPU per window and ``idle_w`` as the baseline. Give both
the same ``window_s``. ``fake_collaborators`` wires them (plus memory and compute fakes, prompts and
a real repository) into ``Collaborators``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.factories import make_environment, make_model_info

from llm_energy_measure.config.models import EnergyConfig, ExperimentConfig
from llm_energy_measure.core.energy import build_energy_metrics
from llm_energy_measure.core.engines.base import InferenceEngine
from llm_energy_measure.core.types import EnergyReading, InferenceOutput, LoadedModel, Prompt
from llm_energy_measure.domain import (
    ComputeMetrics,
    DeviceEnergy,
    EnvironmentInfo,
    MemoryStats,
    RequestRecord,
    Timestamps,
)
from llm_energy_measure.exceptions import InferenceError
from llm_energy_measure.orchestration import Collaborators
from llm_energy_measure.results import FileSystemRepository


class FakeEngine(InferenceEngine):
    """Each prompt: ``in_tokens`` in, ``out_tokens`` out; a pass lasts ``window_s`` of fake
    time. ``fail_on_cycle``: that cycle raises an out-of-memory InferenceError."""

    name = "fake"

    def load(self, config: ExperimentConfig) -> LoadedModel:
        return LoadedModel(model=object(), tokenizer=object(), info=make_model_info(), device="cpu")

    def __init__(
        self,
        *,
        in_tokens: int = 10,
        out_tokens: int = 4,
        window_s: float = 2.0,
        fail_on_cycle: int | None = None,
    ) -> None:
        self.in_tokens = in_tokens
        self.out_tokens = out_tokens
        self.window_s = window_s
        self.fail_on_cycle = fail_on_cycle
        self.calls: list[int] = []
        self.t = 1_000.0
        self.environment_taken_after_calls: int | None = None

    def note_environment(self, env: EnvironmentInfo) -> EnvironmentInfo:
        self.environment_taken_after_calls = len(self.calls)
        return env

    def run(self, loaded: LoadedModel, prompts: Sequence[Prompt], config: ExperimentConfig, *,
            cycle: int = 0, on_batch_done: Callable[[int], None] | None = None,
            on_window_open: Callable[[], None] | None = None,
            on_window_close: Callable[[], None] | None = None) -> InferenceOutput:
        self.calls.append(cycle)
        if on_window_open is not None:
            on_window_open()
        if cycle == self.fail_on_cycle:
            raise InferenceError("out of memory at batch size 4; lower batching.batch_size")
        start = self.t
        self.t += self.window_s
        if on_window_close is not None:
            on_window_close()
        requests = [
            RequestRecord(request_id=p.request_id, cycle=cycle, input_tokens=self.in_tokens,
                          output_tokens=self.out_tokens, submitted_s=0.0, ttft_s=0.1 * (i + 1),
                          tpot_s=0.05, e2e_s=0.5)
            for i, p in enumerate(prompts)
        ]
        return InferenceOutput(
            requests=requests,
            window=Timestamps(start=start, end=self.t, duration_s=self.window_s),
            compute_time_s=self.window_s,
            num_batches=1,
        )


class FakeBackend:
    """One GPU (``gpu:GPU-1``, counter) at ``power_w`` for ``window_s`` per window; the idle
    baseline is ``idle_w``. ``events``, when given, records baseline/start/stop in order."""

    name = "fake"

    def __init__(
        self,
        *,
        power_w: float = 50.0,
        idle_w: float = 20.0,
        window_s: float = 2.0,
        events: list[str] | None = None,
    ) -> None:
        self.power_w = power_w
        self.idle_w = idle_w
        self.window_s = window_s
        self.events = events
        self.closed = 0

    def _event(self, name: str) -> None:
        if self.events is not None:
            self.events.append(name)

    def measure_baseline(self, duration_s: float) -> dict[str, float]:
        self._event("baseline")
        return {"gpu:GPU-1": self.idle_w}

    def start(self) -> None:
        self._event("energy start")

    def stop(self) -> EnergyReading:
        self._event("energy stop")
        dev = DeviceEnergy(device_id="gpu:GPU-1", kind="gpu", scope="device", host="h",
                           method="counter", estimated=False, source="nvml",
                           energy_j=self.power_w * self.window_s, duration_s=self.window_s,
                           mean_power_w=self.power_w, peak_power_w=self.power_w + 5)
        return EnergyReading(devices=[dev], backend="fake")

    def close(self) -> None:
        self.closed += 1


class FakeMetrics:
    """No compute figures; a peak RSS of 123 bytes per window."""

    def start_window(self) -> None:
        pass

    def stop_window(self) -> MemoryStats:
        return MemoryStats(cpu_peak_rss_bytes=123)

    def compute(self, loaded: LoadedModel, output: InferenceOutput) -> ComputeMetrics:
        return ComputeMetrics()


def fake_collaborators(
    results_dir: Path, engine: FakeEngine, backend: FakeBackend
) -> Collaborators:
    """The fakes above, ``prompts.num_prompts`` prompts and a repository at ``results_dir``."""
    def prompts(config: ExperimentConfig, loaded: LoadedModel) -> tuple[list[Prompt], list[str]]:
        return [Prompt(i, f"p{i}") for i in range(config.prompts.num_prompts)], []

    return Collaborators(
        engine=engine, energy_backend=lambda c, ctx, loaded: backend,
        memory=FakeMetrics(), compute=FakeMetrics(), repository=FileSystemRepository(results_dir),
        prompts=prompts,
        energy_builder=build_energy_metrics,
        environment=lambda: engine.note_environment(make_environment("h")),
    )


def fake_config(**fields: Any) -> ExperimentConfig:
    """6 prompts, 2 warm-up runs, 400 g/kWh; ``fields`` replace top-level sections."""
    base: dict[str, Any] = {
        "config_name": "fake", "prompts": {"num_prompts": 6}, "warmup": {"runs": 2},
        "energy": EnergyConfig(carbon_intensity_g_per_kwh=400.0),
    }
    base.update(fields)
    return ExperimentConfig.model_validate(base)
