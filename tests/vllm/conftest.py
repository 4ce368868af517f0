"""Tests of engine vllm against the real library, on CPU with ``builtin:tiny-llama``.

They need vLLM, which lives in its own environment (``bash scripts/setup_vllm.sh``; run them
with ``bash scripts/test_vllm.sh``). Where vLLM is not installed (the main environment) this
folder is not collected at all, so the main suite neither imports nor reports it.
"""

from __future__ import annotations

from llm_energy_measure.core.engines.vllm import vllm_installed

collect_ignore_glob = [] if vllm_installed() else ["test_*.py"]
