"""Per-token times and gaps of a streamed response, from its chunks.

A server may put several tokens in one chunk (stream intervals, speculative decoding, text
held back until it decodes to whole characters). The rule used here, for a chunk of ``k``
tokens arriving ``g`` seconds after the previous token-bearing chunk: its tokens are spread
evenly over that gap, so it contributes ``k`` gaps of ``g / k`` and its last token lands at
the chunk's arrival. The first chunk's ``k1`` tokens all arrive at once: its ``k1 - 1``
extra tokens contribute gaps of zero. So a request with ``T`` output tokens has ``T - 1``
gaps, and they sum to (last token-bearing chunk - first token-bearing chunk). Chunks of zero
tokens are skipped: the next gap runs from the last chunk that carried tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

#: How ``chunk_token_counts`` found the counts:
#: ``per-chunk``: usage equals the number of chunks, one token each (exact);
#: ``tokenizer-split``: usage total split in proportion to tokenizer counts of each chunk;
#: ``even-split``: usage total split evenly over the chunks;
#: ``tokenizer``: no usage, tokenizer counts of each chunk;
#: ``chunks``: no usage and no tokenizer, one token per chunk (or no chunks at all).
CountMethod = Literal["per-chunk", "tokenizer-split", "even-split", "tokenizer", "chunks"]


def _check(first_token_s: float | None, chunk_times_s: Sequence[float],
           chunk_token_counts: Sequence[int]) -> None:
    if len(chunk_times_s) != len(chunk_token_counts):
        raise ValueError(f"{len(chunk_times_s)} chunk times but {len(chunk_token_counts)} "
                         f"token counts")
    if any(k < 0 for k in chunk_token_counts):
        raise ValueError("token counts must be >= 0")
    if (first_token_s is None) != (len(chunk_times_s) == 0):
        raise ValueError("first_token_s is None exactly when there is no chunk")
    if first_token_s is not None and first_token_s != chunk_times_s[0]:
        raise ValueError(f"first_token_s ({first_token_s}) must be the first chunk's time "
                         f"({chunk_times_s[0]})")


def token_times(first_token_s: float | None, chunk_times_s: Sequence[float],
                chunk_token_counts: Sequence[int]) -> list[float]:
    """Arrival time of every output token, in the seconds of ``chunk_times_s`` (module rule).

    ``first_token_s`` is the request's first-token time (``RequestResult.first_token_s``,
    which equals ``chunk_times_s[0]``; ``None`` when nothing arrived, giving ``[]``).
    Returns ``sum(chunk_token_counts)`` non-decreasing times.
    """
    _check(first_token_s, chunk_times_s, chunk_token_counts)
    times: list[float] = []
    prev_s: float | None = None
    for t_s, k in zip(chunk_times_s, chunk_token_counts, strict=True):
        if k == 0:
            continue
        if prev_s is None:
            times.extend([t_s] * k)
        else:
            gap_s = t_s - prev_s
            times.extend(prev_s + gap_s * j / k for j in range(1, k))
            times.append(t_s)
        prev_s = t_s
    return times


def token_gaps(first_token_s: float | None, chunk_times_s: Sequence[float],
               chunk_token_counts: Sequence[int]) -> list[float]:
    """The ``T - 1`` inter-token gaps in seconds (``T`` = output tokens; module rule).

    Computed per chunk (``g / k`` repeated ``k`` times), not as differences of rounded token
    times; their sum is the last token-bearing chunk's time minus the first's.
    """
    _check(first_token_s, chunk_times_s, chunk_token_counts)
    gaps: list[float] = []
    prev_s: float | None = None
    for t_s, k in zip(chunk_times_s, chunk_token_counts, strict=True):
        if k == 0:
            continue
        if prev_s is None:
            gaps.extend([0.0] * (k - 1))
        else:
            gaps.extend([(t_s - prev_s) / k] * k)
        prev_s = t_s
    return gaps


def _largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """Integers proportional to ``weights`` that sum to ``total`` (ties: earlier first)."""
    weight_sum = float(sum(weights))
    if weight_sum <= 0:
        weights = [1.0] * len(weights)
        weight_sum = float(len(weights))
    shares = [total * w / weight_sum for w in weights]
    counts = [int(s) for s in shares]
    short = total - sum(counts)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - counts[i]), i))
    for i in order[:short]:
        counts[i] += 1
    return counts


def _split(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` tokens over the chunks: one each first when there are enough (a chunk that
    carries text carries a token), the rest in proportion to ``weights`` minus that one."""
    n = len(weights)
    if total < n:
        return _largest_remainder(total, weights)
    extra = _largest_remainder(total - n, [max(w - 1.0, 0.0) for w in weights])
    return [1 + e for e in extra]


def chunk_token_counts(
    chunk_texts: Sequence[str],
    completion_tokens: int | None,
    count: Callable[[str], int] | None = None,
) -> tuple[list[int], CountMethod]:
    """Tokens in each content chunk, and how they were found (see ``CountMethod``).

    ``completion_tokens`` is the server's usage figure (``None`` when it sent none);
    ``count`` a tokenizer's token count of a text (optional). With usage the counts always
    sum to ``completion_tokens``; every chunk gets at least one token when there are at
    least as many tokens as chunks. Splits round by largest remainder, ties to earlier
    chunks. Without usage, tokenizer counts are floored at one per chunk. No chunk gives
    ``([], "chunks")``.
    """
    n = len(chunk_texts)
    if completion_tokens is not None and completion_tokens < 0:
        raise ValueError(f"completion_tokens must be >= 0, got {completion_tokens}")
    if n == 0:
        return [], "chunks"
    if completion_tokens is None:
        if count is None:
            return [1] * n, "chunks"
        return [max(1, count(text)) for text in chunk_texts], "tokenizer"
    if completion_tokens == n:
        return [1] * n, "per-chunk"
    if count is not None:
        return _split(completion_tokens, [float(count(t)) for t in chunk_texts]), \
            "tokenizer-split"
    return _split(completion_tokens, [1.0] * n), "even-split"
