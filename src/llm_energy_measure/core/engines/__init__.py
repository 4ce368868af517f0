"""Inference engines: one module per engine, chosen by the ``engine`` config key.

Engines are imported only when created, so that choosing one does not import the others'
libraries. To add an engine: write ``core/engines/<name>.py`` with a subclass of
``base.InferenceEngine``, register it in ``ENGINES`` and add its name to
``config.models.EngineName``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llm_energy_measure.exceptions import ConfigurationError

if TYPE_CHECKING:
    from llm_energy_measure.core.engines.base import InferenceEngine

#: Engine name -> "module:class".
ENGINES: dict[str, str] = {
    "transformers": "llm_energy_measure.core.engines.transformers:TransformersEngine",
    "vllm": "llm_energy_measure.core.engines.vllm:VllmEngine",
    "openai": "llm_energy_measure.core.engines.openai:OpenAIEngine",
    "llama_cpp": "llm_energy_measure.core.engines.llama_cpp:LlamaCppEngine",
}


def create_engine(name: str, **options: Any) -> InferenceEngine:
    """A new engine of the given name (``options`` go to its constructor: e.g. where engine
    ``openai`` writes its request records); ConfigurationError naming the known ones
    otherwise."""
    target = ENGINES.get(name)
    if target is None:
        raise ConfigurationError(
            f"engine {name!r} is not known; choose one of: {', '.join(sorted(ENGINES))}"
        )
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    engine: InferenceEngine = cls(**options)
    return engine
