"""Malformed configs: each raises ConfigurationError with one line naming the file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_energy_measure.config import load_config, parse_overrides
from llm_energy_measure.exceptions import ConfigurationError

Files = dict[str, "str | bytes"]


def _write(root: Path, files: Files) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _error_of(root: Path, entry: str, overrides: dict[str, object] | None = None) -> str:
    with pytest.raises(ConfigurationError) as info:
        load_config(root / entry, overrides)
    message = str(info.value)
    assert "\n" not in message, message
    assert "Traceback" not in message
    return message


def _one(content: str | bytes, *expected: str, name: str = "bad.yaml") -> object:
    return pytest.param({name: content}, name, expected)


MALFORMED = {
    # wrong types
    "int-from-word": _one(
        "decoder:\n  max_new_tokens: abc\n",
        "bad.yaml: decoder.max_new_tokens: expected an integer, got 'abc'",
    ),
    "int-from-fraction": _one(
        "batching:\n  batch_size: 1.5\n", "batching.batch_size: expected an integer, got 1.5"
    ),
    "bool-from-word": _one(
        "model:\n  trust_remote_code: maybe\n",
        "model.trust_remote_code: expected true or false, got 'maybe'",
    ),
    "section-is-scalar": _one("decoder: 5\n", "decoder: expected a mapping", "got 5"),
    "section-is-null": _one("decoder:\n", "decoder: expected a mapping", "got null"),
    "list-from-string": _one("launch:\n  gpus: '0,1'\n", "launch.gpus: expected a list, got '0,1'"),
    "list-item-type": _one(
        "launch:\n  gpus: [0, x]\n", "launch.gpus[1]: expected an integer, got 'x'"
    ),
    "string-from-int": _one("model:\n  name: 123\n", "model.name: expected a string, got 123"),
    "float-from-word": _one(
        "energy:\n  sample_interval_ms: fast\n",
        "energy.sample_interval_ms: expected a number, got 'fast'",
    ),
    "nan-number": _one(
        "decoder:\n  temperature: .nan\n", "decoder.temperature: expected a finite number"
    ),
    # unknown and misspelt keys at several levels
    "misspelt-level-2": _one(
        "decoder:\n  max_new_token: 8\n",
        "bad.yaml: unknown key 'decoder.max_new_token' (did you mean 'max_new_tokens'?)",
    ),
    "misspelt-level-1": _one(
        "bacthing:\n  batch_size: 2\n", "unknown key 'bacthing' (did you mean 'batching'?)"
    ),
    "misspelt-level-3": _one(
        "energy:\n  baseline:\n    duraton_s: 2\n",
        "unknown key 'energy.baseline.duraton_s' (did you mean 'duration_s'?)",
    ),
    "key-in-wrong-section": _one(
        "max_new_tokens: 8\n",
        "unknown key 'max_new_tokens' (did you mean 'decoder.max_new_tokens'?)",
    ),
    "unknown-key-lists-allowed": _one(
        "model:\n  zzz: 1\n", "unknown key 'model.zzz' (allowed: name, revision, gguf_file"
    ),
    "non-string-key": _one("1: 2\n", "unknown key '1'"),
    "unknown-key-named-first": _one(
        "decoder:\n  temperature: -1\n  topp: 0.5\n",
        "unknown key 'decoder.topp' (did you mean 'top_p'?) (and 1 more)",
    ),
    # literal fields list their allowed values
    "precision-literal": _one(
        "model:\n  precision: fp8\n",
        "model.precision: 'fp8' is not one of float32, float16, bfloat16",
    ),
    "backend-literal": _one(
        "energy:\n  backend: nvidia\n",
        "energy.backend: 'nvidia' is not one of auto, nvml, rapl, codecarbon, zeus, prometheus, "
        "none",
    ),
    "preset-literal": _one(
        "decoder:\n  preset: fast\n",
        "decoder.preset: 'fast' is not one of deterministic, benchmark, standard, creative",
    ),
    # negative, zero and absurd numbers
    "batch-size-negative": _one(
        "batching:\n  batch_size: -1\n", "batching.batch_size: must be >= 1, got -1"
    ),
    "max-new-tokens-absurd": _one(
        f"decoder:\n  max_new_tokens: {10**12}\n",
        "decoder.max_new_tokens: must be <= 1048576, got 1000000000000",
    ),
    "temperature-zero": _one(
        "decoder:\n  temperature: 0\n", "decoder.temperature: must be > 0, got 0"
    ),
    "top-p-above-one": _one("decoder:\n  top_p: 1.5\n", "decoder.top_p: must be <= 1, got 1.5"),
    "cycles-zero": _one("cycles: 0\n", "cycles: must be >= 1, got 0"),
    "pue-below-one": _one("energy:\n  pue: 0.5\n", "energy.pue: must be >= 1, got 0.5"),
    "empty-model-name": _one("model:\n  name: ''\n", "model.name: must not be empty"),
    "iso-code-too-short": _one(
        "energy:\n  country_iso_code: FR\n",
        "energy.country_iso_code: must have at least 3 characters, got 'FR'",
    ),
    # cross-field rules of the models
    "min-above-max-tokens": _one(
        "decoder:\n  max_new_tokens: 16\n  min_new_tokens: 50\n",
        "bad.yaml: decoder.min_new_tokens (50) must be <= decoder.max_new_tokens (16)",
    ),
    "two-quant-modes": _one(
        "quantization:\n  load_in_4bit: true\n  load_in_8bit: true\n",
        "set only one of load_in_4bit and load_in_8bit",
    ),
    "file-source-without-path": _one(
        "prompts:\n  source: file\n", "prompts.path is required when prompts.source is 'file'"
    ),
    # file structure
    "top-level-list": _one("- a\n- b\n", "bad.yaml: the top level must be a mapping", "a list"),
    "top-level-scalar": _one("hello\n", "the top level must be a mapping", "got 'hello'"),
    "invalid-yaml": _one(
        "model:\n  name: x\n bad: : y\n", "bad.yaml: invalid YAML at line 3, column 2"
    ),
    "unclosed-bracket": _one("decoder: [1\n", "invalid YAML at line 2"),
    "tab-indent": _one("a:\tb\n\tc: 1\n", "invalid YAML at line 1", "'\\t'"),
    "duplicate-yaml-key": _one(
        "cycles: 2\ncycles: 3\n", "invalid YAML at line 2, column 1: duplicate key 'cycles'"
    ),
    "unhashable-yaml-key": _one("[a]: 1\n", "invalid YAML at line 1", "unhashable key"),
    "python-object-tag": _one(
        "cycles: !!python/object/apply:os.system ['echo hi']\n",
        "invalid YAML at line 1",
        "could not determine a constructor",
    ),
    "empty-file": _one("", "bad.yaml: the file is empty"),
    "whitespace-only": _one("  \n\t\n   \n", "the file is empty"),
    "comments-only": _one("# nothing here\n", "holds no settings"),
    "binary-junk": _one(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "bad.yaml: not a text file"),
    "undecodable-bytes": _one(b"model:\n  name: caf\xe9\n", "not UTF-8 text", "0xe9"),
    "control-character": _one("a: 1\nb: \x07\n", "control character U+0007 at line 2"),
    "json-syntax-error": _one(
        '{"cycles": 2,}', "bad.json: invalid JSON at line 1, column 14", name="bad.json"
    ),
    "json-duplicate-key": _one(
        '{"cycles": 2, "cycles": 3}', "duplicate key 'cycles'", name="bad.json"
    ),
    "json-top-level-list": _one("[1, 2]", "top level must be a mapping", name="bad.json"),
    "unsupported-suffix": _one(
        "cycles = 2\n", "unsupported config file type '.toml'", name="bad.toml"
    ),
    # _extends
    "extends-missing-parent": _one(
        "_extends: nope.yaml\n", "bad.yaml: _extends 'nope.yaml' not found", "nope.yaml)"
    ),
    "extends-int": _one(
        "_extends: 5\n", "bad.yaml: _extends must be a file path or a list of file paths, got 5"
    ),
    "extends-list-with-int": _one("_extends: [a.yaml, 3]\n", "_extends must be a file path"),
    "extends-mapping": _one("_extends: {a: 1}\n", "_extends must be a file path", "a mapping"),
    "extends-empty-string": _one("_extends: ''\n", "_extends must be a file path"),
    "extends-self": _one("_extends: bad.yaml\n", "circular _extends", "bad.yaml -> "),
    "extends-2-cycle": pytest.param(
        {"a.yaml": "_extends: b.yaml\n", "b.yaml": "_extends: a.yaml\n"},
        "a.yaml",
        ("circular _extends", "a.yaml -> ", "b.yaml -> ", "a.yaml; remove"),
    ),
    "extends-3-cycle": pytest.param(
        {
            "a.yaml": "_extends: b.yaml\ncycles: 2\n",
            "b.yaml": "_extends: sub/c.yaml\n",
            "sub/c.yaml": "_extends: ../a.yaml\n",
        },
        "a.yaml",
        ("circular _extends", "a.yaml -> ", "b.yaml -> ", "c.yaml -> ", "a.yaml; remove"),
    ),
    "extends-invalid-parent-names-parent": pytest.param(
        {"child.yaml": "_extends: parent.yaml\n", "parent.yaml": "decoder:\n  top_k: -3\n"},
        "child.yaml",
        ("parent.yaml: decoder.top_k: must be >= 0, got -3",),
    ),
    "extends-parent-is-directory": pytest.param(
        {"child.yaml": "_extends: parents\n", "parents/x.yaml": "cycles: 2\n"},
        "child.yaml",
        ("parents is a directory",),
    ),
    "extends-nested-key": _one("decoder:\n  _extends: x.yaml\n", "unknown key 'decoder._extends'"),
    # paths
    "directory-given": pytest.param(
        {"configs/x.yaml": "cycles: 2\n"}, "configs", ("configs is a directory",)
    ),
    "missing-file": pytest.param({}, "absent.yaml", ("config file not found:", "absent.yaml")),
}


@pytest.mark.parametrize(("files", "entry", "expected"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_config_raises_one_clear_line(
    tmp_path: Path, files: Files, entry: str, expected: tuple[str, ...]
) -> None:
    _write(tmp_path, files)
    message = _error_of(tmp_path, entry)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


BAD_OVERRIDES = {
    "unknown-key": (
        {"decoder.max_new_token": "8"},
        "override 'decoder.max_new_token': unknown key 'decoder.max_new_token' "
        "(did you mean 'max_new_tokens'?)",
    ),
    "unknown-section": ({"decodr.top_k": "1"}, "unknown key 'decodr' (did you mean 'decoder'?)"),
    "below-a-setting": (
        {"decoder.max_new_tokens.x": "1"},
        "'decoder.max_new_tokens' is a single setting, not a section",
    ),
    "empty-part": ({"decoder..top_k": "1"}, "is not a dotted key"),
    "bad-value": (
        {"decoder.max_new_tokens": "abc"},
        "overrides: decoder.max_new_tokens: expected an integer, got 'abc'",
    ),
    "out-of-range": ({"batching.batch_size": "0"}, "overrides: batching.batch_size: must be >= 1"),
    "bad-json-list": (
        {"launch.gpus": "[0, 1"},
        "override 'launch.gpus': '[0, 1' is not valid JSON",
    ),
    "unknown-key-in-free-mapping-value": (
        {"sharding.max_memory.0.x": "1GiB"},
        "'sharding.max_memory' is a single setting",
    ),
}

#: The config file the override tests start from.
OVERRIDDEN_FILE = "cycles: 2\n"


@pytest.mark.parametrize(
    ("overrides", "expected"), BAD_OVERRIDES.values(), ids=BAD_OVERRIDES.keys()
)
def test_bad_override_raises_one_clear_line(
    tmp_path: Path, overrides: dict[str, object], expected: str
) -> None:
    _write(tmp_path, {"c.yaml": OVERRIDDEN_FILE})
    assert expected in _error_of(tmp_path, "c.yaml", overrides)


def test_override_below_a_scalar_section_in_the_file(tmp_path: Path) -> None:
    _write(tmp_path, {"c.yaml": "sharding: 3\n"})
    message = _error_of(tmp_path, "c.yaml", {"sharding.strategy": "device_map"})
    assert (
        "override 'sharding.strategy': 'sharding' is not a mapping in the config (it is 3)"
        in message
    )


@pytest.mark.parametrize("item", ["decoder.max_new_tokens", "=8", "  =x"])
def test_parse_overrides_needs_key_equals_value(item: str) -> None:
    with pytest.raises(ConfigurationError, match="must look like key=value"):
        parse_overrides([item])


def test_error_is_a_configuration_error_with_usage_exit_code(tmp_path: Path) -> None:
    _write(tmp_path, {"c.yaml": "cycles: -1\n"})
    with pytest.raises(ConfigurationError) as info:
        load_config(tmp_path / "c.yaml")
    assert info.value.exit_code == 2
