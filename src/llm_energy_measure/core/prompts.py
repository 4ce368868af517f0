"""The measured workload: load prompts, make synthetic ones, count and truncate tokens.

Intended order on the run path (every process does the same, so all agree on the workload):

1. ``load_prompts(config.prompts, tokenizer=..., seed=config.seed,
   output_tokens=config.decoder.max_new_tokens)``
2. ``truncate_prompts(prompts, tokenizer, config.prompts.max_input_tokens)`` (warn on
   truncation); it also returns each prompt's token count
3. ``check_context(prompts, token_counts, context_len, config.decoder.max_new_tokens)``
4. ``batching.shard_prompts`` for this process, then ``batching.plan_batches``

Token counts here are what the model sees: the attention-mask sum of ``tokenizer(text)``,
which includes special tokens the tokenizer adds (BOS, ...) and never padding.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from llm_energy_measure.config.models import PromptsConfig
from llm_energy_measure.core import prompt_sources
from llm_energy_measure.core.types import Prompt
from llm_energy_measure.exceptions import ConfigurationError

#: Texts tokenized per tokenizer call when counting (bounds memory on large workloads).
_COUNT_CHUNK = 256
#: Whole-word tokens kept for synthetic prompts, and vocabulary ids examined per step.
_WORD_POOL_SIZE = 1024
_CANDIDATE_CHUNK = 1024
#: Re-tokenize-and-adjust rounds allowed before a synthetic prompt is declared impossible.
_MAX_ADJUST_ROUNDS = 32
#: Characters per allowed token in the prefix of a long prompt that is tokenized first: a
#: token rarely spans more than a few characters, so the prefix almost always holds more
#: tokens than the limit and the rest of the text is never tokenized (a 20 MB prompt cut to
#: 512 tokens tokenizes 8 KiB). A prefix that holds too few tokens is doubled.
_PREFIX_CHARS_PER_TOKEN = 16
#: Tokens beyond the limit a prefix must hold, so that the cut falls well before the prefix's
#: end, where a word cut in two could tokenize differently from the full text.
_PREFIX_MARGIN_TOKENS = 16


def load_prompts(
    config: PromptsConfig,
    *,
    tokenizer: Any = None,
    seed: int,
    output_tokens: int | None = None,
) -> list[Prompt]:
    """The workload: ``config.num_prompts`` prompts with request ids 0..n-1.

    File-backed sources (builtin, file, jsonl, huggingface) take the first ``num_prompts``
    texts in source order; with ``config.shuffle`` the whole source is first shuffled with
    ``seed``, so the workload is a seeded random sample. Asking for more prompts than the
    source holds is a ConfigurationError (nothing is repeated silently).

    ``synthetic`` builds prompts of exactly ``config.synthetic_input_tokens`` tokens (as
    counted by :func:`count_tokens`) with ``tokenizer`` (required), and sets each prompt's
    ``target_output_tokens`` to ``output_tokens`` (pass ``decoder.max_new_tokens``).
    ``output_tokens`` is ignored for other sources.
    """
    if config.source == "synthetic":
        if tokenizer is None:
            raise ValueError("synthetic prompts need the model's tokenizer")
        return synthetic_prompts(
            tokenizer,
            num_prompts=config.num_prompts,
            input_tokens=config.synthetic_input_tokens,
            seed=seed,
            output_tokens=output_tokens,
        )
    texts, source_label = _read_source(config)
    if len(texts) < config.num_prompts:
        raise ConfigurationError(
            f"prompts.num_prompts is {config.num_prompts} but {source_label} holds "
            f"{len(texts)} prompt(s): lower prompts.num_prompts to {len(texts)} or fewer, or "
            "use prompts.source 'synthetic' for a workload of any size"
        )
    if config.shuffle:
        texts = list(texts)
        random.Random(seed).shuffle(texts)
    return [Prompt(request_id=i, text=t) for i, t in enumerate(texts[: config.num_prompts])]


def _read_source(config: PromptsConfig) -> tuple[list[str], str]:
    """Texts of a file-backed source and the words that name it in messages."""
    if config.source == "builtin":
        return prompt_sources.read_builtin(), "the built-in prompt set"
    if config.source == "file":
        assert config.path is not None  # enforced by PromptsConfig
        return prompt_sources.read_text_file(config.path), f"prompts.path '{config.path}'"
    if config.source == "jsonl":
        assert config.path is not None  # enforced by PromptsConfig
        return (
            prompt_sources.read_jsonl(config.path, config.column),
            f"prompts.path '{config.path}'",
        )
    if config.source == "huggingface":
        assert config.dataset is not None  # enforced by PromptsConfig
        texts = prompt_sources.read_hf_dataset(
            config.dataset, config.dataset_config, config.split, config.column
        )
        return texts, f"prompts.dataset '{config.dataset}' split '{config.split}'"
    raise ConfigurationError(f"prompts.source '{config.source}' is not supported")


def count_tokens(texts: Sequence[str], tokenizer: Any) -> list[int]:
    """Tokens the model sees for each text: attention-mask sum of ``tokenizer(text)``.

    Includes the special tokens the tokenizer adds (e.g. BOS); no padding, no truncation.
    """
    counts: list[int] = []
    for start in range(0, len(texts), _COUNT_CHUNK):
        encoded = tokenizer(list(texts[start : start + _COUNT_CHUNK]))
        masks = encoded.get("attention_mask")
        if masks is None:
            counts.extend(len(ids) for ids in encoded["input_ids"])
        else:
            counts.extend(int(sum(mask)) for mask in masks)
    return counts


class Truncation(NamedTuple):
    """Result of :func:`truncate_prompts`; unpacks as ``prompts, num_truncated, token_counts``."""

    prompts: list[Prompt]
    num_truncated: int
    token_counts: list[int]


def truncate_prompts(
    prompts: Sequence[Prompt], tokenizer: Any, max_input_tokens: int
) -> Truncation:
    """Prompts cut so that each has at most ``max_input_tokens`` tokens (as
    :func:`count_tokens` counts, special tokens included), how many were cut, and the token
    count of each resulting prompt.

    The beginning of a prompt is kept. With a fast tokenizer the cut is made in the original
    text at a token boundary (character offsets); otherwise the kept tokens are decoded. The
    result is re-tokenized and shortened further until it fits, because a cut text does not
    always re-tokenize to the same tokens.

    Only a prefix of a long prompt is tokenized: ``max_input_tokens * 16`` characters,
    doubled until it holds 16 tokens more than the limit or is the whole text, so time and
    memory do not grow with the length of the prompt.
    """
    prefix_chars = max_input_tokens * _PREFIX_CHARS_PER_TOKEN
    heads = [p.text[:prefix_chars] for p in prompts]
    counts = count_tokens(heads, tokenizer)
    result: list[Prompt] = []
    num_truncated = 0
    for index, (prompt, count) in enumerate(zip(prompts, counts, strict=True)):
        head = heads[index]
        while len(head) < len(prompt.text) and count <= max_input_tokens + _PREFIX_MARGIN_TOKENS:
            head = prompt.text[: 2 * len(head)]
            count = counts[index] = count_tokens([head], tokenizer)[0]
        if count <= max_input_tokens:  # head is the whole text
            result.append(prompt)
            continue
        text, counts[index] = _truncate_text(head, count, tokenizer, max_input_tokens)
        result.append(replace(prompt, text=text))
        num_truncated += 1
    return Truncation(result, num_truncated, counts)


def _truncate_text(
    text: str, count: int, tokenizer: Any, max_input_tokens: int
) -> tuple[str, int]:
    """The longest kept prefix found that fits, and its token count."""
    use_offsets = bool(getattr(tokenizer, "is_fast", False))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=use_offsets)
    ids: list[int] = list(encoded["input_ids"])
    special = count - len(ids)
    keep = max_input_tokens - special
    while keep > 0:
        if use_offsets:
            cut = text[: encoded["offset_mapping"][keep - 1][1]]
        else:
            cut = tokenizer.decode(ids[:keep], skip_special_tokens=True)
        cut_count = count_tokens([cut], tokenizer)[0]
        if cut_count <= max_input_tokens:
            return cut, cut_count
        keep -= cut_count - max_input_tokens
    raise ConfigurationError(
        f"prompts.max_input_tokens ({max_input_tokens}) leaves no room for prompt text: the "
        f"tokenizer adds {special} special token(s) itself. Raise prompts.max_input_tokens"
    )


def check_context(
    prompts: Sequence[Prompt],
    token_counts: Sequence[int],
    context_len: int | None,
    max_new_tokens: int,
) -> None:
    """Raise ConfigurationError if a prompt plus ``max_new_tokens`` exceeds the model's
    context (``max_position_embeddings``), naming the first offending request id.

    ``token_counts`` is aligned with ``prompts``; ``context_len`` None means unknown: no check.
    """
    if context_len is None:
        return
    if len(prompts) != len(token_counts):
        raise ValueError(
            f"{len(prompts)} prompts but {len(token_counts)} token counts: they must align"
        )
    limit = context_len - max_new_tokens
    if limit < 1:
        raise ConfigurationError(
            f"decoder.max_new_tokens ({max_new_tokens}) leaves no room for a prompt in the "
            f"model's context of {context_len} tokens: lower decoder.max_new_tokens below "
            f"{context_len}"
        )
    over = [(p.request_id, n) for p, n in zip(prompts, token_counts, strict=True) if n > limit]
    if not over:
        return
    rid, n = over[0]
    others = f" ({len(over) - 1} more prompt(s) too)" if len(over) > 1 else ""
    raise ConfigurationError(
        f"request {rid} has {n} input tokens, but the model's context of {context_len} tokens "
        f"minus decoder.max_new_tokens ({max_new_tokens}) leaves {limit}{others}: lower "
        f"prompts.max_input_tokens to {limit} or less (or lower decoder.max_new_tokens)"
    )


def synthetic_prompts(
    tokenizer: Any,
    *,
    num_prompts: int,
    input_tokens: int,
    seed: int,
    output_tokens: int | None = None,
) -> list[Prompt]:
    """``num_prompts`` seeded random prompts of exactly ``input_tokens`` tokens each, as
    :func:`count_tokens` counts them (special tokens the tokenizer adds included).

    Text is a space-separated sequence of whole-word vocabulary tokens drawn uniformly from a
    pool of up to 1024 words; the pool is a seeded random sample of the vocabulary (special
    and added tokens excluded) restricted to ASCII-letter tokens that stay one token each
    when repeated with spaces, so the text re-tokenizes to the same length. Each prompt is
    then re-tokenized and adjusted until its count is exact.
    """
    rng = random.Random(seed)
    pool = _word_pool(tokenizer, rng)
    special = count_tokens([pool[0]], tokenizer)[0] - len(
        tokenizer(pool[0], add_special_tokens=False)["input_ids"]
    )
    if input_tokens <= special:
        raise ConfigurationError(
            f"prompts.synthetic_input_tokens ({input_tokens}) must exceed the {special} "
            f"special token(s) this tokenizer adds: set it to {special + 1} or more"
        )
    word_lists = [
        [rng.choice(pool) for _ in range(input_tokens - special)] for _ in range(num_prompts)
    ]
    counts = count_tokens([" ".join(words) for words in word_lists], tokenizer)
    prompts = []
    for request_id, (words, count) in enumerate(zip(word_lists, counts, strict=True)):
        rounds = 0
        while count != input_tokens:
            if rounds == _MAX_ADJUST_ROUNDS or (count > input_tokens and len(words) == 1):
                raise ConfigurationError(
                    f"could not build a synthetic prompt of exactly {input_tokens} tokens with "
                    "this tokenizer: use prompts.source 'builtin' or a prompt file instead"
                )
            if count > input_tokens:
                del words[max(1, len(words) - (count - input_tokens)) :]
            else:
                words.extend(rng.choice(pool) for _ in range(input_tokens - count))
            count = count_tokens([" ".join(words)], tokenizer)[0]
            rounds += 1
        prompts.append(
            Prompt(request_id=request_id, text=" ".join(words),
                   target_output_tokens=output_tokens)
        )
    return prompts


def _word_pool(tokenizer: Any, rng: random.Random) -> list[str]:
    """Seeded sample of vocabulary words that are one token each, alone or after a space."""
    excluded = set(getattr(tokenizer, "all_special_ids", None) or ())
    excluded.update(getattr(tokenizer, "added_tokens_decoder", None) or {})
    candidate_ids = [i for i in range(len(tokenizer)) if i not in excluded]
    rng.shuffle(candidate_ids)
    pool: list[str] = []
    seen: set[str] = set()
    for start in range(0, len(candidate_ids), _CANDIDATE_CHUNK):
        chunk = candidate_ids[start : start + _CANDIDATE_CHUNK]
        decoded = tokenizer.batch_decode([[i] for i in chunk], skip_special_tokens=True)
        fresh = []
        for word in (d.strip() for d in decoded):
            if word.isascii() and word.isalpha() and word not in seen:
                seen.add(word)
                fresh.append(word)
        if not fresh:
            continue
        encoded = tokenizer([f"{w} {w} {w}" for w in fresh], add_special_tokens=False)
        pool.extend(w for w, ids in zip(fresh, encoded["input_ids"], strict=True) if len(ids) == 3)
        if len(pool) >= _WORD_POOL_SIZE:
            return pool[:_WORD_POOL_SIZE]
    if not pool:
        raise ConfigurationError(
            "this tokenizer has no whole-word (ASCII letters) tokens to build synthetic prompts "
            "from: use prompts.source 'builtin' or a prompt file instead"
        )
    return pool
