"""llm-energy-measure: energy, throughput, latency, FLOPs and memory of LLM inference."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llm-energy-measure")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
