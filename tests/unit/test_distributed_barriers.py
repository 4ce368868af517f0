"""The orchestrator meets the other ranks at barriers around the idle baseline and at both
edges of every measured window (energy started before the barrier that releases the
workload, stopped after the closing one)."""

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
    window = ["energy start", "barrier window_open", "barrier window_close", "energy stop"]
    assert events == ["barrier baseline_start", "baseline", "barrier baseline_end",
                      *window, *window]


def test_without_baseline_only_the_windows_synchronise(tmp_path: Path) -> None:
    events = _run(tmp_path, FakeEngine(), energy={"baseline": {"enabled": False}})
    assert events == ["energy start", "barrier window_open", "barrier window_close",
                      "energy stop"]


def test_a_failed_window_is_closed_without_waiting_for_the_others(tmp_path: Path) -> None:
    events: list[str] = []
    with pytest.raises(InferenceError):
        ctx = ProcessContext(barrier=lambda label: events.append(f"barrier {label}"))
        collab = fake_collaborators(tmp_path, FakeEngine(fail_on_cycle=0),
                                    FakeBackend(events=events))
        ExperimentOrchestrator(collab, ctx).run(
            fake_config(energy={"baseline": {"enabled": False}}), "exp-1")
    assert events == ["energy start", "barrier window_open", "energy stop"]


class WallClockEngine(FakeEngine):
    """Measures 20 ms of wall-clock work per pass, timed like the real engine: the window
    opens after ``on_window_open`` returns and closes before ``on_window_close``."""

    def run(self, loaded, prompts, config, *, cycle=0, on_batch_done=None,
            on_window_open=None, on_window_close=None):
        import time

        from llm_energy_measure.core.types import InferenceOutput
        from llm_energy_measure.domain import RequestRecord, Timestamps

        if on_window_open is not None:
            on_window_open()
        start, t0 = time.time(), time.perf_counter()
        time.sleep(0.02)
        end, duration_s = time.time(), time.perf_counter() - t0
        if on_window_close is not None:
            on_window_close()
        requests = [RequestRecord(request_id=p.request_id, cycle=cycle, input_tokens=1,
                                  output_tokens=1, submitted_s=0.0, e2e_s=0.01)
                    for p in prompts]
        return InferenceOutput(requests=requests,
                               window=Timestamps(start=start, end=end, duration_s=duration_s),
                               compute_time_s=duration_s, num_batches=1)


class SlowStartBackend(FakeBackend):
    """A backend that takes ``delay_s`` to start (codecarbon's tracker start is slow)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def start(self) -> None:
        import time

        time.sleep(self.delay_s)


def test_every_backend_starts_before_the_workload_of_any_rank(tmp_path: Path) -> None:
    import threading

    from llm_energy_measure.results import FileSystemRepository, aggregate_results

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def rank(index: int, delay_s: float) -> None:
        ctx = ProcessContext(process_index=index, num_processes=2, local_rank=index,
                             hostname="hostA", barrier=lambda label: barrier.wait(timeout=10))
        collab = fake_collaborators(tmp_path, WallClockEngine(), SlowStartBackend(delay_s))
        try:
            ExperimentOrchestrator(collab, ctx).run(
                fake_config(cycles=2, warmup={"runs": 0}, energy={"baseline": {"enabled": False}}),
                "exp-mp")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    # The host leader's backend takes 50 ms to start, rank 1's starts at once.
    threads = [threading.Thread(target=rank, args=(0, 0.05)),
               threading.Thread(target=rank, args=(1, 0.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    raws = FileSystemRepository(tmp_path).load_all_raw("exp-mp")
    by_rank = {r.process_index: r for r in raws}
    for c in range(2):
        leader = by_rank[0].cycles[c]
        other = by_rank[1].cycles[c]
        assert leader.energy_window is not None and other.energy_window is not None
        # Both energy windows opened before either workload started and closed after both
        # ended (before the fix the leader's opened ~50 ms after rank 1 began).
        for edges in (leader.energy_window, other.energy_window):
            assert edges.start <= min(leader.timestamps.start, other.timestamps.start)
            assert edges.end >= max(leader.timestamps.end, other.timestamps.end)
    result = aggregate_results(raws)
    assert result.aggregation.energy_window_margin_s is not None
    assert result.aggregation.energy_window_margin_s >= 0
    assert "energy_window_gap" not in [w.code for w in result.warnings]
