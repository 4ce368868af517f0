"""The bounded readers and parsers every input goes through (bounded.py)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from llm_energy_measure.bounded import (
    FileRefusedError,
    IntegerTooLongError,
    bounded_int,
    describe_size,
    json_too_deep,
    read_regular_file,
)


def test_a_file_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(
        tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_regular_file(path, 10) == b"x" * 10
    with pytest.raises(FileRefusedError) as caught:
        read_regular_file(path, 9)
    assert (caught.value.errno, caught.value.strerror, caught.value.filename) == (
        errno.EFBIG, "larger than the limit of 9 bytes", str(path))


def test_a_directory_and_a_missing_file_are_oserrors_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileRefusedError) as caught:
        read_regular_file(tmp_path, 10)
    assert (caught.value.errno, caught.value.strerror) == (
        errno.EISDIR, "a directory, not a regular file")
    with pytest.raises(FileNotFoundError) as missing:
        read_regular_file(tmp_path / "nope", 10)
    assert missing.value.filename == str(tmp_path / "nope")


def test_json_depth_is_counted_outside_strings() -> None:
    assert json_too_deep("[[[]]]", 2) is True
    assert json_too_deep("[[[]]]", 3) is False
    assert json_too_deep('["[[[[[[", {"a": "}}}{{{"}]', 2) is False  # brackets in strings
    assert json_too_deep('["\\"[[[[["]', 1) is False  # an escaped quote stays in the string


def test_bounded_int_refuses_long_integers_only() -> None:
    parse = bounded_int(5)
    assert json.loads("[12345, -12345]", parse_int=parse) == [12345, -12345]
    with pytest.raises(IntegerTooLongError, match="an integer has 6 digits; at most 5"):
        json.loads("123456", parse_int=parse)


def test_sizes_are_described_in_binary_units() -> None:
    assert [describe_size(n) for n in (512, 1024**2, 2 * 1024**3, 1536)] == [
        "512 bytes", "1 MiB", "2 GiB", "1.5 KiB"]
