"""Read experiment configs from YAML or JSON files, with ``_extends`` inheritance.

``_extends: base.yaml`` (or a list of paths) names parent configs, resolved relative to the
folder of the file that names them. Precedence between parents, child, overrides and the
environment is declared in ``config/precedence.py``. Every failure is a ConfigurationError with
one line naming the file, the key and the fix.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from llm_energy_measure.config.errors import describe
from llm_energy_measure.config.merge import deep_merge
from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.config.precedence import layer_sources
from llm_energy_measure.config.validation import validate_config
from llm_energy_measure.exceptions import ConfigurationError

EXTENDS_KEY = "_extends"
SUPPORTED_SUFFIXES = (".yaml", ".yml", ".json")
OVERRIDES_SOURCE = "overrides"

Origins = dict[tuple[str, ...], str]


class _DuplicateKeyError(ValueError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` keys may be overridden on purpose
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                continue  # unhashable keys are reported by the base class
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(f"duplicate key '{key}'")
        result[key] = value
    return result


def _decode(raw: bytes, label: str) -> str:
    """UTF-8 text of a config file; binary or undecodable content is refused."""
    nul_offset = raw.find(b"\x00")
    if nul_offset >= 0:
        raise ConfigurationError(
            f"{label}: not a text file (NUL byte at offset {nul_offset}); "
            "a config must be YAML or JSON text"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{label}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save the config as UTF-8 YAML or JSON"
        ) from exc
    for line_number, line in enumerate(text.splitlines(), start=1):
        bad = next((c for c in line if unicodedata.category(c) == "Cc" and c != "\t"), None)
        if bad is not None:
            raise ConfigurationError(
                f"{label}: control character U+{ord(bad):04X} at line {line_number}; "
                "a config must be YAML or JSON text"
            )
    return text


def _parse(text: str, label: str, suffix: str) -> object:
    if suffix == ".json":
        try:
            return json.loads(text, object_pairs_hook=_unique_pairs)
        except _DuplicateKeyError as exc:
            raise ConfigurationError(f"{label}: invalid JSON: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{label}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise ConfigurationError(f"{label}: invalid YAML{where}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{label}: invalid YAML: {' '.join(str(exc).split())}") from exc


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping stored in one YAML/JSON file, as written (no inheritance, no validation)."""
    path = Path(path)
    label = str(path)
    if not path.exists():
        raise ConfigurationError(f"config file not found: {label}")
    if path.is_dir():
        raise ConfigurationError(f"{label} is a directory; give the path of a .yaml or .json file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ConfigurationError(
            f"{label}: unsupported config file type '{path.suffix}'; use .yaml, .yml or .json"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{label}: cannot read the file ({exc.strerror})") from exc
    text = _decode(raw, label)
    if not text.strip():
        raise ConfigurationError(f"{label}: the file is empty; write the settings as key: value")
    data = _parse(text, label, suffix)
    if data is None:
        raise ConfigurationError(f"{label}: the file holds no settings (only comments?)")
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{label}: the top level must be a mapping of settings (key: value), "
            f"got {describe(data)}"
        )
    return data


def _parent_paths(value: object, child: Path) -> list[Path]:
    """Parent files named by ``_extends``, resolved against the child's folder."""
    specs = value if isinstance(value, list) else [value]
    if not all(isinstance(spec, str) and spec.strip() for spec in specs):
        raise ConfigurationError(
            f"{child}: {EXTENDS_KEY} must be a file path or a list of file paths, "
            f"got {describe(value)}"
        )
    parents = []
    for spec in specs:
        parent = Path(os.path.normpath(child.parent / Path(str(spec).strip()).expanduser()))
        if not parent.exists():
            raise ConfigurationError(
                f"{child}: {EXTENDS_KEY} '{spec}' not found (looked for {parent})"
            )
        parents.append(parent)
    return parents


def _leaf_origins(data: Mapping[str, Any], label: str, prefix: tuple[str, ...] = ()) -> Origins:
    origins: Origins = {}
    for key, value in data.items():
        keys = (*prefix, str(key))
        origins[keys] = label
        if isinstance(value, Mapping):
            origins.update(_leaf_origins(value, label, keys))
    return origins


def _load_tree(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Origins]:
    """Settings of ``path`` merged over its parents, and the file that set each key."""
    identity = path.resolve()
    resolved_chain = [p.resolve() for p in chain]
    if identity in resolved_chain:
        cycle = [*chain[resolved_chain.index(identity) :], path]
        raise ConfigurationError(
            f"circular {EXTENDS_KEY}: {' -> '.join(str(p) for p in cycle)}; remove one of these"
        )
    data = read_config_file(path)
    merged: dict[str, Any] = {}
    origins: Origins = {}
    if EXTENDS_KEY in data:
        for parent in _parent_paths(data.pop(EXTENDS_KEY), path):
            parent_data, parent_origins = _load_tree(parent, (*chain, path))
            merged = deep_merge(merged, parent_data)
            origins.update(parent_origins)
    merged = deep_merge(merged, data)
    origins.update(_leaf_origins(data, str(path)))
    return merged, origins


def load_config_dict(path: str | Path) -> dict[str, Any]:
    """The settings of a config file with ``_extends`` parents merged in, before validation.

    ``_extends`` keys are removed; defaults and decoder presets are not yet applied.
    """
    return _load_tree(Path(path))[0]


def load_config(
    path: str | Path, overrides: Mapping[str, object] | None = None
) -> ExperimentConfig:
    """Load, merge (``_extends``), apply dotted ``overrides`` and validate one experiment config.

    Override values may be strings as typed on a command line; validation coerces them.
    Raises ConfigurationError (one line: file, dotted key, problem, allowed values).
    """
    file_data, origins = _load_tree(Path(path))
    data = layer_sources(file_data, overrides)
    for key, value in (overrides or {}).items():
        keys = tuple(part.strip() for part in key.split("."))
        origins[keys] = OVERRIDES_SOURCE
        if isinstance(value, Mapping):
            origins.update(_leaf_origins(value, OVERRIDES_SOURCE, keys))
    return validate_config(data, source=str(path), origins=origins)
