"""Turning the prompts config into this process's measured workload."""

from __future__ import annotations

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.types import LoadedModel, Prompt


def context_length(loaded: LoadedModel) -> int | None:
    """The model's context window in tokens, when it declares one."""
    return loaded.info.max_position_embeddings


def prepare_prompts(
    config: ExperimentConfig,
    loaded: LoadedModel,
    *,
    num_shards: int = 1,
    shard_index: int = 0,
) -> tuple[list[Prompt], list[str]]:
    """Load, truncate and check the prompts; keep this process's shard.

    Returns the prompts and human-readable notes (e.g. how many were truncated) that become
    info-level warnings on the result.
    """
    from llm_energy_measure.core.batching import shard_prompts
    from llm_energy_measure.core.prompts import check_context, load_prompts, truncate_prompts

    output_tokens = config.decoder.max_new_tokens if config.prompts.source == "synthetic" else None
    prompts = load_prompts(
        config.prompts, tokenizer=loaded.tokenizer, seed=config.seed, output_tokens=output_tokens
    )
    if loaded.tokenizer is None:  # a served model whose tokenizer is not on this host
        return prompts, ["prompts were not truncated to prompts.max_input_tokens: the served "
                         "model's tokenizer is not available here (input tokens come from "
                         "the server's usage)"]
    prompts, truncated, token_counts = truncate_prompts(
        prompts, loaded.tokenizer, config.prompts.max_input_tokens
    )
    notes: list[str] = []
    if truncated:
        notes.append(
            f"{truncated} prompt(s) truncated to prompts.max_input_tokens="
            f"{config.prompts.max_input_tokens}"
        )
    ctx = context_length(loaded)
    if ctx is not None:
        check_context(prompts, token_counts, ctx, config.decoder.max_new_tokens)
    if num_shards > 1:
        prompts = shard_prompts(
            prompts, token_counts, num_shards, shard_index,
            output_tokens_per_prompt=config.decoder.max_new_tokens,
        )
    return prompts, notes
