"""The orchestrator meets the other ranks at barriers around the idle baseline and at both
edges of every measured window (energy started after, stopped after, the barrier)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fakes.orchestration import FakeBackend, FakeEngine, fake_collaborators, fake_config

from llm_energy_measure.exceptions import InferenceError
from llm_energy_measure.orchestration import ExperimentOrchestrator, ProcessContext


def _run(tmp_path: Path, engine: FakeEngine, **cfg: object) -> list[str]:
    events: list[str] = []
    ctx = ProcessContext(process_index=1, num_processes=2, local_rank=1,
                         barrier=lambda label: events.append(f"barrier {label}"))
    collab = fake_collaborators(tmp_path, engine, FakeBackend(events=events))
    ExperimentOrchestrator(collab, ctx).run(fake_config(**cfg), "exp-1")
    return events


def test_barriers_bracket_baseline_and_every_window(tmp_path: Path) -> None:
    events = _run(tmp_path, FakeEngine(), cycles=2,
                  energy={"baseline": {"enabled": True, "duration_s": 0.1}})
    window = ["barrier window_open", "energy start", "barrier window_close", "energy stop"]
    assert events == ["barrier baseline_start", "baseline", "barrier baseline_end",
                      *window, *window]


def test_without_baseline_only_the_windows_synchronise(tmp_path: Path) -> None:
    events = _run(tmp_path, FakeEngine(), energy={"baseline": {"enabled": False}})
    assert events == ["barrier window_open", "energy start", "barrier window_close",
                      "energy stop"]


def test_a_failed_window_is_closed_without_waiting_for_the_others(tmp_path: Path) -> None:
    events: list[str] = []
    with pytest.raises(InferenceError):
        ctx = ProcessContext(barrier=lambda label: events.append(f"barrier {label}"))
        collab = fake_collaborators(tmp_path, FakeEngine(fail_on_cycle=0),
                                    FakeBackend(events=events))
        ExperimentOrchestrator(collab, ctx).run(
            fake_config(energy={"baseline": {"enabled": False}}), "exp-1")
    assert events == ["barrier window_open", "energy start", "energy stop"]
