"""Grouping prompts into generate calls, and splitting a workload across processes.

Token counts are per prompt, as ``prompts.count_tokens`` counts them (real tokens the model
sees, special tokens included, no padding). A batch is left-padded to its longest prompt, so a
batch of ``n`` prompts whose longest has ``L`` tokens occupies ``n x L`` padded input tokens.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from llm_energy_measure.config.models import BatchingConfig
from llm_energy_measure.core.types import Prompt
from llm_energy_measure.domain import MeasurementWarning


@dataclass(frozen=True)
class BatchPlan:
    """Batches in execution order, their prompts' token counts (aligned with ``batches``),
    and the request ids of prompts that alone exceed ``max_tokens_per_batch`` (token_budget
    strategy only)."""

    batches: list[list[Prompt]]
    token_counts: list[list[int]]
    over_budget_request_ids: list[int] = field(default_factory=list)
    max_tokens_per_batch: int | None = None

    @property
    def padded_tokens(self) -> int:
        """Input tokens including padding: sum over batches of size x longest prompt."""
        return _padded_size(self.token_counts)

    @property
    def real_tokens(self) -> int:
        """Input tokens without padding."""
        return sum(sum(counts) for counts in self.token_counts)

    @property
    def warnings(self) -> list[MeasurementWarning]:
        """A ``prompt_over_token_budget`` warning when some prompts ran alone over budget."""
        if not self.over_budget_request_ids:
            return []
        ids = ", ".join(str(i) for i in self.over_budget_request_ids[:10])
        more = "" if len(self.over_budget_request_ids) <= 10 else ", ..."
        return [
            MeasurementWarning(
                code="prompt_over_token_budget",
                message=(
                    f"{len(self.over_budget_request_ids)} prompt(s) (request ids {ids}{more}) "
                    f"exceed batching.max_tokens_per_batch ({self.max_tokens_per_batch}) on their "
                    "own and ran as single-prompt batches"
                ),
            )
        ]


def plan_batches(
    prompts: Sequence[Prompt], token_counts: Sequence[int], config: BatchingConfig
) -> BatchPlan:
    """Batches for ``prompts`` (``token_counts`` aligned with them) by ``config.strategy``.

    - ``fixed``: consecutive groups of ``batch_size`` in workload order;
    - ``sorted``: longest first (stable), then groups of ``batch_size``: less padding;
    - ``token_budget``: longest first, a batch grows while its padded size
      (size x longest) stays within ``max_tokens_per_batch`` and its size within
      ``batch_size``; a prompt over the budget on its own runs alone and is reported.
    """
    if len(prompts) != len(token_counts):
        raise ValueError(
            f"{len(prompts)} prompts but {len(token_counts)} token counts: they must align"
        )
    order = list(range(len(prompts)))
    if config.strategy != "fixed":
        order.sort(key=lambda i: -token_counts[i])  # sort is stable: ties keep workload order
    groups: list[list[int]]
    over_budget: list[int] = []
    if config.strategy == "token_budget":
        assert config.max_tokens_per_batch is not None  # enforced by BatchingConfig
        groups, over_budget = _budget_groups(
            order, token_counts, config.batch_size, config.max_tokens_per_batch
        )
    else:
        size = config.batch_size
        groups = [order[i : i + size] for i in range(0, len(order), size)]
    return BatchPlan(
        batches=[[prompts[i] for i in g] for g in groups],
        token_counts=[[token_counts[i] for i in g] for g in groups],
        over_budget_request_ids=[prompts[i].request_id for i in over_budget],
        max_tokens_per_batch=config.max_tokens_per_batch,
    )


def _budget_groups(
    order: list[int], token_counts: Sequence[int], batch_size: int, budget: int
) -> tuple[list[list[int]], list[int]]:
    """Greedy groups over indices sorted longest first: the first index of a group is its
    longest, so a group of n costs n x that length in padded tokens."""
    groups: list[list[int]] = []
    over_budget: list[int] = []
    for i in order:
        if groups:
            current = groups[-1]
            longest = token_counts[current[0]]
            fits = (len(current) + 1) * longest <= budget and len(current) < batch_size
            if fits:
                current.append(i)
                continue
        groups.append([i])
        if token_counts[i] > budget:
            over_budget.append(i)
    return groups, over_budget


def _padded_size(counts_per_batch: Iterable[Sequence[int]]) -> int:
    return sum(len(counts) * max(counts) for counts in counts_per_batch if counts)


def shard_prompts(
    prompts: Sequence[Prompt],
    token_counts: Sequence[int],
    num_shards: int,
    rank: int,
    *,
    output_tokens_per_prompt: int = 0,
) -> list[Prompt]:
    """The prompts process ``rank`` of ``num_shards`` runs, in workload order.

    Balanced by tokens with longest-processing-time greedy: prompts sorted by weight
    (descending, ties by workload position) each go to the least loaded shard (ties to the
    lowest rank). A prompt's weight is its token count plus ``output_tokens_per_prompt``:
    pass the tokens each request generates (``decoder.max_new_tokens``) so that decode work,
    which every request costs regardless of its prompt length, is balanced too. Every prompt
    lands in exactly one shard; the split depends only on the inputs, so all processes agree.
    With more shards than prompts some shards are empty.
    """
    if len(prompts) != len(token_counts):
        raise ValueError(
            f"{len(prompts)} prompts but {len(token_counts)} token counts: they must align"
        )
    if num_shards < 1 or not 0 <= rank < num_shards:
        raise ValueError(f"rank {rank} is not in 0..{num_shards - 1} (num_shards {num_shards})")
    weights = [n + output_tokens_per_prompt for n in token_counts]
    order = sorted(range(len(prompts)), key=lambda i: -weights[i])
    loads = [(0, shard) for shard in range(num_shards)]  # heap of (load, shard)
    mine: list[int] = []
    for i in order:
        load, shard = heapq.heappop(loads)
        if shard == rank:
            mine.append(i)
        heapq.heappush(loads, (load + weights[i], shard))
    return [prompts[i] for i in sorted(mine)]
