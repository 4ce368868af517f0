"""A stop signal is never lost: SIGTERM stops like Ctrl+C, with its own exit code, and a
stop swallowed inside a finalizer is raised at the next checkpoint."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.factories import make_environment
from tests.unit.test_engines import _Backend, _Memory, _RemoteEngine

from llm_energy_measure import interrupts
from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.energy import build_energy_metrics
from llm_energy_measure.core.types import Prompt
from llm_energy_measure.exceptions import exit_code_for
from llm_energy_measure.orchestration import Collaborators, run_experiment
from llm_energy_measure.orchestration.launch.rank import watch_supervisor
from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.state import StateStore


@pytest.fixture
def stop_handlers() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    interrupts.install_stop_handlers()
    yield
    interrupts.reset()
    signal.signal(signal.SIGINT, previous[0])
    signal.signal(signal.SIGTERM, previous[1])


def test_exit_codes_of_stops() -> None:
    assert exit_code_for(interrupts.Stopped(signal.SIGTERM)) == 143
    assert exit_code_for(interrupts.Stopped(signal.SIGINT)) == 130
    assert exit_code_for(KeyboardInterrupt()) == 130


class _SignalsWhenCollected:
    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)  # the KeyboardInterrupt is swallowed here


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_swallowed_stop_is_raised_at_the_next_checkpoint(stop_handlers: None) -> None:
    obj = _SignalsWhenCollected()
    del obj
    gc.collect()  # "Exception ignored in ..." : execution goes on
    with pytest.raises(interrupts.Stopped) as stopped:
        interrupts.raise_if_stopped()
    assert stopped.value.signum == signal.SIGINT


class _StopAfterWindow(_RemoteEngine):
    """Its measured window ends with a stop signal that a finalizer swallows."""

    def run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        close = kwargs.get("on_window_close")

        def close_then_signal() -> None:
            if close is not None:
                close()
            obj = _SignalsWhenCollected()
            del obj
            gc.collect()

        kwargs["on_window_close"] = close_then_signal
        return super().run(*args, **kwargs)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stop_right_after_the_window_interrupts_the_run(
    tmp_path: Path, stop_handlers: None
) -> None:
    collab = Collaborators(
        engine=_StopAfterWindow(), energy_backend=lambda c, ctx, loaded: _Backend(),
        memory=_Memory(), compute=_Memory(),  # type: ignore[arg-type]
        repository=FileSystemRepository(tmp_path),
        prompts=lambda c, loaded: ([Prompt(0, "p")], []),
        energy_builder=build_energy_metrics, environment=lambda: make_environment("h"),
    )
    config = ExperimentConfig.model_validate({"config_name": "r", "warmup": {"runs": 0},
                                              "energy": {"baseline": {"enabled": False}}})
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, experiment_id="e1", results_dir=tmp_path, collaborators=collab)
    state = StateStore(tmp_path).load("e1")
    assert state is not None and state.status == "interrupted"
    assert state.processes[0].status == "pending"  # its attempt is void, resume reruns it
    assert not FileSystemRepository(tmp_path).has_raw("e1")


def test_a_rank_notices_its_supervisor_is_gone() -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    gone: list[float] = []
    started = time.monotonic()
    thread = watch_supervisor(parent.pid, lambda: gone.append(time.monotonic()),
                              interval_s=0.05)
    parent.wait()
    thread.join(timeout=5)
    assert gone and gone[0] - started < 5
