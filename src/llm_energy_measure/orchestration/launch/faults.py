"""Fault injection for testing the multi-process launcher (a testing aid, not a feature).

Set ``LLM_ENERGY_MEASURE_FAULT`` in the environment of a launch, for example::

    LLM_ENERGY_MEASURE_FAULT="rank=1:after=window_open:kind=sigkill"

- ``rank``: the (logical) rank that misbehaves;
- ``after``: the synchronisation point after which it does (``start``, ``baseline_start``,
  ``baseline_end``, ``window_open``, ``window_close``);
- ``kind``: ``sigkill`` (the process kills itself with SIGKILL), ``hang`` (sleeps forever),
  ``oom`` (raises an out-of-memory error like CUDA's), ``error`` (raises RuntimeError).

Unset (the normal case) nothing happens.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Literal

from llm_energy_measure.exceptions import ConfigurationError

FAULT_ENV = "LLM_ENERGY_MEASURE_FAULT"
FaultKind = Literal["sigkill", "hang", "oom", "error"]
_KINDS = ("sigkill", "hang", "oom", "error")
_POINTS = ("start", "baseline_start", "baseline_end", "window_open", "window_close")


class InjectedOutOfMemoryError(MemoryError):
    """Raised by ``kind=oom``; its name and text match what torch raises on CUDA OOM."""


@dataclass(frozen=True)
class Fault:
    """One injected fault: ``kind`` at rank ``rank`` after point ``after``."""

    rank: int
    after: str
    kind: FaultKind

    def maybe_fire(self, rank: int, point: str) -> None:
        """Misbehave if this is the chosen rank and point."""
        if rank != self.rank or point != self.after:
            return
        if self.kind == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.kind == "hang":
            while True:
                time.sleep(3600)
        elif self.kind == "oom":
            raise InjectedOutOfMemoryError(
                "CUDA out of memory (injected by " + FAULT_ENV + ")"
            )
        raise RuntimeError(f"injected failure at {point} ({FAULT_ENV})")


def parse_fault(text: str) -> Fault:
    """Parse ``rank=<r>:after=<point>:kind=<kind>``; ConfigurationError when malformed."""
    fields: dict[str, str] = {}
    for part in text.split(":"):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigurationError(f"{FAULT_ENV}={text!r}: expected key=value, got {part!r}")
        fields[key.strip()] = value.strip()
    try:
        rank = int(fields["rank"])
        after, kind = fields["after"], fields["kind"]
    except (KeyError, ValueError):
        raise ConfigurationError(
            f"{FAULT_ENV}={text!r}: give rank=<int>:after=<point>:kind=<kind>"
        ) from None
    if after not in _POINTS or kind not in _KINDS:
        raise ConfigurationError(
            f"{FAULT_ENV}={text!r}: after must be one of {', '.join(_POINTS)} and kind one of "
            f"{', '.join(_KINDS)}"
        )
    return Fault(rank, after, kind)  # type: ignore[arg-type]


def fault_from_env(env: dict[str, str] | None = None) -> Fault | None:
    """The fault ``LLM_ENERGY_MEASURE_FAULT`` asks for, or None."""
    text = (os.environ if env is None else env).get(FAULT_ENV, "").strip()
    return parse_fault(text) if text else None
