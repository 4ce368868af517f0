"""Read experiment configs from YAML or JSON files, with ``_extends`` inheritance.

``_extends: base.yaml`` (or a list of paths) names parent configs, resolved relative to the
folder of the file that names them. Precedence between parents, child, overrides and the
environment is declared in ``config/precedence.py``. Every failure is a ConfigurationError with
one line naming the file, the key and the fix.
"""

from __future__ import annotations

import errno
import json
import os
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from llm_energy_measure.bounded import (
    IntegerTooLongError,
    bounded_int,
    describe_size,
    json_too_deep,
    read_regular_file,
)
from llm_energy_measure.config.errors import describe
from llm_energy_measure.config.merge import deep_merge
from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.config.overrides import parse_override_value
from llm_energy_measure.config.precedence import layer_sources
from llm_energy_measure.config.validation import validate_config
from llm_energy_measure.constants import (
    MAX_CONFIG_BYTES,
    MAX_EXTENDS_DEPTH,
    MAX_EXTENDS_FILES,
    MAX_INT_DIGITS,
    MAX_NESTING_DEPTH,
    MAX_YAML_ALIASES,
    MAX_YAML_EXPANDED_NODES,
)
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


class _BoundedLoader(_UniqueKeyLoader):
    """The config loader: refuses documents that would exhaust memory or the stack.

    While the document is composed (before anything is built) it counts alias references,
    the nodes the document expands to with every alias counted at its full size (an alias
    bomb of a few hundred bytes expands to billions), and the nesting depth; an alias to a
    node that contains it is refused (it would make the settings infinitely deep). Integers
    longer than ``MAX_INT_DIGITS`` digits are refused with their position.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._expanded = 0
        self._depth = 0
        self._anchor_sizes: dict[str, int] = {}

    def _grow(self, nodes: int, mark: Any) -> None:
        self._expanded += nodes
        if self._expanded > MAX_YAML_EXPANDED_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"the document expands to more than {MAX_YAML_EXPANDED_NODES} "
                "values once its aliases are expanded (an alias bomb?); write the settings "
                "out or use fewer aliases", mark)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        is_alias = isinstance(event, yaml.AliasEvent)
        if is_alias:
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_YAML_ALIASES} aliases", event.start_mark)
            size = self._anchor_sizes.get(str(event.anchor))
            if size is None and event.anchor in self.anchors:
                raise yaml.composer.ComposerError(
                    None, None, f"alias *{event.anchor} refers to a node that contains it",
                    event.start_mark)
            node = super().compose_node(parent, index)
            self._grow(size or 0, event.start_mark)
            return node
        self._depth += 1
        if self._depth > MAX_NESTING_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"settings nested more than {MAX_NESTING_DEPTH} levels deep",
                event.start_mark)
        before = self._expanded
        self._grow(1, event.start_mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if event.anchor is not None:
            self._anchor_sizes[str(event.anchor)] = self._expanded - before
        return node

    def construct_bounded_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(c.isdigit() for c in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer has {digits} digits; at most {MAX_INT_DIGITS} are "
                "accepted", node.start_mark)
        return int(super().construct_yaml_int(node))  # type: ignore[no-untyped-call]


_BoundedLoader.add_constructor(
    "tag:yaml.org,2002:int", _BoundedLoader.construct_bounded_int
)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(f"duplicate key '{key}'")
        result[key] = value
    return result


def _read_bytes(path: Path, label: str) -> bytes:
    """The file's bytes: a regular file of at most ``MAX_CONFIG_BYTES`` (a FIFO, a device or
    a symlink to one is refused before anything is read)."""
    try:
        return read_regular_file(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        if path.is_symlink():
            raise ConfigurationError(
                f"{label}: a symlink to {os.readlink(path)!r}, which does not exist"
            ) from None
        raise ConfigurationError(f"config file not found: {label}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigurationError(
                f"{label}: cannot read the file (a symlink loop); point it at a config file"
            ) from None
        if exc.errno == errno.EFBIG:
            raise ConfigurationError(
                f"{label}: larger than the {describe_size(MAX_CONFIG_BYTES)} a config may "
                "have; a config is a few kilobytes of settings"
            ) from None
        raise ConfigurationError(f"{label}: cannot read the file ({exc.strerror})") from None


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
        if json_too_deep(text, MAX_NESTING_DEPTH):
            raise ConfigurationError(
                f"{label}: settings nested more than {MAX_NESTING_DEPTH} levels deep; a "
                "config is a few levels of key: value"
            )
        try:
            return json.loads(text, object_pairs_hook=_unique_pairs,
                              parse_int=bounded_int(MAX_INT_DIGITS))
        except (_DuplicateKeyError, IntegerTooLongError) as exc:
            raise ConfigurationError(f"{label}: invalid JSON: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{label}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass
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
    if path.is_dir():
        raise ConfigurationError(f"{label} is a directory; give the path of a .yaml or .json file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        if not path.exists() and not path.is_symlink():
            raise ConfigurationError(f"config file not found: {label}")
        raise ConfigurationError(
            f"{label}: unsupported config file type '{path.suffix}'; use .yaml, .yml or .json"
        )
    raw = _read_bytes(path, label)
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
        if not parent.exists() and not parent.is_symlink():
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


def _real(path: Path) -> Path:
    # os.path.realpath never raises on a symlink loop (Path.resolve does); reading reports it.
    return Path(os.path.realpath(path))


def _load_tree(
    path: Path, chain: tuple[Path, ...] = (), reads: list[int] | None = None
) -> tuple[dict[str, Any], Origins]:
    """Settings of ``path`` merged over its parents, and the file that set each key.

    ``reads`` counts the files read so far for this config (repeats included): a chain
    longer than ``MAX_EXTENDS_DEPTH`` files or more than ``MAX_EXTENDS_FILES`` reads is
    refused (``_extends: [a.yaml, a.yaml]`` in each of 30 files would read 2**30 files).
    """
    reads = [0] if reads is None else reads
    identity = _real(path)
    resolved_chain = [_real(p) for p in chain]
    if identity in resolved_chain:
        cycle = [*chain[resolved_chain.index(identity) :], path]
        raise ConfigurationError(
            f"circular {EXTENDS_KEY}: {' -> '.join(str(p) for p in cycle)}; remove one of these"
        )
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise ConfigurationError(
            f"{chain[-1]}: {EXTENDS_KEY} chain longer than {MAX_EXTENDS_DEPTH} files (from "
            f"{chain[0]}); merge some of the parents"
        )
    reads[0] += 1
    if reads[0] > MAX_EXTENDS_FILES:
        raise ConfigurationError(
            f"{chain[0] if chain else path}: its {EXTENDS_KEY} parents make more than "
            f"{MAX_EXTENDS_FILES} config files to read (a file listed several times counts "
            "each time); name each parent once"
        )
    data = read_config_file(path)
    merged: dict[str, Any] = {}
    origins: Origins = {}
    if EXTENDS_KEY in data:
        for parent in _parent_paths(data.pop(EXTENDS_KEY), path):
            parent_data, parent_origins = _load_tree(parent, (*chain, path), reads)
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
    # Values as typed (``model={"name": 5}``) are decoded once, here, so that every key an
    # override sets is blamed on the override, not on the file that also set it.
    decoded = {key: parse_override_value(value, key) if isinstance(value, str) else value
               for key, value in (overrides or {}).items()}
    data = layer_sources(file_data, decoded)
    for key, value in decoded.items():
        keys = tuple(part.strip() for part in key.split("."))
        origins[keys] = OVERRIDES_SOURCE
        if isinstance(value, Mapping):
            origins.update(_leaf_origins(value, OVERRIDES_SOURCE, keys))
    return validate_config(data, source=str(path), origins=origins)
