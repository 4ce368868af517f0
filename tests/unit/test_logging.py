"""Console levels, file sinks and secret redaction of the logging setup."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from llm_energy_measure import logging as lem_logging
from llm_energy_measure.constants import SECRET_ENV_VARS
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.logging import (
    add_experiment_log,
    experiment_log_file,
    remove_log_sink,
    setup_logging,
)

FAKE_HF_TOKEN = "hf_FAKEfakeFAKEfakeFAKEfake1234"


@pytest.fixture(autouse=True)
def _clean_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in SECRET_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    yield
    for handler_id in lem_logging._configured_ids:
        remove_log_sink(handler_id)
    lem_logging._configured_ids.clear()


def emit_all_levels() -> None:
    logger.debug("debug-msg")
    logger.info("info-msg")
    logger.warning("warning-msg")
    logger.error("error-msg")


@pytest.mark.parametrize(
    ("verbosity", "quiet", "shown", "hidden"),
    [
        (0, False, ["info-msg", "warning-msg", "error-msg"], ["debug-msg"]),
        (1, False, ["debug-msg", "info-msg", "warning-msg", "error-msg"], []),
        (0, True, ["warning-msg", "error-msg"], ["debug-msg", "info-msg"]),
        (2, True, ["warning-msg", "error-msg"], ["debug-msg", "info-msg"]),  # quiet wins
    ],
)
def test_console_level_by_verbosity(
    capsys: pytest.CaptureFixture[str],
    verbosity: int,
    quiet: bool,
    shown: list[str],
    hidden: list[str],
) -> None:
    setup_logging(verbosity=verbosity, quiet=quiet)
    emit_all_levels()
    err = capsys.readouterr().err
    for text in shown:
        assert text in err
    for text in hidden:
        assert text not in err


def test_console_format_concise_by_default_timestamps_when_verbose(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging()
    logger.info("hello")
    line = capsys.readouterr().err.strip()
    assert line == "INFO     hello"

    setup_logging(verbosity=1)
    logger.info("hello")
    line = capsys.readouterr().err.strip()
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} \| INFO     \| tests?[\w.]*:\d+ - hello$", line), line


def test_calling_setup_twice_does_not_duplicate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log_file = tmp_path / "run.log"
    setup_logging(log_file=log_file)
    setup_logging(log_file=log_file)
    setup_logging(log_file=log_file)
    logger.info("only-once")
    assert capsys.readouterr().err.count("only-once") == 1
    assert log_file.read_text(encoding="utf-8").count("only-once") == 1


def test_file_sink_gets_debug_in_full_format(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log_file = tmp_path / "nested" / "dir" / "run.log"
    setup_logging(quiet=True, log_file=log_file)
    emit_all_levels()
    assert "info-msg" not in capsys.readouterr().err
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert [line.rsplit(" - ", 1)[1] for line in lines] == [
        "debug-msg",
        "info-msg",
        "warning-msg",
        "error-msg",
    ]
    pattern = (
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4} \| DEBUG    \| pid=\d+ \| "
        r"[\w.]+:emit_all_levels:\d+ - debug-msg$"
    )
    assert re.match(pattern, lines[0]), lines[0]


def test_secrets_redacted_in_file_console_and_tracebacks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
    log_file = tmp_path / "run.log"
    setup_logging(log_file=log_file)
    logger.info("logging in with {}", FAKE_HF_TOKEN)
    logger.debug("headers Authorization: Bearer abcdef123456")
    try:
        raise RuntimeError(f"download failed for token {FAKE_HF_TOKEN}")
    except RuntimeError:
        logger.exception("failure")
    content = log_file.read_text(encoding="utf-8")
    err = capsys.readouterr().err
    for text in (content, err):
        assert FAKE_HF_TOKEN not in text
        assert "logging in with ***" in text
        assert "RuntimeError: download failed for token ***" in text
    assert "abcdef123456" not in content
    assert "Bearer ***" in content


def test_foreign_sink_sees_redacted_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-value")
    setup_logging(quiet=True)
    seen: list[str] = []
    handler_id = logger.add(lambda m: seen.append(m.record["message"]), level="INFO")
    try:
        logger.info("key is wandb-secret-value")
    finally:
        logger.remove(handler_id)
    assert seen == ["key is ***"]


def test_experiment_log_attach_and_detach(tmp_path: Path) -> None:
    setup_logging(quiet=True)
    path = experiment_log_file(tmp_path, "exp-1")
    assert path == tmp_path / "logs" / "exp-1.log"
    handler_id = add_experiment_log(path)
    logger.debug("during-run")
    remove_log_sink(handler_id)
    logger.info("after-run")
    remove_log_sink(handler_id)  # second removal is harmless
    content = path.read_text(encoding="utf-8")
    assert "during-run" in content
    assert "after-run" not in content


def test_experiment_log_survives_setup_logging(tmp_path: Path) -> None:
    path = tmp_path / "exp.log"
    handler_id = add_experiment_log(path)
    try:
        setup_logging(verbosity=1)
        logger.info("kept")
    finally:
        remove_log_sink(handler_id)
    assert "kept" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("bad_id", ["../escape", ".hidden", "a/b", ""])
def test_experiment_log_file_rejects_unsafe_ids(tmp_path: Path, bad_id: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid experiment id"):
        experiment_log_file(tmp_path, bad_id)
