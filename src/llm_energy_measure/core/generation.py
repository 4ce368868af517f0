"""Keyword arguments of ``model.generate`` from the decoder and inference config.

Every decoding setting is passed explicitly, so a model's own ``generation_config`` defaults
(e.g. a shipped ``top_k=50`` or ``temperature=0.6``) never change what the config asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm_energy_measure.config.models import DecoderConfig, InferenceConfig
from llm_energy_measure.core.types import Prompt


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """All token ids that end a sequence: the model's generation config EOS (int or list) and
    the tokenizer's EOS, deduplicated in that order."""
    ids: list[int] = []
    gen_cfg = getattr(model, "generation_config", None)
    configured = getattr(gen_cfg, "eos_token_id", None) if gen_cfg is not None else None
    if isinstance(configured, int):
        ids.append(configured)
    elif isinstance(configured, (list, tuple)):
        ids.extend(int(i) for i in configured)
    tok_eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(tok_eos, int):
        ids.append(tok_eos)
    return list(dict.fromkeys(ids))


def new_token_limits(batch: Sequence[Prompt], decoder: DecoderConfig) -> tuple[int, int]:
    """``(max_new_tokens, min_new_tokens)`` for one batch.

    ``fixed_length`` sets min = max (EOS suppressed), so every sequence generates exactly
    ``max_new_tokens``. Prompts with ``target_output_tokens`` (synthetic workloads) make their
    batch fixed-length at the largest target in the batch.
    """
    targets = [p.target_output_tokens for p in batch if p.target_output_tokens is not None]
    if targets:
        limit = max(targets)
        return limit, limit
    if decoder.fixed_length:
        return decoder.max_new_tokens, decoder.max_new_tokens
    return decoder.max_new_tokens, decoder.min_new_tokens


def generation_kwargs(
    decoder: DecoderConfig,
    inference: InferenceConfig,
    *,
    pad_token_id: int | None,
    eos_ids: Sequence[int],
) -> dict[str, Any]:
    """Arguments for ``model.generate`` besides inputs, stopping criteria and the per-batch
    token limits (see ``new_token_limits``).

    Greedy decoding clears every sampling knob; sampling passes temperature, top_p, top_k
    (0 -> None: disabled), min_p (0 -> None: disabled).
    Automatic compilation by ``generate`` is disabled: compilation happens only when
    ``inference.torch_compile`` asks for it, so the two axes stay independent.
    """
    sampling = decoder.mode == "sampling"
    kwargs: dict[str, Any] = {
        "do_sample": sampling,
        "temperature": decoder.temperature if sampling else None,
        "top_p": decoder.top_p if sampling else None,
        "top_k": (decoder.top_k or None) if sampling else None,
        "min_p": (decoder.min_p or None) if sampling else None,
        "repetition_penalty": decoder.repetition_penalty,
        "pad_token_id": pad_token_id,
        "eos_token_id": list(eos_ids) or None,
        "num_beams": 1,
        "disable_compile": True,
    }
    if inference.cache_implementation == "static":
        kwargs["cache_implementation"] = "static"
    return kwargs
