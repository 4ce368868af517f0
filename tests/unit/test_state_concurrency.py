"""Two processes writing one state file at the same time lose no update."""

from __future__ import annotations

import json
import multiprocessing
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_energy_measure.state import ExperimentState, StateStore

UPDATES_PER_WRITER = 50


def _append_entries(base_dir: str, writer: int, start: Any) -> None:
    """Child process: wait for the start signal, then append 50 entries one update at a time."""
    store = StateStore(Path(base_dir))
    start.wait(timeout=30)

    def append(index: int) -> Callable[[ExperimentState], None]:
        def change(state: ExperimentState) -> None:
            state.progress.setdefault("entries", []).append(f"w{writer}-{index}")

        return change

    store.mark_process("exp-1", writer, "running")
    for index in range(UPDATES_PER_WRITER):
        store.update("exp-1", append(index))
    store.mark_process("exp-1", writer, "completed")


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method")
def test_two_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.create("exp-1", config_name="concurrency", num_processes=2)
    store.mark_running("exp-1")

    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    writers = [ctx.Process(target=_append_entries, args=(str(tmp_path), w, start)) for w in (0, 1)]
    for proc in writers:
        proc.start()
    start.set()
    for proc in writers:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in writers] == [0, 0]

    raw = json.loads(store.path_for("exp-1").read_text(encoding="utf-8"))
    entries = raw["progress"]["entries"]
    assert len(entries) == 2 * UPDATES_PER_WRITER
    assert sorted(entries) == sorted(f"w{w}-{i}" for w in (0, 1) for i in range(UPDATES_PER_WRITER))
    # Each writer's own entries stay in its order.
    for w in (0, 1):
        mine = [e for e in entries if e.startswith(f"w{w}-")]
        assert mine == [f"w{w}-{i}" for i in range(UPDATES_PER_WRITER)]

    state = store.load("exp-1")
    assert state is not None
    # Both ranks' marks landed; the experiment is completed only once aggregated.
    assert state.status == "running"
    assert [state.processes[r].status for r in (0, 1)] == ["completed", "completed"]
    assert state.processes[0].pid != state.processes[1].pid
    leftovers = [p.name for p in store.state_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
