"""Shared pytest setup and fixtures.

- The repository root is put on ``sys.path`` so that tests import shared helpers as
  ``tests.factories`` whichever way pytest is started (``pytest`` or ``python -m pytest``).
- Every test runs offline (``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``) with the
  package cache (``LLM_ENERGY_MEASURE_CACHE_DIR``) in a per-session temporary folder, so no
  test touches the network or the home directory.
- ``tiny_model_dir`` (session): a folder holding the embedded default model, a tiny random
  ``LlamaForCausalLM`` (4 layers, hidden 256, 5 M parameters) and its tokenizer, built once per
  session. ``builtin:tiny-llama`` resolves to this same folder.
- ``@pytest.mark.gpu`` tests are skipped at collection when torch is missing or CUDA is not
  available.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

# Set before any test imports huggingface_hub/transformers, which read these at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Per-session cache directory (``LLM_ENERGY_MEASURE_CACHE_DIR`` during every test)."""
    return tmp_path_factory.mktemp("llm-energy-measure-cache")


@pytest.fixture(autouse=True)
def _offline_and_cache(
    monkeypatch: pytest.MonkeyPatch, session_cache_dir: Path
) -> Iterator[None]:
    """Every test: offline Hugging Face libraries and a temporary package cache."""
    from llm_energy_measure.constants import CACHE_DIR_ENV

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv(CACHE_DIR_ENV, str(session_cache_dir))
    yield


@pytest.fixture(scope="session")
def tiny_model_dir(session_cache_dir: Path) -> Path:
    """Folder with the embedded tiny random Llama and its tokenizer (built once a session).

    Load it with ``AutoModelForCausalLM.from_pretrained(tiny_model_dir)`` /
    ``AutoTokenizer.from_pretrained(tiny_model_dir)``, or through the loader with
    ``model.name: builtin:tiny-llama`` (same folder) or ``model.name: <tiny_model_dir>``.
    Treat it as read-only: copy it to ``tmp_path`` before changing files.
    """
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from llm_energy_measure.core.builtin_model import ensure_builtin_model

    return ensure_builtin_model("builtin:tiny-llama", cache_dir=session_cache_dir)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests at collection on machines without CUDA (or without torch)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items or _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA (torch.cuda unavailable)")
    for item in gpu_items:
        item.add_marker(skip)
