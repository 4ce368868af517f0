"""Warm-up before the measured window, and cleanup that always runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from loguru import logger

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.types import LoadedModel, Prompt
from llm_energy_measure.protocols import InferenceEngine

#: Convergence is judged over this many most recent warm-up runs.
CONVERGENCE_WINDOW = 3


@dataclass
class WarmupResult:
    """What the warm-up did: its runs' durations (s) and whether they converged."""

    durations_s: list[float] = field(default_factory=list)
    converged: bool | None = None

    @property
    def runs(self) -> int:
        return len(self.durations_s)


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Sample std / mean; None for fewer than two values or a zero mean."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    if mean == 0:
        return None
    return statistics.stdev(values) / abs(mean)


def run_warmup(
    engine: InferenceEngine,
    loaded: LoadedModel,
    prompts: Sequence[Prompt],
    config: ExperimentConfig,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> WarmupResult:
    """Real generate calls of the workload's shape, excluded from the measured window.

    ``fixed`` mode runs ``warmup.runs`` calls. ``convergence`` mode runs until the coefficient
    of variation of the last three durations is under ``warmup.cv_threshold`` (converged) or
    ``warmup.max_runs`` is reached (not converged).
    """
    cfg = config.warmup
    # Warm-up must not wait for simulated arrivals.
    warm_config = config.model_copy(update={"traffic": config.traffic.model_copy(
        update={"enabled": False})})
    batch, runs = engine.warmup_plan(prompts, config)
    result = WarmupResult()
    limit = cfg.runs if cfg.mode == "fixed" else cfg.max_runs
    if runs is not None:  # the engine decides (e.g. a served load's warm-up requests)
        limit, cfg = runs, cfg.model_copy(update={"mode": "fixed"})
    for _ in range(limit):
        t0 = clock()
        engine.run(loaded, batch, warm_config, cycle=-1)
        result.durations_s.append(clock() - t0)
        if cfg.mode == "convergence" and len(result.durations_s) >= CONVERGENCE_WINDOW:
            cv = coefficient_of_variation(result.durations_s[-CONVERGENCE_WINDOW:])
            if cv is not None and cv < cfg.cv_threshold:
                result.converged = True
                break
    if cfg.mode == "convergence" and result.converged is None:
        result.converged = False
    logger.debug(f"warm-up: {result.runs} run(s), converged={result.converged}")
    return result


@contextmanager
def cleanup_on_exit(*closers: Callable[[], object]) -> Iterator[None]:
    """Run every closer when the block exits, however it exits; a failing closer is logged."""
    try:
        yield
    finally:
        for close in closers:
            try:
                close()
            except Exception as exc:  # cleanup must never mask the original error
                logger.warning(f"cleanup step failed: {exc}")
