"""How two layers of settings combine: the upper mapping over the lower, key by key."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``top`` over ``base``; mappings merge recursively, anything else is replaced."""
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in top.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
