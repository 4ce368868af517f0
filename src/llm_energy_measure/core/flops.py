"""Analytic FLOPs of autoregressive generation, from the model's own architecture.

Conventions (they match what ``torch.utils.flop_counter.FlopCounterMode`` measures for an
eager-attention model, which the tests use as an independent cross-check):

- One multiply-add is 2 FLOPs. Only matrix products are counted: the Q/K/V/O projections, the
  MLP (or the routed experts, router and shared expert of a mixture-of-experts layer), the
  attention score (Q K^T) and value (A V) products, an input/output embedding projection where
  the model has one (OPT), and the LM head. Softmax, norms, activations, rotary/ALiBi position
  terms, residual adds and biases are elementwise and are not counted (they are a small
  fraction of the total and FlopCounterMode does not see them either).
- Attention over ``q`` queries and ``k`` keys costs ``4 * num_heads * head_dim * q * k`` per
  layer: the FULL ``q x k`` score matrix, not the causal half. This is what the eager kernel
  computes (it masks after the product). Fused causal kernels (FlashAttention, SDPA with
  ``is_causal``) skip roughly half of the prefill score work, so for them this is an upper
  bound of the work the hardware did; it is the usual "model FLOPs" convention for MFU.
- Grouped-query / multi-query attention only shrinks the K/V projections; the score and value
  products still run over every query head (the eager kernel repeats K/V per query head).
- Parallel attention/MLP (GPT-J, GPT-NeoX, Phi-1/2, Falcon) and tied embeddings change no FLOPs:
  the same matrices are multiplied, and a tied LM head still multiplies by the vocabulary matrix.
- Work on real tokens only: padding tokens and steps a batch spends on sequences that have
  already finished are not counted ("useful" FLOPs).

Generation of one sequence with ``n`` prompt tokens and ``m`` generated tokens, as Hugging Face
``generate`` runs it with a KV cache:

- prefill: one forward pass over the ``n`` prompt tokens; it yields the first output token. The
  LM head runs on the LAST position only: ``generate`` passes ``logits_to_keep=1`` to every
  model whose ``forward`` accepts it (transformers >= 4.45). Models without that argument
  compute logits for all ``n`` positions (``prefill_logits="all"``).
- decode: ``m - 1`` forward passes of one token each. Step ``i`` (1-based) attends over the
  ``n + i`` cached keys (the prompt, the ``i - 1`` earlier generated tokens fed back, and its
  own key). On sliding-window layers the cache keeps the last ``window - 1`` keys, so the step
  attends over ``min(n + i, window)`` keys; prefill attention is the full ``n x n`` either way.
- On Apple MPS, transformers defers its stop check by one step and runs one extra, discarded
  forward pass per ``generate`` call; that pass is not counted.

Models the formulas do not know fall back to ``2 x parameters`` per processed token (method
``parameter_estimate``, confidence ``low``), which ignores attention-score work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

from llm_energy_measure.core.arch_spec import ArchSpec
from llm_energy_measure.core.types import SequenceShape
from llm_energy_measure.domain import FlopsResult

PrefillLogits = Literal["last", "all"]


def forward_flops(
    spec: ArchSpec,
    new_tokens: int,
    past_tokens: int = 0,
    logits_positions: int | None = None,
) -> int:
    """FLOPs of one forward pass of one sequence.

    ``new_tokens`` are processed with ``past_tokens`` already in the KV cache; each new token
    attends over all cached keys plus all new keys (the full rectangle, eager convention), or
    over at most ``sliding_window - 1`` cached keys on sliding layers. ``logits_positions``
    (default: all new tokens) is how many positions the LM head runs on.
    """
    if new_tokens < 0 or past_tokens < 0:
        raise ValueError("token counts must be non-negative")
    if not spec.analytic:
        return 2 * _params(spec) * new_tokens
    positions = new_tokens if logits_positions is None else logits_positions
    flops = new_tokens * spec.linear_flops_per_token + positions * spec.lm_head_flops_per_position
    full_layers = spec.num_layers - spec.num_sliding_layers
    keys_full = past_tokens + new_tokens
    flops += full_layers * spec.attention_flops_per_query_key * new_tokens * keys_full
    if spec.num_sliding_layers:
        assert spec.sliding_window is not None
        keys_sliding = min(past_tokens, spec.sliding_window - 1) + new_tokens
        flops += (
            spec.num_sliding_layers * spec.attention_flops_per_query_key * new_tokens * keys_sliding
        )
    return flops


def _sum_capped_series(start: int, count: int, cap: int) -> int:
    """sum(min(start + i, cap) for i in 1..count), in closed form."""
    if count <= 0:
        return 0
    below = max(0, min(count, cap - start))  # terms with start + i <= cap
    exact = below * start + below * (below + 1) // 2
    return exact + (count - below) * cap


def decode_layer_keys(spec: ArchSpec, input_tokens: int, output_tokens: int) -> int:
    """Keys attended during the decode steps of one sequence, summed over steps and layers.

    Step ``i`` (1..m-1) attends over ``n + i`` keys on full-attention layers and
    ``min(n + i, sliding_window)`` on sliding layers. It is both the attention work of decode
    (times ``attention_flops_per_query_key``) and the KV-cache entries read (times the bytes
    of one layer's K and V for one token). Zero for a parameter-only spec.
    """
    n, steps = input_tokens, output_tokens - 1
    if steps <= 0 or not spec.analytic:
        return 0
    full_layers = spec.num_layers - spec.num_sliding_layers
    keys = full_layers * (steps * n + steps * (steps + 1) // 2)  # sum of (n + i), i = 1..m-1
    if spec.num_sliding_layers:
        assert spec.sliding_window is not None
        keys += spec.num_sliding_layers * _sum_capped_series(n, steps, spec.sliding_window)
    return keys


def sequence_flops(
    spec: ArchSpec, input_tokens: int, output_tokens: int, prefill_logits: PrefillLogits = "last"
) -> tuple[int, int]:
    """(prefill, decode) FLOPs of generating ``output_tokens`` after ``input_tokens``.

    Zero for both when nothing was generated (no forward pass is attributed to the sequence).
    """
    n, m = input_tokens, output_tokens
    if n < 0 or m < 0:
        raise ValueError("token counts must be non-negative")
    if m == 0:
        return 0, 0
    if not spec.analytic:
        two_p = 2 * _params(spec)
        return two_p * n, two_p * (m - 1)
    prefill = forward_flops(spec, n, 0, logits_positions=1 if prefill_logits == "last" else n)
    per_step = spec.linear_flops_per_token + spec.lm_head_flops_per_position
    decode = (m - 1) * per_step
    decode += spec.attention_flops_per_query_key * decode_layer_keys(spec, n, m)
    return prefill, decode


def estimate_flops(
    spec: ArchSpec,
    sequences: Sequence[SequenceShape],
    prefill_logits: PrefillLogits = "last",
) -> FlopsResult:
    """FLOPs of generating ``sequences`` (real prompt / output lengths) with a KV cache.

    See the module docstring for what is counted. ``flops_per_output_token`` is total FLOPs
    divided by generated tokens (None when none were generated).
    """
    prefill_total = 0
    decode_total = 0
    output_total = 0
    shapes = Counter((seq.input_tokens, seq.output_tokens) for seq in sequences)
    for (n, m), count in shapes.items():
        prefill, decode = sequence_flops(spec, n, m, prefill_logits)
        prefill_total += count * prefill
        decode_total += count * decode
        output_total += count * m
    total = prefill_total + decode_total
    if spec.analytic:
        method: Literal["analytic", "parameter_estimate"] = "analytic"
        notes = (
            "matmul FLOPs only (2 per multiply-add); full n x n prefill attention (eager "
            f"convention); LM head on {prefill_logits} prefill position(s); real tokens only"
        )
    else:
        method = "parameter_estimate"
        notes = (
            f"unknown architecture '{spec.family}': 2 x {_params(spec)} parameters per "
            "processed token, attention-score work not included"
        )
    return FlopsResult(
        total_flops=float(total),
        prefill_flops=float(prefill_total),
        decode_flops=float(decode_total),
        flops_per_output_token=total / output_total if output_total else None,
        method=method,
        confidence=spec.confidence,
        architecture=spec.family,
        notes=notes,
    )


def _params(spec: ArchSpec) -> int:
    assert spec.num_parameters is not None  # guaranteed by ArchSpec.__post_init__
    return spec.num_parameters
