"""Readers that turn a prompt source (built-in set, text file, JSONL, Hugging Face dataset)
into a list of prompt texts, in the source's own order.

Each reader raises :class:`ConfigurationError` naming the config key or path and the fix when
the source is unusable. Texts are returned verbatim except that leading/trailing whitespace is
stripped; empty texts are skipped (an empty prompt measures nothing).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from llm_energy_measure.bounded import FileRefusedError, json_too_deep, read_regular_file
from llm_energy_measure.constants import MAX_NESTING_DEPTH, MAX_PROMPT_FILE_BYTES
from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError

#: Columns tried, in this order, when ``prompts.column`` is not set.
PROMPT_COLUMN_CANDIDATES = (
    "prompt",
    "text",
    "instruction",
    "question",
    "input",
    "content",
    "messages",
)

#: Package-data file holding the built-in prompt set (JSONL: id, category, text).
BUILTIN_PROMPTS_FILE = "prompts.jsonl"


@dataclass(frozen=True)
class BuiltinPrompt:
    """One record of the built-in prompt set."""

    id: str
    category: str
    text: str


def read_builtin_records() -> list[BuiltinPrompt]:
    """The built-in prompt set, in its fixed file order (a length- and category-mixed order,
    so that any prefix of it is a varied workload)."""
    data = resources.files("llm_energy_measure").joinpath("data").joinpath(BUILTIN_PROMPTS_FILE)
    records = []
    for line in data.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            records.append(BuiltinPrompt(id=row["id"], category=row["category"], text=row["text"]))
    return records


def read_builtin() -> list[str]:
    """Texts of the built-in prompt set, in file order."""
    return [record.text for record in read_builtin_records()]


def _check_file(path: Path) -> str:
    """The text of a prompt file: a regular UTF-8 file of at most ``MAX_PROMPT_FILE_BYTES``
    (a FIFO or device is refused before anything is read)."""
    if not path.exists():
        raise ConfigurationError(f"prompts.path '{path}' does not exist: point it at a prompt file")
    try:
        return read_regular_file(path, MAX_PROMPT_FILE_BYTES).decode("utf-8")
    except FileRefusedError as exc:
        raise ConfigurationError(
            f"prompts.path '{path}' is {exc.strerror}: point it at a prompt file"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"prompts.path '{path}' is not UTF-8 text ({exc.reason} at byte {exc.start}): "
            "save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise ConfigurationError(f"prompts.path '{path}' cannot be read: {exc}") from exc


def read_text_file(path: Path) -> list[str]:
    """One prompt per line of a UTF-8 text file; blank lines are skipped."""
    texts = [line.strip() for line in _check_file(path).splitlines() if line.strip()]
    if not texts:
        raise ConfigurationError(
            f"prompts.path '{path}' holds no prompts: write one prompt per line"
        )
    return texts


def detect_column(columns: Iterable[str], column: str | None, where: str) -> str:
    """The column to read prompts from.

    ``column`` (``prompts.column``) wins when set and must be among ``columns``; otherwise the
    first of :data:`PROMPT_COLUMN_CANDIDATES` present is used. ``where`` names the source in
    error messages.
    """
    seen = list(columns)
    if column is not None:
        if column not in seen:
            raise ConfigurationError(
                f"prompts.column '{column}' is not in {where}; columns seen: "
                f"{', '.join(seen) or '(none)'}"
            )
        return column
    for candidate in PROMPT_COLUMN_CANDIDATES:
        if candidate in seen:
            return candidate
    raise ConfigurationError(
        f"no prompt column found in {where} (tried {', '.join(PROMPT_COLUMN_CANDIDATES)}); "
        f"columns seen: {', '.join(seen) or '(none)'}. Set prompts.column to one of them"
    )


def _content_text(content: object) -> str | None:
    """Text of a chat message's content: a string, or a list of {"type": "text"} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        ]
        return "\n".join(parts) if parts else None
    return None


def text_from_value(value: object, column: str, where: str) -> str:
    """Prompt text of one cell: a string, or a chat (list of {"role", "content"} messages),
    of which the user messages' contents are joined with blank lines."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list) and all(isinstance(m, Mapping) for m in value):
        user_texts = [
            text
            for message in value
            if message.get("role") == "user"
            and (text := _content_text(message.get("content"))) is not None
        ]
        if not user_texts:
            raise ConfigurationError(
                f"column '{column}' of {where} is a chat without a user message with text "
                "content: give each chat at least one {\"role\": \"user\", \"content\": ...}"
            )
        return "\n\n".join(t.strip() for t in user_texts).strip()
    raise ConfigurationError(
        f"column '{column}' of {where} holds a {type(value).__name__}, not text or a chat "
        "message list: set prompts.column to a text column"
    )


def read_jsonl(path: Path, column: str | None) -> list[str]:
    """Prompts from a JSONL file: one JSON object per line, blank lines skipped.

    The column is ``column`` or detected from the first object's keys; every object must
    have it. Empty texts are skipped.
    """
    content = _check_file(path)
    texts: list[str] = []
    chosen: str | None = None
    for line_no, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"prompts.path '{path}' line {line_no}"
        if json_too_deep(line, MAX_NESTING_DEPTH):
            raise ConfigurationError(
                f"{where} nests more than {MAX_NESTING_DEPTH} levels deep: a prompt record is "
                "an object of text or chat messages"
            )
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{where} is not valid JSON ({exc.msg}): fix that line"
                                     ) from exc
        except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit limit
            raise ConfigurationError(f"{where} is not usable JSON ({exc}): fix that line"
                                     ) from exc
        if not isinstance(row, dict):
            raise ConfigurationError(
                f"{where} is a JSON {type(row).__name__}, not an object: write one "
                '{"prompt": ...} object per line'
            )
        if chosen is None:
            chosen = detect_column(row.keys(), column, where)
        elif chosen not in row:
            raise ConfigurationError(
                f"{where} has no '{chosen}' key; keys seen: {', '.join(row) or '(none)'}"
            )
        text = text_from_value(row[chosen], chosen, where)
        if text:
            texts.append(text)
    if not texts:
        raise ConfigurationError(
            f"prompts.path '{path}' holds no prompts: write one JSON object per line"
        )
    return texts


def read_hf_dataset(
    dataset: str, dataset_config: str | None, split: str, column: str | None
) -> list[str]:
    """Prompts from a Hugging Face dataset (needs the ``datasets`` extra).

    ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` are honoured by ``datasets`` itself: offline,
    only datasets already in the local cache (or a local folder) load.
    """
    try:
        import datasets
    except ImportError as exc:
        raise MissingExtraError(
            "datasets", "datasets", "Loading prompts from a Hugging Face dataset"
        ) from exc

    label = f"'{dataset}'" + (f" (config '{dataset_config}')" if dataset_config else "")
    try:
        loaded: Any = datasets.load_dataset(dataset, dataset_config, split=split)
    except Exception as exc:
        raise ConfigurationError(
            f"prompts.dataset {label} split '{split}' could not be loaded "
            f"({type(exc).__name__}: {exc}). It must be in the local Hugging Face cache, or "
            "the network must be reachable (HF_HUB_OFFLINE unset)"
        ) from exc
    where = f"prompts.dataset {label} split '{split}'"
    chosen = detect_column(list(loaded.column_names), column, where)
    values: Sequence[object] = loaded[chosen]
    texts = [t for t in (text_from_value(v, chosen, where) for v in values) if t]
    if not texts:
        raise ConfigurationError(f"{where} holds no non-empty prompts in column '{chosen}'")
    return texts
