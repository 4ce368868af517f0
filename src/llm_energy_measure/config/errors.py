"""Turn config validation failures into one readable line naming the file, the key and the fix."""

from __future__ import annotations

import difflib
import functools
import re
import types
from collections.abc import Callable, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from llm_energy_measure.config.models import ExperimentConfig

Loc = tuple[str | int, ...]

_MAX_SHOWN_CHARS = 60
_DOTTED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "model_type": "a mapping of settings (key: value)",
    "model_attributes_type": "a mapping of settings (key: value)",
    "dict_type": "a mapping (key: value)",
    "list_type": "a list",
    "tuple_type": "a list",
    "path_type": "a file path",
}
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def dotted(loc: Sequence[str | int]) -> str:
    """``('launch', 'gpus', 1)`` -> ``launch.gpus[1]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":
            text += f".{part}" if text else str(part)
    return text


def describe(value: object) -> str:
    """A short, single-line rendering of a user value for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (int, float)):
        return repr(value)
    text = repr(str(value)) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= _MAX_SHOWN_CHARS else text[: _MAX_SHOWN_CHARS - 4] + "...'"


def _plain(annotation: Any) -> Any:
    """The annotation without ``| None``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def section_model(
    path: Sequence[str | int], root: type[BaseModel] = ExperimentConfig
) -> type[BaseModel] | None:
    """The model at a dotted path under ``root`` (``()`` -> root), or None if not a section."""
    model: type[BaseModel] = root
    for part in path:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = _plain(field.annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def is_open_mapping(path: Sequence[str]) -> bool:
    """True when the field at ``path`` is a free-form mapping (e.g. ``sharding.max_memory``)."""
    parent = section_model(path[:-1])
    field = parent.model_fields.get(path[-1]) if parent else None
    return field is not None and get_origin(_plain(field.annotation)) is dict


@functools.cache
def _all_field_paths(root: type[BaseModel]) -> dict[str, list[str]]:
    """Field name -> dotted paths where it exists, across every section."""
    found: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name in model.model_fields:
            found.setdefault(name, []).append(".".join((*prefix, name)))
            sub = section_model((*prefix, name), root)
            if sub is not None:
                walk(sub, (*prefix, name))

    walk(root, ())
    return found


def unknown_key_hint(
    section: Sequence[str | int], key: str, root: type[BaseModel] = ExperimentConfig
) -> str:
    """`` (did you mean 'x'?)`` from the same section, else the section it belongs to,
    else the list of allowed keys."""
    model = section_model(section, root)
    if model is None:
        return ""
    names = list(model.model_fields)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    if close:
        return f" (did you mean '{close[0]}'?)"
    here = dotted(section)
    elsewhere = [p for p in _all_field_paths(root).get(key, []) if p.rpartition(".")[0] != here]
    if elsewhere:
        return f" (did you mean '{elsewhere[0]}'?)"
    return f" (allowed: {', '.join(names)})"


def _literal_values(ctx: dict[str, Any]) -> str:
    return ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def describe_error(error: Any, root: type[BaseModel] = ExperimentConfig) -> str:
    """One pydantic error (a dict from ``ValidationError.errors()``) as ``key: problem``;
    unknown keys are matched against the models under ``root``."""
    kind, loc, value = error["type"], tuple(error["loc"]), error.get("input")
    ctx: dict[str, Any] = error.get("ctx") or {}
    key = dotted(loc)
    if kind in ("extra_forbidden", "invalid_key"):  # our only free-form keys are strings
        name = ".".join(str(part) for part in loc)
        return f"unknown key '{name}'" + unknown_key_hint(loc[:-1], str(loc[-1]), root)
    if kind in ("value_error", "assertion_error"):
        problem = str(ctx.get("error", error["msg"]))
    elif kind in _EXPECTED:
        problem = f"expected {_EXPECTED[kind]}, got {describe(value)}"
    elif kind == "literal_error":
        problem = f"{describe(value)} is not one of {_literal_values(ctx)}"
    elif kind in _BOUNDS:
        name, sign = _BOUNDS[kind]
        problem = f"must be {sign} {_number(ctx.get(name))}, got {describe(value)}"
    elif kind == "string_too_short" and ctx.get("min_length") == 1:
        problem = "must not be empty"
    elif kind in ("string_too_short", "string_too_long"):
        bound = "at least" if kind == "string_too_short" else "at most"
        limit = ctx.get("min_length", ctx.get("max_length"))
        problem = f"must have {bound} {limit} characters, got {describe(value)}"
    else:
        problem = str(error["msg"])
    if kind in ("value_error", "assertion_error") and key and key.split(".")[0] in problem:
        return problem  # model-level checks already name their keys
    return f"{key}: {problem}" if key else problem


def format_validation_error(
    exc: ValidationError,
    source_for: Callable[[Loc], str],
    root: type[BaseModel] = ExperimentConfig,
) -> str:
    """``<source>: <key>: <problem> (and N more)`` on one line; unknown keys are named first."""
    errors = exc.errors(include_url=False)
    # A misspelt key often explains the other errors (its value fell back to a default).
    first = min(errors, key=lambda error: error["type"] not in ("extra_forbidden", "invalid_key"))
    problem = describe_error(first, root)
    loc: Loc = tuple(first["loc"])
    head = problem.split(":", 1)[0]
    if not loc and _DOTTED_KEY.fullmatch(head):
        loc = tuple(head.split("."))  # a model-level check naming its key: blame its source
    line = f"{source_for(loc)}: {problem}"
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more)"
    return re.sub(r"\s*[\r\n]+\s*", " ", line)
