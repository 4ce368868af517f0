"""Token counting, synthetic prompts, truncation and the context check, with real in-memory
tokenizers (a WordLevel one whose counts are known by hand, and a trained byte-level BPE)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from llm_energy_measure.config.models import PromptsConfig
from llm_energy_measure.core.prompt_sources import read_builtin
from llm_energy_measure.core.prompts import (
    check_context,
    count_tokens,
    load_prompts,
    truncate_prompts,
)
from llm_energy_measure.core.types import Prompt
from llm_energy_measure.exceptions import ConfigurationError

WORDS = [
    "the", "a", "cat", "dog", "sat", "on", "mat", "and", "ran", "to", "house", "red", "blue",
    "green", "big", "small", "quick", "slow", "river", "hill", "tree", "sun", "moon", "star",
    "day", "night", "one", "two", "three", "four", "five", "six", "seven", "eight",
]


@cache
def word_tokenizer() -> Any:
    """Whitespace WordLevel tokenizer that prepends [BOS]: n known words -> n + 1 tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[BOS]": 1, "[PAD]": 2}
    vocab.update({w: i + 3 for i, w in enumerate(WORDS)})
    vocab.update({",": len(vocab), ".": len(vocab) + 1})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A", special_tokens=[("[BOS]", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="[BOS]", unk_token="[UNK]", pad_token="[PAD]"
    )


@cache
def bpe_tokenizer() -> Any:
    """Byte-level BPE (GPT-2 style) trained in memory on the built-in prompts; adds <s>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(read_builtin()[:150], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def synthetic(tokenizer: Any, n: int, tokens: int, seed: int = 0,
              output_tokens: int | None = None) -> list[Prompt]:
    config = PromptsConfig(source="synthetic", num_prompts=n, synthetic_input_tokens=tokens)
    return load_prompts(config, tokenizer=tokenizer, seed=seed, output_tokens=output_tokens)


# ---------------------------------------------------------------- counting


def test_count_tokens_includes_bos_and_never_padding() -> None:
    tok = word_tokenizer()
    assert count_tokens(["the cat sat", "dog", "the cat sat on the mat ."], tok) == [4, 2, 8]


# ---------------------------------------------------------------- synthetic


@pytest.mark.parametrize("tokens", [2, 3, 17, 64, 300])
def test_synthetic_exact_lengths_word_level(tokens: int) -> None:
    prompts = synthetic(word_tokenizer(), n=12, tokens=tokens)
    assert count_tokens([p.text for p in prompts], word_tokenizer()) == [tokens] * 12
    assert [p.request_id for p in prompts] == list(range(12))


@pytest.mark.parametrize("tokens", [2, 9, 64, 257])
def test_synthetic_exact_lengths_byte_level_bpe(tokens: int) -> None:
    tok = bpe_tokenizer()
    prompts = synthetic(tok, n=16, tokens=tokens)
    assert count_tokens([p.text for p in prompts], tok) == [tokens] * 16
    # Batched (padded) tokenization sees the same real tokens: the attention mask sums agree.
    batch = tok([p.text for p in prompts], padding=True)
    assert [sum(m) for m in batch["attention_mask"]] == [tokens] * 16


def test_synthetic_is_seeded_and_sets_output_target() -> None:
    tok = bpe_tokenizer()
    a = synthetic(tok, n=4, tokens=32, seed=7, output_tokens=128)
    assert a == synthetic(tok, n=4, tokens=32, seed=7, output_tokens=128)
    assert [p.text for p in a] != [p.text for p in synthetic(tok, n=4, tokens=32, seed=8)]
    assert len({p.text for p in a}) == 4  # prompts differ from each other
    assert all(p.target_output_tokens == 128 for p in a)


def test_synthetic_too_short_for_special_tokens() -> None:
    with pytest.raises(ConfigurationError, match=r"synthetic_input_tokens \(1\) must exceed the "
                                                 r"1 special token\(s\).*set it to 2 or more"):
        synthetic(word_tokenizer(), n=1, tokens=1)


def test_synthetic_needs_tokenizer() -> None:
    with pytest.raises(ValueError, match="tokenizer"):
        load_prompts(PromptsConfig(source="synthetic"), seed=0)


# ---------------------------------------------------------------- truncation


def test_truncate_word_level_counts_by_hand() -> None:
    tok = word_tokenizer()
    long = Prompt(request_id=3, text="one two three four five six seven eight",
                  target_output_tokens=9)
    short = Prompt(request_id=4, text="the cat")
    result, num_truncated, counts = truncate_prompts([long, short], tok, max_input_tokens=6)
    # 8 words + BOS = 9 tokens > 6: keep 5 words (+ BOS = 6).
    assert result[0] == Prompt(request_id=3, text="one two three four five", target_output_tokens=9)
    assert result[1] is short
    assert num_truncated == 1
    assert counts == [6, 3]
    assert count_tokens([p.text for p in result], tok) == counts


def test_truncate_at_exact_limit_is_untouched() -> None:
    prompt = Prompt(request_id=0, text="one two three")
    result = truncate_prompts([prompt], word_tokenizer(), max_input_tokens=4)
    assert result == ([prompt], 0, [4])
    assert result.num_truncated == 0


def test_truncate_bpe_keeps_prefix_and_fits() -> None:
    tok = bpe_tokenizer()
    texts = read_builtin()[150:200]
    prompts = [Prompt(request_id=i, text=t) for i, t in enumerate(texts)]
    before = count_tokens(texts, tok)
    result, num_truncated, counts = truncate_prompts(prompts, tok, max_input_tokens=40)
    after = count_tokens([p.text for p in result], tok)
    assert counts == after
    assert num_truncated == sum(n > 40 for n in before) > 0
    assert all(n <= 40 for n in after)
    for original, cut, n_before, n_after in zip(prompts, result, before, after, strict=True):
        assert original.text.startswith(cut.text)
        if n_before > 40:
            assert n_after >= 35  # cut near the limit, not far below it


def test_truncate_no_room_for_text() -> None:
    with pytest.raises(ConfigurationError, match=r"prompts.max_input_tokens \(1\) leaves no room"):
        truncate_prompts([Prompt(0, "the cat")], word_tokenizer(), max_input_tokens=1)


# ---------------------------------------------------------------- context check


def test_check_context_limit_is_context_minus_new_tokens() -> None:
    prompts = [Prompt(request_id=i, text="x") for i in (40, 41, 42)]
    check_context(prompts[:2], [10, 96], context_len=128, max_new_tokens=32)  # 96 fits
    check_context(prompts[:1], [10_000], context_len=None, max_new_tokens=32)  # unknown: no check
    with pytest.raises(ConfigurationError) as err:
        check_context(prompts, [10, 97, 120], context_len=128, max_new_tokens=32)
    message = str(err.value)
    assert "request 41 has 97 input tokens" in message
    assert "context of 128 tokens minus decoder.max_new_tokens (32) leaves 96" in message
    assert "(1 more prompt(s) too)" in message
    assert "lower prompts.max_input_tokens to 96 or less" in message


def test_check_context_new_tokens_fill_context() -> None:
    with pytest.raises(ConfigurationError, match=r"decoder.max_new_tokens \(128\) leaves no room"):
        check_context([Prompt(0, "x")], [1], context_len=128, max_new_tokens=128)


def test_check_context_misaligned() -> None:
    with pytest.raises(ValueError, match="must align"):
        check_context([Prompt(0, "x")], [1, 2], context_len=128, max_new_tokens=8)


class _RecordingTokenizer:
    """A tokenizer that records the longest text it was asked to tokenize."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.longest = 0

    def __call__(self, texts: Any, **kwargs: Any) -> Any:
        batch = [texts] if isinstance(texts, str) else texts
        self.longest = max(self.longest, *(len(t) for t in batch))
        return self._inner(texts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_20_mb_prompt_is_cut_without_tokenizing_all_of_it() -> None:
    tok = _RecordingTokenizer(word_tokenizer())
    huge = Prompt(request_id=0, text="the cat " * 2_500_000)  # 20,000,000 characters
    result, num_truncated, counts = truncate_prompts([huge], tok, max_input_tokens=512)
    # BOS + 511 words = 512 tokens; the words alternate "the", "cat".
    assert result[0].text == " ".join(["the", "cat"] * 255 + ["the"])
    assert (num_truncated, counts) == (1, [512])
    assert tok.longest <= 512 * 16  # an 8 KiB prefix, not 20 MB
    assert count_tokens([result[0].text], word_tokenizer()) == [512]


def test_a_prefix_too_short_for_the_limit_is_doubled_until_it_holds_enough() -> None:
    # The first prefix, 5 x 16 = 80 characters, holds 15 tokens: not more than the limit plus
    # the 16-token margin (21), so it is doubled to 160 characters (28 tokens) before the cut.
    tok = word_tokenizer()
    text = " ".join(["seven", "eight"] * 1000)
    result, num_truncated, counts = truncate_prompts([Prompt(0, text)], tok, max_input_tokens=5)
    assert (result[0].text, num_truncated, counts) == ("seven eight seven eight", 1, [5])
