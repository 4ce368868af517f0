"""Failure classification shared by the loader, the generate engine and the rank worker."""

from __future__ import annotations

import pytest

from llm_energy_measure.exceptions import InferenceError, describe_failure, is_out_of_memory
from llm_energy_measure.orchestration.launch.faults import InjectedOutOfMemoryError


class OutOfMemoryError(RuntimeError):
    """Named like ``torch.cuda.OutOfMemoryError``, whose text need not say "out of memory"."""


def _wrapped(
    inner: BaseException, outer: BaseException, *, implicit: bool = False
) -> BaseException:
    """``outer`` raised while handling ``inner`` (``raise ... from`` unless ``implicit``)."""
    try:
        try:
            raise inner
        except BaseException:
            if implicit:
                raise outer  # noqa: B904 - the implicit context is what is tested
            raise outer from inner
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (MemoryError(), True),                                    # host allocation failure
        (OutOfMemoryError("Tried to allocate 2.00 GiB"), True),   # by type name
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), True),  # by text
        (RuntimeError("CUDA error: OUT OF MEMORY"), True),        # text, any case
        (ValueError("bad shapes"), False),
        (RuntimeError("memory access fault"), False),
    ],
)
def test_is_out_of_memory_on_single_errors(exc: BaseException, expected: bool) -> None:
    assert is_out_of_memory(exc) is expected


def test_is_out_of_memory_walks_the_cause_and_the_context() -> None:
    explicit = _wrapped(MemoryError("boom"), InferenceError("generation failed"))
    implicit = _wrapped(OutOfMemoryError("x"), KeyError("k"), implicit=True)
    assert explicit.__cause__ is not None and implicit.__context__ is not None
    assert is_out_of_memory(explicit) and is_out_of_memory(implicit)
    assert not is_out_of_memory(_wrapped(ValueError("a"), InferenceError("b")))


def test_is_out_of_memory_stops_after_ten_links_and_on_a_loop() -> None:
    exc: BaseException = MemoryError()
    for i in range(10):                  # MemoryError is the 11th link: not looked at
        exc = _wrapped(exc, ValueError(str(i)))
    assert not is_out_of_memory(exc)
    assert is_out_of_memory(exc.__cause__ or ValueError())  # 10 links from here: seen
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    assert not is_out_of_memory(a)


def test_describe_failure_names_type_first_line_and_out_of_memory() -> None:
    wrapped = _wrapped(
        InjectedOutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        InferenceError("generation failed"),
    )
    assert describe_failure(wrapped) == "out of memory: InferenceError: generation failed"
    assert describe_failure(ValueError("bad\nsecond line")) == "ValueError: bad"
    assert describe_failure(MemoryError()) == "out of memory: MemoryError: "
    assert describe_failure(KeyError("k")) == "KeyError: 'k'"
