"""ExperimentOrchestrator and run_experiment with fakes of our own protocols: known numbers in,
the same numbers out, state transitions, cycles and failures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tests.factories import make_environment, make_model_info

from llm_energy_measure.config.models import EnergyConfig, ExperimentConfig
from llm_energy_measure.core.energy import build_energy_metrics
from llm_energy_measure.core.types import (
    EnergyReading,
    InferenceOutput,
    LoadedModel,
    Prompt,
)
from llm_energy_measure.domain import (
    ComputeMetrics,
    DeviceEnergy,
    EnvironmentInfo,
    MemoryStats,
    RequestRecord,
    Timestamps,
)
from llm_energy_measure.exceptions import InferenceError
from llm_energy_measure.orchestration import Collaborators, run_experiment
from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.state import StateStore

IN_TOKENS = 10  # per prompt
OUT_TOKENS = 4  # per prompt
WINDOW_S = 2.0  # per cycle
POWER_W = 50.0  # constant device power in the window
IDLE_W = 20.0  # baseline


class FakeLoader:
    def load(self, config: ExperimentConfig) -> LoadedModel:
        return LoadedModel(model=object(), tokenizer=object(), info=make_model_info(), device="cpu")


class FakeEngine:
    """Each prompt: IN_TOKENS in, OUT_TOKENS out; a pass lasts WINDOW_S of fake time."""

    def __init__(self, fail_on_cycle: int | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on_cycle = fail_on_cycle
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
        self.t += WINDOW_S
        if on_window_close is not None:
            on_window_close()
        requests = [
            RequestRecord(request_id=p.request_id, cycle=cycle, input_tokens=IN_TOKENS,
                          output_tokens=OUT_TOKENS, submitted_s=0.0, ttft_s=0.1 * (i + 1),
                          tpot_s=0.05, e2e_s=0.5)
            for i, p in enumerate(prompts)
        ]
        return InferenceOutput(
            requests=requests, window=Timestamps(start=start, end=self.t, duration_s=WINDOW_S),
            compute_time_s=WINDOW_S,
            num_batches=1,
        )


class FakeBackend:
    name = "fake"

    def __init__(self) -> None:
        self.closed = 0

    def measure_baseline(self, duration_s: float) -> dict[str, float]:
        return {"gpu:GPU-1": IDLE_W}

    def start(self) -> None:
        pass

    def stop(self) -> EnergyReading:
        dev = DeviceEnergy(device_id="gpu:GPU-1", kind="gpu", scope="device", host="h",
                           method="counter", estimated=False, source="nvml",
                           energy_j=POWER_W * WINDOW_S, duration_s=WINDOW_S,
                           mean_power_w=POWER_W, peak_power_w=POWER_W + 5)
        return EnergyReading(devices=[dev], backend="fake")

    def close(self) -> None:
        self.closed += 1


class FakeMetrics:
    def start_window(self) -> None:
        pass

    def stop_window(self) -> MemoryStats:
        return MemoryStats(cpu_peak_rss_bytes=123)

    def compute(self, loaded: LoadedModel, output: InferenceOutput) -> ComputeMetrics:
        return ComputeMetrics()


def _collab(tmp_path: Path, engine: FakeEngine, backend: FakeBackend) -> Collaborators:
    def prompts(config: ExperimentConfig, loaded: LoadedModel) -> tuple[list[Prompt], list[str]]:
        return [Prompt(i, f"p{i}") for i in range(config.prompts.num_prompts)], []

    return Collaborators(
        loader=FakeLoader(), engine=engine, energy_backend=lambda c, ctx, loaded: backend,
        metrics=FakeMetrics(), repository=FileSystemRepository(tmp_path), prompts=prompts,
        energy_builder=build_energy_metrics,
        environment=lambda: engine.note_environment(make_environment("h")),
    )


def _config(**kw: object) -> ExperimentConfig:
    base = {"config_name": "fake", "prompts": {"num_prompts": 6},
            "warmup": {"runs": 2}, "energy": EnergyConfig(carbon_intensity_g_per_kwh=400.0)}
    base.update(kw)
    return ExperimentConfig.model_validate(base)


def test_known_numbers_flow_through_to_the_stored_result(tmp_path: Path) -> None:
    engine, backend = FakeEngine(), FakeBackend()
    result = run_experiment(_config(), experiment_id="exp1", results_dir=tmp_path,
                            collaborators=_collab(tmp_path, engine, backend))
    assert engine.calls == [-1, -1, 0]  # two warm-up calls, then the measured cycle
    inf = result.inference
    assert (inf.num_requests, inf.input_tokens, inf.output_tokens) == (6, 60, 24)
    assert inf.output_tokens_per_s == pytest.approx(24 / WINDOW_S)
    assert inf.ttft is not None and inf.ttft.p50_s == pytest.approx(0.35)
    e = result.energy
    assert e is not None
    assert e.total_energy_j == pytest.approx(100.0)
    assert e.static_energy_j == pytest.approx(IDLE_W * WINDOW_S)
    assert e.dynamic_energy_j == pytest.approx(60.0)
    assert e.energy_per_output_token_j == pytest.approx(100.0 / 24)
    assert e.emissions_g == pytest.approx(100.0 / 3.6e6 * 400.0)
    assert e.estimated is False
    assert backend.closed == 1
    repo = FileSystemRepository(tmp_path)
    raw = repo.load_all_raw("exp1")
    assert len(raw) == 1 and raw[0].warmup_runs == 2 and raw[0].memory.cpu_peak_rss_bytes == 123
    assert raw[0].memory.model_weights_bytes == make_model_info().weight_bytes
    # The environment (clocks, temperatures) is the one the measurement started from; the
    # counters the energy backend used are filled in at the end.
    assert engine.environment_taken_after_calls == 0
    assert raw[0].environment.energy_counters == ("nvml",)
    assert repo.load_aggregated("exp1") is not None
    state = StateStore(tmp_path).load("exp1")
    assert state is not None and state.status == "completed" and state.aggregated


def test_cycles_give_statistics_and_sum_energy(tmp_path: Path) -> None:
    engine, backend = FakeEngine(), FakeBackend()
    result = run_experiment(_config(cycles=3), experiment_id="exp3", results_dir=tmp_path,
                            collaborators=_collab(tmp_path, engine, backend))
    assert engine.calls[-3:] == [0, 1, 2]
    assert result.inference.output_tokens == 72
    assert result.energy is not None
    assert result.energy.total_energy_j == pytest.approx(300.0)
    stats = result.cycle_stats["output_tokens_per_s"]
    assert stats.n == 3 and stats.mean == pytest.approx(12.0) and stats.std == pytest.approx(0.0)


def test_failure_is_recorded_with_its_cause_and_cleanup_runs(tmp_path: Path) -> None:
    engine, backend = FakeEngine(fail_on_cycle=1), FakeBackend()
    with pytest.raises(InferenceError):
        run_experiment(_config(cycles=2), experiment_id="bad", results_dir=tmp_path,
                       collaborators=_collab(tmp_path, engine, backend))
    state = StateStore(tmp_path).load("bad")
    assert state is not None and state.status == "failed"
    assert state.error is not None and "out of memory" in state.error
    assert backend.closed == 1
    assert not FileSystemRepository(tmp_path).has_aggregated("bad")


def test_a_cycle_too_short_for_the_gpu_counter_is_warned_even_when_the_sum_is_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(globals(), "WINDOW_S", 0.6)  # 2 cycles: 1.2 s in all, 0.6 s each (< 1 s)
    engine, backend = FakeEngine(), FakeBackend()
    run_experiment(_config(cycles=2), experiment_id="short", results_dir=tmp_path,
                   collaborators=_collab(tmp_path, engine, backend))
    raw = FileSystemRepository(tmp_path).load_all_raw("short")[0]
    shorts = [w for w in raw.warnings if w.code == "short_window"]
    assert len(shorts) == 1 and "0.6" in shorts[0].message
