"""Batch composition, padding and sharding on hand-computed cases."""

from __future__ import annotations

import random

import pytest

from llm_energy_measure.config.models import BatchingConfig
from llm_energy_measure.core.batching import (
    plan_batches,
    shard_prompts,
)
from llm_energy_measure.core.types import Prompt

# Positions 0..5; request ids are 100 + position so that ids and positions cannot be confused.
COUNTS = [5, 9, 3, 9, 1, 7]
PROMPTS = [Prompt(request_id=100 + i, text=f"p{i}") for i in range(len(COUNTS))]


def ids(batches: list[list[Prompt]]) -> list[list[int]]:
    return [[p.request_id - 100 for p in batch] for batch in batches]


def test_fixed_keeps_workload_order() -> None:
    plan = plan_batches(PROMPTS, COUNTS, BatchingConfig(strategy="fixed", batch_size=2))
    assert ids(plan.batches) == [[0, 1], [2, 3], [4, 5]]
    assert plan.token_counts == [[5, 9], [3, 9], [1, 7]]
    assert plan.padded_tokens == 2 * 9 + 2 * 9 + 2 * 7  # 50
    assert plan.real_tokens == 34
    assert plan.over_budget_request_ids == []
    assert plan.warnings == []


def test_fixed_last_batch_is_partial() -> None:
    batches = plan_batches(PROMPTS, COUNTS, BatchingConfig(strategy="fixed", batch_size=4)).batches
    assert ids(batches) == [[0, 1, 2, 3], [4, 5]]


def test_sorted_is_longest_first_and_stable() -> None:
    plan = plan_batches(PROMPTS, COUNTS, BatchingConfig(strategy="sorted", batch_size=2))
    # 9 (pos 1) before 9 (pos 3): ties keep workload order.
    assert ids(plan.batches) == [[1, 3], [5, 0], [2, 4]]
    assert plan.padded_tokens == 2 * 9 + 2 * 7 + 2 * 3  # 38, less than fixed's 50


def test_token_budget_greedy_groups() -> None:
    config = BatchingConfig(strategy="token_budget", batch_size=4, max_tokens_per_batch=21)
    plan = plan_batches(PROMPTS, COUNTS, config)
    # [9, 9] = 18; adding 7 would make 3 x 9 = 27 > 21. [7, 5, 3] = 3 x 7 = 21. [1].
    assert ids(plan.batches) == [[1, 3], [5, 0, 2], [4]]
    assert plan.padded_tokens == 18 + 21 + 1
    assert all(len(c) * max(c) <= 21 for c in plan.token_counts)


def test_token_budget_respects_batch_size() -> None:
    config = BatchingConfig(strategy="token_budget", batch_size=4, max_tokens_per_batch=100)
    batches = plan_batches(PROMPTS, COUNTS, config).batches
    assert ids(batches) == [[1, 3, 5, 0], [2, 4]]


def test_token_budget_prompt_over_budget_runs_alone_and_is_reported() -> None:
    prompts = [Prompt(request_id=i, text="x") for i in (7, 8, 9)]
    config = BatchingConfig(strategy="token_budget", batch_size=8, max_tokens_per_batch=20)
    plan = plan_batches(prompts, [30, 5, 5], config)
    assert [[p.request_id for p in b] for b in plan.batches] == [[7], [8, 9]]
    assert plan.over_budget_request_ids == [7]
    (warning,) = plan.warnings
    assert warning.code == "prompt_over_token_budget"
    assert "request ids 7" in warning.message
    assert "batching.max_tokens_per_batch (20)" in warning.message



def test_misaligned_counts_raise() -> None:
    with pytest.raises(ValueError, match="6 prompts but 5 token counts"):
        plan_batches(PROMPTS, COUNTS[:5], BatchingConfig())


def test_shard_longest_processing_time_by_hand() -> None:
    prompts = [Prompt(request_id=i, text="x") for i in range(6)]
    counts = [10, 8, 7, 5, 3, 2]
    # 10->s0; 8->s1; 7->s1 (8<10); 5->s0 (15 vs 15: tie to s0); 3->s0 (15=15); 2->s1 (15<18)
    shard0 = shard_prompts(prompts, counts, num_shards=2, rank=0)
    shard1 = shard_prompts(prompts, counts, num_shards=2, rank=1)
    assert [p.request_id for p in shard0] == [0, 3, 4]  # load 18, workload order
    assert [p.request_id for p in shard1] == [1, 2, 5]  # load 17


def test_shard_output_tokens_balance_request_counts() -> None:
    prompts = [Prompt(request_id=i, text="x") for i in range(11)]
    counts = [100] + [10] * 10
    # Prompt tokens alone: the long prompt fills shard 0, shard 1 takes all ten short ones.
    assert len(shard_prompts(prompts, counts, 2, 0)) == 1
    # Each request also generates 100 tokens: weights 200 and ten of 110 ->
    # s1, s1, s0, s1, s0, s1, s0, s1, s0, s1 for the 110s.
    with_decode = [shard_prompts(prompts, counts, 2, r, output_tokens_per_prompt=100)
                   for r in (0, 1)]
    assert [len(s) for s in with_decode] == [5, 6]


def test_shard_property_complete_disjoint_balanced() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        n = rng.randint(0, 60)
        num_shards = rng.randint(1, 9)
        counts = [rng.randint(1, 600) for _ in range(n)]
        prompts = [Prompt(request_id=i, text="x") for i in range(n)]
        shards = [shard_prompts(prompts, counts, num_shards, r) for r in range(num_shards)]
        seen = sorted(p.request_id for s in shards for p in s)
        assert seen == list(range(n))  # every prompt exactly once
        for s in shards:
            assert [p.request_id for p in s] == sorted(p.request_id for p in s)
        if n:
            loads = [sum(counts[p.request_id] for p in s) for s in shards]
            # LPT: the fullest shard got its last prompt while it was the emptiest.
            assert max(loads) - min(loads) <= max(counts)
        # Deterministic: the same call gives the same shard.
        assert shard_prompts(prompts, counts, num_shards, 0) == shards[0]


def test_shard_validation() -> None:
    with pytest.raises(ValueError, match=r"rank 2 is not in 0\.\.1"):
        shard_prompts(PROMPTS, COUNTS, num_shards=2, rank=2)
    with pytest.raises(ValueError, match="must align"):
        shard_prompts(PROMPTS, COUNTS[:2], num_shards=1, rank=0)


def test_more_shards_than_prompts_leaves_some_empty() -> None:
    prompts = PROMPTS[:2]
    shards = [shard_prompts(prompts, COUNTS[:2], 3, r) for r in range(3)]
    assert [len(s) for s in shards] == [1, 1, 0]
