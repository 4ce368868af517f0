"""Token times and gaps of streamed chunks, and how many tokens each chunk holds."""

from __future__ import annotations

import pytest

from llm_energy_measure.core.serving.tokens import chunk_token_counts, token_gaps, token_times


def test_one_token_per_chunk_gaps_are_chunk_gaps() -> None:
    times = [1.0, 1.5, 2.5]
    assert token_times(1.0, times, [1, 1, 1]) == [1.0, 1.5, 2.5]
    assert token_gaps(1.0, times, [1, 1, 1]) == [0.5, 1.0]


def test_multi_token_chunks_spread_their_gap_and_the_first_adds_zero_gaps() -> None:
    times = [1.0, 2.0, 2.5]
    counts = [3, 2, 1]
    gaps = token_gaps(1.0, times, counts)
    assert gaps == pytest.approx([0.0, 0.0, 0.5, 0.5, 0.5])
    assert len(gaps) == sum(counts) - 1
    assert sum(gaps) == pytest.approx(times[-1] - times[0])
    assert token_times(1.0, times, counts) == pytest.approx([1.0, 1.0, 1.0, 1.5, 2.0, 2.5])


def test_chunks_without_tokens_are_skipped() -> None:
    # The gap of the third chunk runs from the first, the last token-bearing one before it.
    assert token_gaps(0.0, [0.0, 1.0, 2.0, 3.0], [1, 0, 2, 0]) == pytest.approx([1.0, 1.0])
    assert token_times(0.0, [0.0, 1.0, 2.0], [0, 1, 1]) == [1.0, 2.0]
    assert token_times(None, [], []) == [] and token_gaps(None, [], []) == []


@pytest.mark.parametrize(("first", "times", "counts"), [
    (0.0, [0.0], [1, 1]),
    (0.5, [0.0], [1]),
    (None, [0.0], [1]),
    (0.0, [0.0], [-1]),
])
def test_inconsistent_inputs_are_refused(first: float | None, times: list[float],
                                         counts: list[int]) -> None:
    with pytest.raises(ValueError):
        token_gaps(first, times, counts)


def _words(text: str) -> int:
    return len(text.split())


def test_usage_equal_to_chunks_is_one_token_each() -> None:
    assert chunk_token_counts(["a", "b c", "d"], 3, _words) == ([1, 1, 1], "per-chunk")


def test_usage_split_by_tokenizer_counts_sums_to_usage() -> None:
    counts, method = chunk_token_counts(["a", "b c d", "e f"], 6, _words)
    assert (counts, method) == ([1, 3, 2], "tokenizer-split")
    # Scaled: 9 tokens over tokenizer counts 1, 3, 2: one each, the other 6 over 0, 2, 1.
    counts, _ = chunk_token_counts(["a", "b c d", "e f"], 9, _words)
    assert counts == [1, 5, 3] and sum(counts) == 9


def test_usage_split_evenly_without_a_tokenizer_by_largest_remainder() -> None:
    assert chunk_token_counts(["x", "y", "z"], 8, None) == ([3, 3, 2], "even-split")
    assert chunk_token_counts(["x", "y", "z"], 2, None) == ([1, 1, 0], "even-split")


def test_without_usage_tokenizer_or_one_per_chunk() -> None:
    assert chunk_token_counts(["a b", "", "c"], None, _words) == ([2, 1, 1], "tokenizer")
    assert chunk_token_counts(["a b", "c"], None, None) == ([1, 1], "chunks")
    assert chunk_token_counts([], 4, _words) == ([], "chunks")
    with pytest.raises(ValueError):
        chunk_token_counts(["a"], -1, None)
