"""Embedded models, generated locally with random weights, so that measurements run offline.

- ``builtin:tiny-llama`` (the default, about 7 M parameters): fast enough for any CPU;
- ``builtin:small-llama`` (about 109 M parameters): the layer shapes of SmolLM2-135M (30
  layers, hidden 576, 9 query and 3 KV heads, gated MLP of 1536, tied embeddings) with the
  builtin tokenizer's 4096-token vocabulary: a realistic small decoder for GPU checks, where
  no pretrained weights can be downloaded.

A model is built from a fixed recipe on first use and cached under
``resolve_cache_dir()/builtin/<name>-<recipe hash>/`` as an ordinary Hugging Face folder
(``save_pretrained`` of model and tokenizer) plus a marker file. Its weights are random, so the
text it generates is meaningless, but its timings, energy and FLOPs are those of a real (small)
Llama-architecture transformer. The same recipe gives byte-identical weights on every rebuild
(a dedicated seeded ``torch.Generator`` fills every parameter, independent of library
initialisation schemes).

Building is safe under concurrency: it happens in a temporary folder beside the target, under a
file lock, and the folder is renamed into place in one atomic step.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llm_energy_measure.constants import BUILTIN_MODEL_PREFIX, CACHE_DIR_ENV, resolve_cache_dir
from llm_energy_measure.exceptions import ConfigurationError

#: Name of the marker file written beside a builtin model's config.json.
BUILTIN_MARKER_FILE = "llm_energy_measure_builtin.json"

#: Everything that determines the generated model. Changing any value changes the cache folder.
TINY_LLAMA_RECIPE: dict[str, Any] = {
    "name": "tiny-llama",
    "recipe_version": 1,
    "corpus": {"seed": 20240611, "sentences": 6000, "pseudo_words": 1500},
    "tokenizer": {
        "kind": "byte_level_bpe",
        "vocab_size": 4096,
        "min_frequency": 2,
        "special_tokens": ["<unk>", "<s>", "</s>", "<pad>"],
        "model_max_length": 2048,
    },
    "model": {
        "architecture": "LlamaForCausalLM",
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "intermediate_size": 704,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "dtype": "float32",
    },
    "init": {"seed": 1234, "std": 0.02},
}

#: SmolLM2-135M's layer shapes with the builtin tokenizer (same corpus and vocabulary).
SMALL_LLAMA_RECIPE: dict[str, Any] = {
    "name": "small-llama",
    "recipe_version": 1,
    "corpus": TINY_LLAMA_RECIPE["corpus"],
    "tokenizer": TINY_LLAMA_RECIPE["tokenizer"],
    "model": {
        "architecture": "LlamaForCausalLM",
        "hidden_size": 576,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "intermediate_size": 1536,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0,
        "tie_word_embeddings": True,
        "dtype": "float32",
    },
    "init": {"seed": 1234, "std": 0.02},
}

#: Known builtin models (the part after ``builtin:``).
BUILTIN_MODELS: dict[str, dict[str, Any]] = {
    "tiny-llama": TINY_LLAMA_RECIPE,
    "small-llama": SMALL_LLAMA_RECIPE,
}

_COMMON_WORDS = (
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "they", "you", "were", "her", "she", "there", "one", "all", "we", "their", "has", "been",
    "if", "more", "when", "will", "would", "who", "so", "no", "can", "out", "up", "about", "into",
    "than", "them", "some", "could", "time", "these", "two", "may", "then", "do", "first", "any",
    "my", "now", "such", "like", "our", "over", "man", "me", "even", "most", "made", "after",
    "also", "did", "many", "before", "must", "through", "back", "years", "where", "much", "your",
    "way", "well", "down", "should", "because", "each", "just", "those", "people", "how", "too",
    "little", "state", "good", "very", "make", "world", "still", "own", "see", "men", "work",
    "long", "get", "here", "between", "both", "life", "being", "under", "never", "day", "same",
    "another", "know", "while", "last", "might", "us", "great", "old", "year", "off", "come",
    "since", "against", "go", "came", "right", "used", "take", "three", "energy", "power",
    "model", "token", "inference", "measure", "latency", "throughput", "joule", "watt", "second",
    "batch", "prompt", "data", "compute", "memory", "device", "network", "language", "question",
    "answer", "explain", "describe", "summarise", "write", "story", "short", "history", "science",
    "water", "light", "city", "river", "mountain", "music", "learning", "system", "number",
    "value", "result", "research", "paper", "method",
)

_SYLLABLES = (
    "ka", "ri", "to", "ne", "ma", "lo", "su", "ve", "ta", "pi", "an", "er", "in", "on", "or",
    "ex", "co", "de", "re", "un", "st", "tr", "pl", "gr", "ch", "sh", "th", "qu", "ing", "ion",
    "ent", "ous", "ble", "ive", "ary", "ism", "ist", "ful", "ness", "ment", "ity", "ize", "ate",
)

_PUNCTUATION = (".", ".", ".", "?", "!", ",")


def recipe_hash(recipe: dict[str, Any] | None = None) -> str:
    """Short hash (12 hex digits) of a recipe: the cache folder's identity."""
    blob = json.dumps(recipe or TINY_LLAMA_RECIPE, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def builtin_names() -> list[str]:
    """Full names of the builtin models, e.g. ``["builtin:tiny-llama"]``."""
    return [f"{BUILTIN_MODEL_PREFIX}{name}" for name in sorted(BUILTIN_MODELS)]


def generate_corpus(seed: int, sentences: int, pseudo_words: int) -> list[str]:
    """Deterministic training text for the tokenizer: English-like sentences.

    Mixes common English words, pseudo-words built from syllables, numbers and punctuation so
    that byte-level BPE learns merges that cover ordinary prompts.
    """
    rng = random.Random(seed)
    invented = [
        "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        for _ in range(pseudo_words)
    ]
    lexicon = list(_COMMON_WORDS) * 4 + invented
    lines: list[str] = []
    for _ in range(sentences):
        words = [rng.choice(lexicon) for _ in range(rng.randint(6, 24))]
        if rng.random() < 0.15:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 9999)))
        words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice(_PUNCTUATION))
    return lines


def build_tokenizer(recipe: dict[str, Any] | None = None) -> Any:
    """Train the byte-level BPE tokenizer of a recipe in memory.

    Returns a ``transformers.PreTrainedTokenizerFast`` with ``<s>`` prepended to every
    sequence, ``</s>`` as EOS, ``<pad>`` as pad token and left padding.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    recipe = recipe or TINY_LLAMA_RECIPE
    tok_recipe = recipe["tokenizer"]
    corpus = generate_corpus(**recipe["corpus"])
    specials: list[str] = list(tok_recipe["special_tokens"])

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=tok_recipe["vocab_size"],
        min_frequency=tok_recipe["min_frequency"],
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
    bos_id = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
        model_max_length=tok_recipe["model_max_length"],
    )


def llama_config(tokenizer: Any, recipe: dict[str, Any] | None = None) -> Any:
    """The ``LlamaConfig`` of a recipe; the vocabulary is the tokenizer's."""
    from transformers import LlamaConfig

    m = (recipe or TINY_LLAMA_RECIPE)["model"]
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=m["hidden_size"],
        intermediate_size=m["intermediate_size"],
        num_hidden_layers=m["num_hidden_layers"],
        num_attention_heads=m["num_attention_heads"],
        num_key_value_heads=m["num_key_value_heads"],
        max_position_embeddings=m["max_position_embeddings"],
        rms_norm_eps=m["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": m["rope_theta"]},
        tie_word_embeddings=m["tie_word_embeddings"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_model(tokenizer: Any, recipe: dict[str, Any] | None = None) -> Any:
    """Instantiate the recipe's ``LlamaForCausalLM`` with deterministic random weights.

    Every parameter is drawn in sorted-name order from one seeded generator (normal, std from
    the recipe); RMSNorm weights are ones. Weights are float32.
    """
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    recipe = recipe or TINY_LLAMA_RECIPE
    model = LlamaForCausalLM(llama_config(tokenizer, recipe)).float()
    generator = torch.Generator().manual_seed(int(recipe["init"]["seed"]))
    std = float(recipe["init"]["std"])
    with torch.no_grad():
        for _, param in sorted(model.named_parameters(), key=lambda item: item[0]):
            if param.ndim == 1:
                param.fill_(1.0)
            else:
                param.normal_(mean=0.0, std=std, generator=generator)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.eval()
    return model


def build_into(folder: Path, recipe: dict[str, Any] | None = None) -> None:
    """Build a recipe's model and tokenizer and save them (plus the marker) into ``folder``.

    Not atomic on its own; ``ensure_builtin_model`` wraps it in a temp folder and a rename.
    """
    recipe = recipe or TINY_LLAMA_RECIPE
    tokenizer = build_tokenizer(recipe)
    model = build_model(tokenizer, recipe)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    marker = {
        "builtin": recipe["name"],
        "name": f"{BUILTIN_MODEL_PREFIX}{recipe['name']}",
        "recipe_hash": recipe_hash(recipe),
        "random_weights": True,
        "recipe": recipe,
    }
    # Written last: a folder with the marker is complete.
    (folder / BUILTIN_MARKER_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True))


def read_builtin_marker(folder: Path) -> dict[str, Any] | None:
    """The builtin marker of a model folder, or None when the folder is not a builtin model."""
    path = Path(folder) / BUILTIN_MARKER_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ensure_builtin_model(name: str, cache_dir: Path | None = None) -> Path:
    """Folder of the builtin model ``name`` (with or without the ``builtin:`` prefix).

    Builds it on first use under ``cache_dir`` (default: ``resolve_cache_dir()``)/builtin/.
    Safe when several processes ask at once (file lock + atomic rename). Raises
    ConfigurationError for an unknown name or an unwritable cache directory.
    """
    from filelock import FileLock

    short = name.removeprefix(BUILTIN_MODEL_PREFIX)
    if short not in BUILTIN_MODELS:
        raise ConfigurationError(
            f"model.name '{name}' is not a builtin model; known builtin models: "
            f"{', '.join(builtin_names())}"
        )
    recipe = BUILTIN_MODELS[short]
    root = Path(cache_dir) if cache_dir is not None else resolve_cache_dir()
    parent = root / "builtin"
    final = parent / f"{short}-{recipe_hash(recipe)}"
    if read_builtin_marker(final) is not None:
        return final
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(parent / f"{final.name}.lock")):
            if read_builtin_marker(final) is not None:
                return final  # another process built it while we waited
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=parent))
            try:
                build_into(tmp, recipe)
                if final.exists():  # an incomplete folder left by hand: replace it
                    shutil.rmtree(final)
                os.rename(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:  # read-only, no permission, a file in the way, disk full
        raise ConfigurationError(
            f"cannot write the builtin model cache at '{parent}': {exc.strerror}; set "
            f"{CACHE_DIR_ENV} to a writable directory"
        ) from exc
    return final
