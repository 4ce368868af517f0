"""Clocks of the measured window: device synchronisation, per-step timestamps, arrivals.

All durations are seconds from ``time.perf_counter`` (monotonic); wall-clock epoch seconds
come from ``time.time`` and are only used for window edges comparable across hosts.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from llm_energy_measure.config.models import TrafficConfig
from llm_energy_measure.core.types import Prompt
from llm_energy_measure.domain import MeasurementWarning
from llm_energy_measure.domain.metrics import MAX_TOKEN_GAPS


def uses_cuda(device: str) -> bool:
    """True when ``device`` ("cpu", "cuda:N", "auto") may place work on a CUDA GPU."""
    return device.startswith("cuda") or device == "auto"


def synchronize(device: str) -> None:
    """Wait until all queued GPU work is done (every visible GPU); no-op on CPU.

    Called before any clock read that bounds GPU work, so the clock measures finished work.
    """
    if not uses_cuda(device):
        return
    import torch

    if not torch.cuda.is_available():
        return
    if device == "auto":
        for index in range(torch.cuda.device_count()):
            torch.cuda.synchronize(index)
    else:
        torch.cuda.synchronize(device)


def make_step_recorder(device: str) -> Any:
    """A ``transformers.StoppingCriteria`` that records a timestamp after every decoding step.

    ``generate`` calls stopping criteria once per generated token, after the token was chosen;
    the recorder synchronises the device and appends ``time.perf_counter()`` to ``times_s``.
    It never stops generation. ``times_s[j]`` is when token ``j`` (0-based) of the batch was
    available; entries beyond the number of tokens kept in the output (a look-ahead step that
    ``generate`` undid) must be ignored by the caller. ``reset()`` clears it for the next batch.
    """
    import torch
    from transformers import StoppingCriteria

    cuda = uses_cuda(device)
    clock = time.perf_counter

    class StepRecorder(StoppingCriteria):
        def __init__(self) -> None:
            self.times_s: list[float] = []
            self._never: Any = None  # the "do not stop" answer, made once per batch shape

        def reset(self) -> None:
            self.times_s = []

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            if cuda:
                synchronize(device)
            self.times_s.append(clock())
            never = self._never
            if never is None or never.shape[0] != input_ids.shape[0] or \
                    never.device != input_ids.device:
                never = self._never = torch.zeros(
                    input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            return never

    return StepRecorder()


def arrival_times(count: int, traffic: TrafficConfig, seed: int) -> list[float]:
    """Simulated arrival times (seconds after the window opens) of ``count`` requests.

    The first request arrives at 0. Later gaps are exponential with mean ``1 / rate_per_s``
    (``poisson``) or exactly ``1 / rate_per_s`` (``constant``). Seeded from ``seed`` so every
    cycle of an experiment replays the same arrivals.
    """
    rng = random.Random(seed)
    gap_s = 1.0 / traffic.rate_per_s
    times: list[float] = []
    t_s = 0.0
    for i in range(count):
        if i > 0:
            t_s += rng.expovariate(traffic.rate_per_s) if traffic.mode == "poisson" else gap_s
        times.append(t_s)
    return times


def workload_arrival_times(
    prompts: Sequence[Prompt], traffic: TrafficConfig, seed: int
) -> list[float]:
    """Arrival times (s after the window opens) of ``prompts`` in the system's arrival process.

    ``traffic.rate_per_s`` is the rate of the whole system: one process of arrivals is drawn
    over the whole workload (``arrival_times`` in request-id order; a prompt's ``request_id``
    is its index in the workload) and each prompt takes the arrival of its own id. A process
    running a shard thus sends its share of one system-wide schedule, and all processes
    together send at the configured rate (the draws are sequential, so the first ``k``
    arrivals do not depend on how many more are drawn).
    """
    if not prompts:
        return []
    system = arrival_times(max(p.request_id for p in prompts) + 1, traffic, seed)
    return [system[p.request_id] for p in prompts]


def arrivals_note(traffic: TrafficConfig, seed: int, count: int) -> MeasurementWarning:
    """The info note that records how simulated arrivals were drawn."""
    return MeasurementWarning(
        code="traffic_arrivals", severity="info",
        message=f"arrivals: one system-wide {traffic.mode} process at {traffic.rate_per_s:g} "
                f"requests/s (seed {seed}) sharded by request; this process sent {count} of "
                "them",
    )


class SequenceLatency(NamedTuple):
    """Latencies of one sequence (seconds), named as the RequestRecord fields they fill."""

    ttft_s: float | None
    tpot_s: float | None
    token_gaps_s: tuple[float, ...]
    token_gap_stride: int
    completion_s: float | None
    e2e_s: float


def bounded_gaps(gaps_s: Sequence[float]) -> tuple[tuple[float, ...], int]:
    """Token gaps as stored: rounded to 1 us; beyond MAX_TOKEN_GAPS every ``stride``-th gap
    (each standing for ``stride`` gaps). Returns (gaps, stride)."""
    stride = max(1, math.ceil(len(gaps_s) / MAX_TOKEN_GAPS))
    return tuple(round(g, 6) for g in gaps_s[::stride]), stride


def latencies(
    step_times_s: Sequence[float], num_tokens: int, submitted_s: float, returned_s: float
) -> SequenceLatency:
    """TTFT, token gaps, TPOT, own completion and end-to-end latency of one sequence (s).

    ``step_times_s`` are the batch's per-step clock readings, ``num_tokens`` the tokens this
    sequence generated (its first ``num_tokens`` steps), ``submitted_s`` its submission time
    and ``returned_s`` when its generate call returned (its batch finished), on the same
    clock. TTFT = first step - submission; token gaps = differences of consecutive steps;
    TPOT = their mean (None with fewer than 2 tokens); completion = its last step -
    submission; e2e = returned_s - submission (what the caller sees: with static batching a
    row that stopped early is only returned with its batch). With no token, TTFT, TPOT and
    completion are None.
    """
    e2e_s = returned_s - submitted_s
    if num_tokens <= 0:
        return SequenceLatency(None, None, (), 1, None, e2e_s)
    steps = step_times_s[:num_tokens]
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    tpot = (steps[-1] - steps[0]) / (num_tokens - 1) if num_tokens >= 2 else None
    stored, stride = bounded_gaps(gaps)
    return SequenceLatency(
        ttft_s=steps[0] - submitted_s,
        tpot_s=tpot,
        token_gaps_s=stored,
        token_gap_stride=stride,
        completion_s=steps[-1] - submitted_s,
        e2e_s=e2e_s,
    )


def count_output_tokens(generated: Sequence[int], eos_token_ids: Sequence[int]) -> int:
    """Tokens a sequence really generated: up to and including its first EOS.

    ``generated`` is the row's generated part only (no prompt). Padding written after EOS by
    batched generation is never counted, also when the pad token equals EOS.
    """
    eos = set(eos_token_ids)
    for index, token in enumerate(generated):
        if token in eos:
            return index + 1
    return len(generated)
