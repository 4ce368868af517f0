"""ExperimentOrchestrator and run_experiment with fakes of our own protocols: known numbers in,
the same numbers out, state transitions, cycles and failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.factories import make_model_info
from tests.fakes.orchestration import FakeBackend, FakeEngine, fake_collaborators, fake_config

from llm_energy_measure.exceptions import InferenceError
from llm_energy_measure.orchestration import run_experiment
from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.state import StateStore

IN_TOKENS = 10  # per prompt
OUT_TOKENS = 4  # per prompt
WINDOW_S = 2.0  # per cycle
POWER_W = 50.0  # constant device power in the window
IDLE_W = 20.0  # baseline


def _fakes(window_s: float = WINDOW_S, **engine: Any) -> tuple[FakeEngine, FakeBackend]:
    return (FakeEngine(in_tokens=IN_TOKENS, out_tokens=OUT_TOKENS, window_s=window_s, **engine),
            FakeBackend(power_w=POWER_W, idle_w=IDLE_W, window_s=window_s))


def test_known_numbers_flow_through_to_the_stored_result(tmp_path: Path) -> None:
    engine, backend = _fakes()
    result = run_experiment(fake_config(), experiment_id="exp1", results_dir=tmp_path,
                            collaborators=fake_collaborators(tmp_path, engine, backend)).aggregated
    assert result is not None
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
    engine, backend = _fakes()
    result = run_experiment(fake_config(cycles=3), experiment_id="exp3", results_dir=tmp_path,
                            collaborators=fake_collaborators(tmp_path, engine, backend)).aggregated
    assert result is not None
    assert engine.calls[-3:] == [0, 1, 2]
    assert result.inference.output_tokens == 72
    assert result.energy is not None
    assert result.energy.total_energy_j == pytest.approx(300.0)
    stats = result.cycle_stats["output_tokens_per_s"]
    assert stats.n == 3 and stats.mean == pytest.approx(12.0) and stats.std == pytest.approx(0.0)


def test_failure_is_recorded_with_its_cause_and_cleanup_runs(tmp_path: Path) -> None:
    engine, backend = _fakes(fail_on_cycle=1)
    with pytest.raises(InferenceError):
        run_experiment(fake_config(cycles=2), experiment_id="bad", results_dir=tmp_path,
                       collaborators=fake_collaborators(tmp_path, engine, backend))
    state = StateStore(tmp_path).load("bad")
    assert state is not None and state.status == "failed"
    assert state.error is not None and "out of memory" in state.error
    assert backend.closed == 1
    assert not FileSystemRepository(tmp_path).has_aggregated("bad")


def test_a_cycle_too_short_for_the_gpu_counter_is_warned_even_when_the_sum_is_long(
    tmp_path: Path,
) -> None:
    engine, backend = _fakes(window_s=0.6)  # 2 cycles: 1.2 s in all, 0.6 s each (< 1 s)
    run_experiment(fake_config(cycles=2), experiment_id="short", results_dir=tmp_path,
                   collaborators=fake_collaborators(tmp_path, engine, backend))
    raw = FileSystemRepository(tmp_path).load_all_raw("short")[0]
    shorts = [w for w in raw.warnings if w.code == "short_window"]
    assert len(shorts) == 1 and "0.6" in shorts[0].message
