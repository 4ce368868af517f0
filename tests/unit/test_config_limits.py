"""Bounded config input: size, aliases, nesting, integer length, inheritance, file kinds.

Every refusal is a ConfigurationError (exit 2) naming the file, raised before the input can
exhaust memory, time or the interpreter's stack.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_energy_measure.cli import app
from llm_energy_measure.config import load_config, read_config_file
from llm_energy_measure.constants import (
    MAX_CONFIG_BYTES,
    MAX_EXTENDS_DEPTH,
    MAX_EXTENDS_FILES,
    MAX_NESTING_DEPTH,
    MAX_YAML_ALIASES,
    MAX_YAML_EXPANDED_NODES,
)
from llm_energy_measure.exceptions import ConfigurationError

runner = CliRunner()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _bomb(levels: int, width: int = 9) -> str:
    """A YAML alias bomb: ``width ** levels`` strings from ``levels`` short lines."""
    names = "abcdefghij"[:levels]
    lines = [f"a: &a [{', '.join(['x'] * width)}]"]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_while_it_is_read(tmp_path: Path) -> None:
    text = _bomb(6)  # 9**6 = 531,441 strings from 6 lines
    assert len(text) < 300 and MAX_YAML_EXPANDED_NODES < 9**6
    path = _write(tmp_path / "bomb.yaml", text)
    with pytest.raises(ConfigurationError, match=r"bomb.yaml: invalid YAML at line \d+.*alias"):
        read_config_file(path)


def test_ordinary_anchors_and_merge_keys_still_load(tmp_path: Path) -> None:
    path = _write(tmp_path / "ok.yaml", "base: &b {batch_size: 3, strategy: sorted}\n"
                  "batching:\n  <<: *b\n  batch_size: 5\n")
    assert read_config_file(path)["batching"] == {"batch_size": 5, "strategy": "sorted"}


def test_an_alias_to_its_own_container_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "loop.yaml", "a: &a [1, *a]\n")
    with pytest.raises(ConfigurationError, match="refers to a node that contains it"):
        read_config_file(path)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deep_nesting_is_refused_before_python_recursion(tmp_path: Path, suffix: str) -> None:
    depth = 5000  # far beyond Python's recursion limit of 1000
    body = "[" * depth + "]" * depth
    text = f'{{"cycles": {body}}}' if suffix == ".json" else f"cycles: {body}\n"
    path = _write(tmp_path / f"deep{suffix}", text)
    with pytest.raises(ConfigurationError,
                       match=f"deep{suffix}: .*nested more than {MAX_NESTING_DEPTH} levels"):
        read_config_file(path)


def test_nesting_up_to_the_limit_is_accepted(tmp_path: Path) -> None:
    inner = "[" * (MAX_NESTING_DEPTH - 1) + "]" * (MAX_NESTING_DEPTH - 1)
    path = _write(tmp_path / "ok.json", f'{{"x": {inner}}}')  # the object is level 1
    data = read_config_file(path)
    depth, node = 0, data["x"]
    while node:
        depth, node = depth + 1, node[0]
    assert depth == MAX_NESTING_DEPTH - 2


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_5000_digit_integer_is_refused_with_the_file(tmp_path: Path, suffix: str) -> None:
    digits = "7" * 5000
    text = f'{{"seed": {digits}}}' if suffix == ".json" else f"seed: {digits}\n"
    path = _write(tmp_path / f"big{suffix}", text)
    with pytest.raises(ConfigurationError,
                       match=f"big{suffix}: .*integer has 5000 digits; at most 100"):
        read_config_file(path)


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "huge.yaml", "# " + "x" * MAX_CONFIG_BYTES + "\ncycles: 1\n")
    with pytest.raises(ConfigurationError, match=r"huge\.yaml: larger than the 1 MiB"):
        read_config_file(path)


def test_a_fifo_config_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigurationError, match="fifo.yaml: cannot read the file "
                       r"\(a FIFO \(named pipe\), not a regular file\)"):
        read_config_file(fifo)


def test_a_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(ConfigurationError, match="a character device, not a regular file"):
        read_config_file(link)


def test_an_extends_target_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "parent.yaml")
    child = _write(tmp_path / "child.yaml", "_extends: parent.yaml\n")
    with pytest.raises(ConfigurationError, match=r"parent\.yaml: cannot read the file"):
        load_config(child)


def test_a_symlink_loop_is_one_line_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    result = runner.invoke(app, ["config", "validate", str(tmp_path / "a.yaml")])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'a.yaml'}: cannot read the file (a symlink loop); point it at a "
        "config file")


def test_an_extends_fan_out_of_two_to_the_thirtieth_is_refused(tmp_path: Path) -> None:
    # File i lists file i+1 twice: reading it naively reads 2**30 files.
    for i in range(30):
        _write(tmp_path / f"c{i}.yaml", f"_extends: [c{i + 1}.yaml, c{i + 1}.yaml]\n")
    _write(tmp_path / "c30.yaml", "cycles: 2\n")
    with pytest.raises(ConfigurationError,
                       match=f"c0.yaml: .*more than {MAX_EXTENDS_FILES} config files"):
        load_config(tmp_path / "c0.yaml")


def test_an_extends_chain_2000_deep_exits_2_naming_the_limit(tmp_path: Path) -> None:
    for i in range(2000):
        _write(tmp_path / f"d{i}.yaml", f"_extends: d{i + 1}.yaml\n")
    _write(tmp_path / "d2000.yaml", "cycles: 2\n")
    result = runner.invoke(app, ["config", "validate", str(tmp_path / "d0.yaml")])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {tmp_path / f'd{MAX_EXTENDS_DEPTH - 1}.yaml'}: _extends chain longer than "
        f"{MAX_EXTENDS_DEPTH} files (from {tmp_path / 'd0.yaml'}); merge some of the parents")


def test_an_extends_chain_within_the_limit_loads(tmp_path: Path) -> None:
    for i in range(MAX_EXTENDS_DEPTH - 1):
        _write(tmp_path / f"d{i}.yaml", f"_extends: d{i + 1}.yaml\n")
    _write(tmp_path / f"d{MAX_EXTENDS_DEPTH - 1}.yaml", "cycles: 7\n")
    assert load_config(tmp_path / "d0.yaml").cycles == 7


def test_set_with_deep_json_exits_2_naming_the_override(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "cycles: 2\n")
    value = "[" * 5000 + "]" * 5000
    result = runner.invoke(app, ["run", str(path), "--set", f"launch.gpus={value}",
                                 "--dry-run"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: override 'launch.gpus': the value nests more than {MAX_NESTING_DEPTH} "
        "levels deep")


def test_set_with_a_mapping_is_blamed_on_the_override_not_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "model:\n  name: builtin:tiny-llama\n")
    result = runner.invoke(app, ["run", str(path), "--set", 'model={"name": 5}', "--dry-run"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: overrides: model.name: expected a string, got 5"


def test_set_with_a_5000_digit_json_integer_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "cycles: 2\n")
    value = json.dumps({"0": int("9" * 50)}).replace("9" * 50, "9" * 5000)
    result = runner.invoke(app, ["run", str(path), "--set", f"sharding.max_memory={value}",
                                 "--dry-run"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: override 'sharding.max_memory': an integer has 5000 digits; at most 100 are "
        "accepted")


def test_more_aliases_than_the_limit_are_refused(tmp_path: Path) -> None:
    # 1,001 aliases of one scalar expand to only 1,001 values: the alias count alone refuses.
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_YAML_ALIASES + 1)) + "]\n"
    path = _write(tmp_path / "many.yaml", text)
    with pytest.raises(ConfigurationError, match=f"more than {MAX_YAML_ALIASES} aliases"):
        read_config_file(path)
    ok = _write(tmp_path / "ok.yaml",
                "a: &a 1\nb: [" + ", ".join(["*a"] * MAX_YAML_ALIASES) + "]\n")
    assert len(read_config_file(ok)["b"]) == MAX_YAML_ALIASES
