"""The measuring: model loading, prompts and batching, inference, FLOPs, devices, energy.

``run_inference`` and ``load_model_tokenizer`` are resolved lazily, so importing this package
does not import torch or transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_energy_measure.core.engines.transformers import run_inference
    from llm_energy_measure.core.model_loader import load_model_tokenizer

__all__ = ["load_model_tokenizer", "run_inference"]

_LAZY = {
    "run_inference": "llm_energy_measure.core.engines.transformers",
    "load_model_tokenizer": "llm_energy_measure.core.model_loader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
