"""Dotted-key overrides (``decoder.max_new_tokens=8``) applied on top of a loaded config.

Values may be strings as typed on a command line: validation coerces them to the field's type
("8" -> 8, "true" -> True, "0.5" -> 0.5).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from llm_energy_measure.bounded import IntegerTooLongError, bounded_int, json_too_deep
from llm_energy_measure.config.errors import (
    describe,
    is_open_mapping,
    section_model,
    unknown_key_hint,
)
from llm_energy_measure.config.merge import deep_merge
from llm_energy_measure.constants import MAX_INT_DIGITS, MAX_NESTING_DEPTH
from llm_energy_measure.exceptions import ConfigurationError


def parse_override_value(text: str, key: str = "value") -> object:
    """A command-line value: ``null`` or ``~`` -> None, JSON lists/objects (``[0, 1]``) decoded,
    anything else kept as the string for validation to coerce ("8" -> 8 for an int field)."""
    stripped = text.strip()
    if stripped in ("null", "~"):
        return None
    if stripped[:1] in ("[", "{"):
        if json_too_deep(stripped, MAX_NESTING_DEPTH):
            raise ConfigurationError(
                f"override '{key}': the value nests more than {MAX_NESTING_DEPTH} levels deep"
            )
        try:
            return json.loads(stripped, parse_int=bounded_int(MAX_INT_DIGITS))
        except IntegerTooLongError as exc:
            raise ConfigurationError(f"override '{key}': {exc}") from None
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"override '{key}': {text!r} is not valid JSON ({exc.msg} at column {exc.colno}); "
                'write lists as [0, 1] and mappings as {"0": "20GiB"}'
            ) from exc
    return text


def parse_overrides(items: Iterable[str]) -> dict[str, object]:
    """``["decoder.max_new_tokens=8", ...]`` -> ``{"decoder.max_new_tokens": "8", ...}``.

    Values stay strings (``apply_overrides`` interprets them). A key given twice keeps its last
    value, as on most command lines.
    """
    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(
                f"override {item!r} must look like key=value, e.g. decoder.max_new_tokens=8"
            )
        parsed[key.strip()] = value
    return parsed


def split_key(dotted_key: str) -> list[str]:
    """``"decoder.max_new_tokens"`` -> ``["decoder", "max_new_tokens"]``; empty parts raise."""
    parts = dotted_key.split(".")
    if not dotted_key or any(not part.strip() for part in parts):
        raise ConfigurationError(
            f"override key {dotted_key!r} is not a dotted key such as decoder.max_new_tokens"
        )
    return [part.strip() for part in parts]


def check_override_key(keys: list[str]) -> None:
    """Raise ConfigurationError unless ``keys`` names a setting of ExperimentConfig."""
    for depth, key in enumerate(keys):
        section = keys[:depth]
        model = section_model(section)
        if model is None:
            if depth > 0 and is_open_mapping(section) and depth == len(keys) - 1:
                return  # a key inside a free-form mapping such as sharding.max_memory
            raise ConfigurationError(
                f"override '{'.'.join(keys)}': '{'.'.join(section)}' is a single setting, "
                "not a section with keys"
            )
        if key not in model.model_fields:
            raise ConfigurationError(
                f"override '{'.'.join(keys)}': unknown key '{'.'.join(keys[: depth + 1])}'"
                + unknown_key_hint(section, key)
            )


def apply_overrides(
    data: Mapping[str, Any], overrides: Mapping[str, object] | None
) -> dict[str, Any]:
    """A new config dict with each dotted key set to its value (the input is not modified).

    String values are read as on a command line (``parse_override_value``). A mapping value
    merges into the section it replaces (as ``_extends`` does); any other value replaces it.
    Unknown keys raise ConfigurationError with a did-you-mean hint.
    """
    result: dict[str, Any] = copy.deepcopy(dict(data))
    for dotted_key, value in (overrides or {}).items():
        keys = split_key(dotted_key)
        check_override_key(keys)
        node = result
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise ConfigurationError(
                    f"override '{dotted_key}': '{where}' is not a mapping in the config "
                    f"(it is {describe(child)}); fix the config file or override '{where}' whole"
                )
            node = child
        if isinstance(value, str):
            value = parse_override_value(value, dotted_key)
        below = node.get(keys[-1])
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            node[keys[-1]] = deep_merge(below, value)
        else:
            node[keys[-1]] = copy.deepcopy(value)
    return result
