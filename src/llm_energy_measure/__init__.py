"""llm-energy-measure: energy, throughput, latency, FLOPs and memory of LLM inference."""

from __future__ import annotations

from typing import Any

__all__ = ["__version__", "run_experiment"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package stays cheap (the CLI's --help must start fast).
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("llm-energy-measure")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0.0.0+unknown"
    if name == "run_experiment":
        from llm_energy_measure.orchestration import run_experiment

        return run_experiment
    raise AttributeError(f"module 'llm_energy_measure' has no attribute {name!r}")
