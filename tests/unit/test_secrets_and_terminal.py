"""No token in a saved launch config or an error line; no control character reaches the terminal.

`--set model.revision=hf_...` was redacted in results and state but written in clear into
state/<id>.launch/config.json, and an error line echoed a token the state file redacted.
Escapes decoded from YAML ("\\x1b[2J...") passed validation and `results list` printed them raw.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.factories import make_raw
from typer.testing import CliRunner

from llm_energy_measure.cli import app
from llm_energy_measure.config import validate_config
from llm_energy_measure.config.study import validate_study
from llm_energy_measure.console.support import error_line
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration.resume import resolved_config_path, save_resolved_config
from llm_energy_measure.results import FileSystemRepository, aggregate_results
from llm_energy_measure.security import escape_controls

runner = CliRunner()
TOKEN = "hf_" + "Ab3" * 10  # the shape of a Hugging Face access token (33 characters)


def test_a_token_given_as_revision_is_refused_without_echoing_it(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("cycles: 2\n")
    result = runner.invoke(app, ["run", str(config), "--set", f"model.revision={TOKEN}",
                                 "--dry-run", "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: overrides: model.revision: the value looks like an access token; a config "
        "never holds credentials (it is stored with the results): give the token through the "
        "HF_TOKEN environment variable")
    assert TOKEN not in result.output
    assert not (tmp_path / "r").exists()


def test_the_launch_config_copy_never_holds_a_secret_environment_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cret-value-of-hf-token"
    monkeypatch.setenv("HF_TOKEN", secret)
    config = validate_config({"config_name": f"run-{secret}"})  # validation cannot know it
    with pytest.raises(ConfigurationError) as caught:
        save_resolved_config(tmp_path, "e1", config)
    assert str(caught.value) == (
        "config_name: the value is a secret (it is the value of a secret environment variable "
        "or looks like a credential) and would be saved with the experiment; a config never "
        "holds credentials")
    assert not resolved_config_path(tmp_path, "e1").exists()
    monkeypatch.delenv("HF_TOKEN")
    written = save_resolved_config(tmp_path, "e1", config)
    assert f"run-{secret}" in written.read_text()  # no secret in the environment: kept as is


def test_an_error_line_never_echoes_a_token(tmp_path: Path) -> None:
    missing = tmp_path / f"{TOKEN}.yaml"
    result = runner.invoke(app, ["config", "validate", str(missing)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: config file not found: {tmp_path}/***.yaml"
    assert error_line(ValueError(f"revision {TOKEN} not found\nmore")) == (
        "revision *** not found")


def test_escape_controls_known_answers() -> None:
    assert escape_controls("a\x1b[2Jb\u202ec\td") == "a\\x1b[2Jb\\u202ec\\x09d"
    assert escape_controls("plain – ünïcode ✓") == "plain – ünïcode ✓"


def test_a_yaml_escape_in_config_name_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text('config_name: "\\x1b[2Jcleared"\n')  # YAML decodes \x1b to ESC
    result = runner.invoke(app, ["config", "validate", str(config)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {config}: config_name: control character U+001B is not allowed; write it as "
        "plain text")


@pytest.mark.parametrize("data", [
    {"model": {"name": "builtin:tiny-llama\u202e"}},
    {"prompts": {"source": "jsonl", "path": "p\n.jsonl"}},
])
def test_control_characters_are_refused_in_every_setting(data: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="control character U\\+"):
        validate_config(data)


def test_a_control_character_in_a_study_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="study_name: control character U\\+0007"):
        validate_study({"study_name": "ding\x07", "base_config": {}})


def test_results_list_escapes_control_characters_of_stored_names(tmp_path: Path) -> None:
    # A result written before names were checked (or by hand): shown escaped, never raw.
    repo = FileSystemRepository(tmp_path)
    raw = make_raw("e1", 0, 1, config_name="\x1b[2Jgone", model_name="m\u202eodel")
    repo.save_raw(raw)
    repo.save_aggregated(aggregate_results([raw]))
    result = runner.invoke(app, ["results", "list", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("e1"))
    assert row.split()[1:3] == ["\\x1b[2Jgone", "m\\u202eodel"]
    shown = runner.invoke(app, ["results", "show", "e1", "--results-dir", str(tmp_path)])
    assert shown.exit_code == 0 and "\x1b" not in shown.stdout
    assert "m\\u202eodel (float32" in shown.stdout
