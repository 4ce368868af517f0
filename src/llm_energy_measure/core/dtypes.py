"""Dtype names: one key per dtype, whatever the spelling, and its size in bytes.

Keys: ``float32``, ``tf32``, ``float16``, ``bfloat16``, ``float8``, ``int8``. The device-peak
table and the memory figures (KV cache, planned weights) use these keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Dtype spellings ("torch.bfloat16" without its prefix, "bf16", "half", ...) -> key.
_DTYPE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "float32": "float32",
        "fp32": "float32",
        "float": "float32",
        "tf32": "tf32",
        "tensorfloat32": "tf32",
        "float16": "float16",
        "fp16": "float16",
        "half": "float16",
        "bfloat16": "bfloat16",
        "bf16": "bfloat16",
        "float8": "float8",
        "fp8": "float8",
        "float8_e4m3fn": "float8",
        "float8_e5m2": "float8",
        "int8": "int8",
    }
)

#: Bytes per element, by dtype key (tf32 values are stored as float32).
DTYPE_BYTES: Mapping[str, int] = MappingProxyType(
    {"float32": 4, "tf32": 4, "float16": 2, "bfloat16": 2, "float8": 1, "int8": 1}
)


def normalize_dtype(dtype: str) -> str:
    """Table key for a dtype spelling ("torch.bfloat16", "bf16", ...); unknown ones lower-cased."""
    key = dtype.strip().lower().removeprefix("torch.")
    return _DTYPE_ALIASES.get(key, key)


def dtype_bytes(dtype: str) -> int | None:
    """Bytes per element of ``dtype`` (any spelling ``normalize_dtype`` knows); None if unknown."""
    return DTYPE_BYTES.get(normalize_dtype(dtype))
