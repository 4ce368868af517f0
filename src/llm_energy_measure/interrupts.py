"""Stopping a run by signal, wherever the signal lands.

``install_stop_handlers`` makes SIGINT and SIGTERM raise ``Stopped`` (a KeyboardInterrupt,
so every cleanup path that handles Ctrl+C handles both) and remembers the signal. Python
swallows an exception raised while it runs a finalizer or a weakref callback ("Exception
ignored in ..."), so a signal landing there would be lost; ``raise_if_stopped`` re-raises a
remembered stop at the next checkpoint (the orchestrator calls it between stages), so a
stop is never ignored, only delayed to the next checkpoint.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_stop_signal: int | None = None


class Stopped(KeyboardInterrupt):
    """The run was asked to stop by ``signum``; the process exits with 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _handle(signum: int, frame: FrameType | None) -> None:
    global _stop_signal
    _stop_signal = signum
    raise Stopped(signum)


def install_stop_handlers() -> None:
    """SIGINT and SIGTERM raise ``Stopped`` (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)


def raise_if_stopped() -> None:
    """Raise ``Stopped`` when a stop signal arrived and was swallowed somewhere."""
    if _stop_signal is not None:
        raise Stopped(_stop_signal)


def reset() -> None:
    """Forget a remembered stop (tests, or a long-lived process after handling it)."""
    global _stop_signal
    _stop_signal = None


def stop_requested() -> bool:
    """Whether a stop signal arrived (and was deferred or swallowed)."""
    return _stop_signal is not None


def _remember(signum: int, frame: FrameType | None) -> None:
    """A first stop is remembered for the caller to act on; a second one stops at once."""
    global _stop_signal
    if _stop_signal is not None:
        raise Stopped(signum)
    _stop_signal = signum


@contextmanager
def deferred_stops() -> Iterator[None]:
    """Within the block, a first SIGINT/SIGTERM only sets ``stop_requested()`` (code that
    polls it stops cleanly, e.g. a load generator cancelling its requests and keeping their
    records); a second one raises ``Stopped`` at once. Main thread only; elsewhere nothing
    changes. The previous handlers are restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _remember)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
