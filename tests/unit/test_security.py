"""Experiment ids, path containment and secret redaction."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from llm_energy_measure.constants import SECRET_ENV_VARS
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.security import (
    REDACTED,
    ensure_safe_path,
    is_safe_path,
    is_secret_key,
    make_experiment_id,
    redact_secrets,
    redact_text,
    sanitize_experiment_id,
)

FAKE_HF_TOKEN = "hf_FAKEfakeFAKEfakeFAKEfake1234"


@pytest.fixture(autouse=True)
def _no_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


# ----------------------------------------------------------------------------- experiment ids


@pytest.mark.parametrize("good", ["a", "exp-1", "Quick_start.v2", "A" * 128, "x.y", "9lives"])
def test_sanitize_accepts_safe_ids_unchanged(good: str) -> None:
    assert sanitize_experiment_id(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "A" * 129,
        ".hidden",
        "-flag",
        "a..b",
        "..",
        "../etc",
        "a/b",
        "a\\b",
        "with space",
        "tab\t",
        "new\nline",
        "caf\u00e9",
        "a\x00b",
        " lead",
    ],
)
def test_sanitize_rejects_unsafe_ids_naming_id_and_rule(bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        sanitize_experiment_id(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "[A-Za-z0-9._-]" in message
    assert "\n" not in message.replace(repr(bad), "")


def test_sanitize_rejects_non_string() -> None:
    with pytest.raises(ConfigurationError):
        sanitize_experiment_id(123)  # type: ignore[arg-type]


def test_make_experiment_id_format_and_utc_timestamp() -> None:
    cet = timezone(timedelta(hours=1))
    now = datetime(2026, 11, 27, 6, 15, 0, tzinfo=cet)  # 05:15 UTC
    exp_id = make_experiment_id("Quick Start!", now=now)
    assert re.fullmatch(r"quick-start-20261127T051500Z-[0-9a-f]{6}", exp_id), exp_id
    assert sanitize_experiment_id(exp_id) == exp_id


def test_make_experiment_id_naive_datetime_taken_as_utc() -> None:
    exp_id = make_experiment_id("q", now=datetime(2026, 1, 2, 3, 4, 5))
    assert "-20260102T030405Z-" in exp_id


def test_make_experiment_id_suffix_differs_between_calls() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = {make_experiment_id("same", now=now) for _ in range(20)}
    assert len(ids) > 1


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("../../etc/passwd", "etc-passwd"),
        ("...", "experiment"),
        ("", "experiment"),
        ("--x--", "x"),
        ("a..b", "a.b"),
        ("Llama 3.1 8B (fp16)", "llama-3.1-8b-fp16"),
    ],
)
def test_make_experiment_id_slugifies_hostile_names(name: str, slug: str) -> None:
    exp_id = make_experiment_id(name, now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert exp_id.startswith(slug + "-20260101T000000Z-")
    sanitize_experiment_id(exp_id)


def test_make_experiment_id_long_name_stays_within_limit() -> None:
    exp_id = make_experiment_id("n" * 500)
    assert len(exp_id) <= 128
    sanitize_experiment_id(exp_id)


# ----------------------------------------------------------------------------- paths


def test_inside_and_equal_paths_are_safe(tmp_path: Path) -> None:
    base = tmp_path / "results"
    base.mkdir()
    assert is_safe_path(base, base)
    assert is_safe_path(base, base / "raw" / "exp" / "process_0.json")  # does not exist yet
    assert is_safe_path(base, base / "raw" / ".." / "state")


def test_sibling_with_common_prefix_is_not_inside(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "bc").mkdir()
    assert not is_safe_path(tmp_path / "b", tmp_path / "bc")
    assert not is_safe_path(tmp_path / "b", tmp_path / "bc" / "file.json")


def test_dotdot_escape_is_refused_even_through_missing_dirs(tmp_path: Path) -> None:
    base = tmp_path / "results"
    base.mkdir()
    assert not is_safe_path(base, base / ".." / "outside.json")
    assert not is_safe_path(base, base / "missing" / ".." / ".." / "outside.json")
    assert not is_safe_path(base, tmp_path)


def test_symlink_pointing_outside_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "results"
    outside = tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (base / "link").symlink_to(outside, target_is_directory=True)
    # The target does not exist yet: its existing parent (the link) is resolved.
    assert not is_safe_path(base, base / "link" / "new.json")
    # A dangling symlink is followed too.
    (base / "dangling").symlink_to(outside / "nothing-here")
    assert not is_safe_path(base, base / "dangling")


def test_symlinked_base_itself_is_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(real, target_is_directory=True)
    assert is_safe_path(alias, real / "x.json")
    assert is_safe_path(real, alias / "x.json")


def test_relative_paths_resolve_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("results").mkdir()
    assert is_safe_path(Path("results"), Path("results/raw/x.json"))
    assert not is_safe_path(Path("results"), Path("other/x.json"))


def test_ensure_safe_path_returns_real_path_or_raises(tmp_path: Path) -> None:
    base = tmp_path / "results"
    base.mkdir()
    assert ensure_safe_path(base, base / "a" / ".." / "b.json") == (base / "b.json").resolve()
    with pytest.raises(ConfigurationError, match="outside"):
        ensure_safe_path(base, base / ".." / "evil.json")


# ----------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("hf_token", True),
        ("HF_TOKEN", True),
        ("token", True),
        ("apiKey", True),
        ("x-api-key", True),
        ("API_KEY", True),
        ("db_password", True),
        ("client_secret", True),
        ("Authorization", True),
        ("max_new_tokens", False),
        ("input_tokens", False),
        ("tokenizer", False),
        ("model_name", False),
        ("keyboard", False),
        ("token_budget", False),
        ("pad_token", False),
        ("eos_token", False),
        ("access_token", True),
        ("secret_key", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("apikey", True),
        ("api_key", True),
        ("api_key_env", False),  # the name of the variable holding the key
        ("secret_env", True),
        ("", False),
    ],
)
def test_is_secret_key(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_redact_secrets_replaces_secret_keys_deeply_and_copies() -> None:
    original = {
        "model": {"name": "gpt2", "hf_token": "abc123", "max_new_tokens": 32},
        "trackers": [{"wandb": {"apiKey": "k-999"}}, "plain"],
        "headers": ("x", {"Authorization": "Basic dXNlcjpwYXNz"}),
        "flops_per_output_token": 1.5e9,
        "password": None,
        "batching": {"strategy": "token_budget", "token_budget": "auto"},
    }
    redacted = redact_secrets(original)
    assert redacted == {
        "model": {"name": "gpt2", "hf_token": REDACTED, "max_new_tokens": 32},
        "trackers": [{"wandb": {"apiKey": REDACTED}}, "plain"],
        "headers": ("x", {"Authorization": REDACTED}),
        "flops_per_output_token": 1.5e9,
        "password": None,
        "batching": {"strategy": "token_budget", "token_budget": "auto"},
    }
    # The input is untouched and nothing is shared.
    assert original["model"]["hf_token"] == "abc123"  # type: ignore[index]
    assert redacted["model"] is not original["model"]


def test_hf_token_from_environment_never_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
    monkeypatch.setenv("WANDB_API_KEY", "wandb-0123456789")
    data = {
        "cmd": f"huggingface-cli login --token {FAKE_HF_TOKEN}",
        "env": {"NOTE": f"prefix{FAKE_HF_TOKEN}suffix"},
        "list": [FAKE_HF_TOKEN, "wandb key wandb-0123456789 here"],
        FAKE_HF_TOKEN: "secret used as a key",
    }
    out = redact_secrets(data)
    dumped = repr(out)
    assert FAKE_HF_TOKEN not in dumped
    assert "wandb-0123456789" not in dumped
    assert out["list"] == [REDACTED, f"wandb key {REDACTED} here"]
    assert out["env"]["NOTE"] == f"prefix{REDACTED}suffix"


def test_redact_text_env_values_and_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdef")
    assert redact_text("calling with sk-live-abcdef ok") == f"calling with {REDACTED} ok"
    assert redact_text("Authorization: Bearer abc.def-ghi") == f"Authorization: Bearer {REDACTED}"
    assert redact_text("url?token=s3cr3t&x=1") == f"url?token={REDACTED}&x=1"
    assert redact_text("authorization=Basic dXNlcjpwYXNz") == f"authorization=Basic {REDACTED}"
    assert redact_text('{"password": "hunter2"}') == f'{{"password": "{REDACTED}"}}'
    assert redact_text(f"login {FAKE_HF_TOKEN}") == f"login {REDACTED}"


@pytest.mark.parametrize(
    "harmless",
    [
        "max_new_tokens=32 input_tokens: 17",
        "first token: 12.3 ms, token: 12ms",
        "flops_per_output_token=1.5e9",
        "token_budget=auto tokenizer: gpt2",
        "pad_token=<|endoftext|> eos_token: </s>",
        "using basic settings; the bearer of bad news",
    ],
)
def test_redact_text_leaves_metrics_alone(harmless: str) -> None:
    assert redact_text(harmless) == harmless


def test_short_env_values_are_not_scrubbed_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "1")
    assert redact_text("batch 1 of 10") == "batch 1 of 10"


def test_unset_env_vars_do_not_redact_empty_string() -> None:
    assert all(not os.environ.get(name) for name in SECRET_ENV_VARS)
    assert redact_text("nothing secret") == "nothing secret"
