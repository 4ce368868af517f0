"""Typed exception tree. The CLI maps these to exit codes (see EXIT_CODES)."""

from __future__ import annotations


class LLMBenchError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class ConfigurationError(LLMBenchError):
    """A config, flag or user-supplied id/path is invalid. Exit code 2."""

    exit_code = 2


class InferenceError(LLMBenchError):
    """Generation failed (including out of memory during generate)."""


class ModelLoadError(LLMBenchError):
    """The model or its tokenizer could not be loaded."""


class EnergyTrackingError(LLMBenchError):
    """Energy measurement failed or was asked of hardware that is absent."""


class AggregationError(LLMBenchError):
    """Raw results cannot be combined (missing ranks, mismatched configs, ...)."""


class DistributedError(LLMBenchError):
    """A multi-process run failed (a rank crashed, hung or could not start)."""


class ResultsError(LLMBenchError):
    """A stored result is unreadable, of an unknown schema version, or missing."""


class RetryableError(LLMBenchError):
    """A transient failure that may succeed when retried (see resilience.retry)."""


class CircuitOpenError(LLMBenchError):
    """The circuit breaker is open: calls are refused until it cools down."""


class MissingExtraError(ConfigurationError):
    """An optional dependency is not installed; the message names the pip command."""

    def __init__(self, extra: str, package: str, feature: str) -> None:
        self.extra = extra
        self.package = package
        super().__init__(
            f"{feature} needs the '{package}' package: "
            f'pip install "llm-energy-measure[{extra}]"'
        )


#: How many links of an exception's cause/context chain ``is_out_of_memory`` looks at.
_CHAIN_LIMIT = 10


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` then its causes (``__cause__``, else ``__context__``), at most ``_CHAIN_LIMIT``."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < _CHAIN_LIMIT and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    return chain


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` or anything in its cause chain is an out-of-memory error: a
    ``MemoryError`` (host), an ``OutOfMemoryError`` by type name (torch's CUDA error, matched
    without importing torch) or an error whose text says "out of memory"."""
    return any(
        isinstance(e, MemoryError)
        or type(e).__name__ == "OutOfMemoryError"
        or "out of memory" in str(e).lower()
        for e in _chain(exc)
    )


def describe_failure(exc: BaseException) -> str:
    """One line naming a failure: ``"<Type>: <first line>"``, prefixed ``"out of memory: "``
    when ``is_out_of_memory(exc)``."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    described = f"{type(exc).__name__}: {first}"
    return f"out of memory: {described}" if is_out_of_memory(exc) else described


#: Exit codes used by the CLI.
EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def exit_code_for(exc: BaseException) -> int:
    """Exit code for an exception escaping a CLI command: 128 + the signal for a stop by
    signal (130 for Ctrl+C / SIGINT, 143 for SIGTERM)."""
    if isinstance(exc, KeyboardInterrupt):
        code = getattr(exc, "exit_code", EXIT_INTERRUPTED)
        return code if isinstance(code, int) else EXIT_INTERRUPTED
    if isinstance(exc, LLMBenchError):
        return exc.exit_code
    return EXIT_RUNTIME
