"""Stored files are read as bounded input: regular files only, a damaged cache never crashes.

A FIFO, a device or a directory where a result, state or prompt file belongs is refused
before anything is read (it would block or read without end); a damaged summary-cache line
is ignored, as the summaries module promises.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.factories import make_raw
from typer.testing import CliRunner

from llm_energy_measure.cli import app
from llm_energy_measure.config.models import PromptsConfig
from llm_energy_measure.constants import MAX_NESTING_DEPTH
from llm_energy_measure.core.prompts import load_prompts
from llm_energy_measure.exceptions import ConfigurationError, ResultsError
from llm_energy_measure.results import FileSystemRepository, aggregate_results
from llm_energy_measure.state import StateStore
from llm_energy_measure.storage.layout import SUMMARY_INDEX_NAME as INDEX_FILE_NAME
from llm_energy_measure.storage.layout import SUMMARY_JOURNAL_NAME as JOURNAL_FILE_NAME

runner = CliRunner()


def _store_with_one_aggregated(base: Path) -> FileSystemRepository:
    repo = FileSystemRepository(base)
    raw = make_raw("good", 0, 1)  # 4 requests x 20 output tokens
    repo.save_raw(raw)
    repo.save_aggregated(aggregate_results([raw]))
    return repo


@pytest.mark.timeout(30)
def test_a_fifo_in_place_of_an_aggregated_result_does_not_hang_results_list(
        tmp_path: Path) -> None:
    repo = _store_with_one_aggregated(tmp_path)
    fifo = repo.aggregated_path("pipe")
    os.mkfifo(fifo)
    rows = {row.experiment_id: row for row in repo.list_summaries(include_raw=False)}
    assert rows["good"].output_tokens == 80
    assert rows["pipe"].problem == (
        f"{fifo}: cannot be read (a FIFO (named pipe), not a regular file)")
    result = runner.invoke(app, ["results", "list", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "good" in result.stdout and "pipe" in result.stdout


@pytest.mark.timeout(30)
def test_a_fifo_in_place_of_a_raw_result_is_skipped(tmp_path: Path) -> None:
    repo = FileSystemRepository(tmp_path)
    repo.save_raw(make_raw("e", 0, 2))
    os.mkfifo(repo.raw_path("e", 1))
    assert [r.process_index for r in repo.load_all_raw("e")] == [0]
    with pytest.raises(ResultsError, match=r"process_1\.json: cannot be read \(a FIFO"):
        repo.load_raw("e", 1)


@pytest.mark.timeout(30)
def test_a_fifo_in_place_of_a_state_file_is_an_error_naming_it(tmp_path: Path) -> None:
    states = StateStore(tmp_path)
    path = states.path_for("e")
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    with pytest.raises(ResultsError, match=r"state file .*e\.json cannot be read \(a FIFO"):
        states.load("e")


@pytest.mark.parametrize("where", [JOURNAL_FILE_NAME, INDEX_FILE_NAME])
def test_a_deeply_nested_cache_line_is_ignored_by_results_list(tmp_path: Path,
                                                                 where: str) -> None:
    repo = _store_with_one_aggregated(tmp_path)
    (tmp_path / where).write_text("[" * 100_000 + "\n")
    rows = repo.list_summaries(include_raw=False)
    assert [(r.experiment_id, r.output_tokens, r.problem) for r in rows] == [("good", 80, None)]


def test_a_cached_row_with_a_non_finite_figure_is_not_trusted(tmp_path: Path) -> None:
    repo = _store_with_one_aggregated(tmp_path)
    repo.list_summaries(include_raw=False)  # compacts the journal into the index
    index = tmp_path / INDEX_FILE_NAME
    text = index.read_text()
    assert '"good",true,"synthetic"' in text
    index.write_text(text.replace(",1000.0,null]", ",NaN,null]"))
    [row] = repo.list_summaries(include_raw=False)
    assert row.started_at == 1000.0  # re-read from the result, not NaN from the cache


@pytest.mark.timeout(30)
def test_a_prompt_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "prompts.txt"
    os.mkfifo(fifo)
    config = PromptsConfig(source="file", path=fifo, num_prompts=1)
    with pytest.raises(ConfigurationError, match=(
            r"prompts.path '.*prompts.txt' is a FIFO \(named pipe\), not a regular file")):
        load_prompts(config, seed=0)


def test_a_deeply_nested_prompts_jsonl_line_is_one_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "hello"}\n' + '{"prompt": ' + "[" * 5000 + "]" * 5000 + "}\n")
    config = PromptsConfig(source="jsonl", path=path, num_prompts=1)
    with pytest.raises(ConfigurationError, match=(
            f"p.jsonl' line 2 nests more than {MAX_NESTING_DEPTH} levels deep")):
        load_prompts(config, seed=0)


def test_a_5000_digit_integer_in_prompts_jsonl_is_one_error_naming_the_line(
        tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "hi", "n": ' + "1" * 5000 + "}\n")
    config = PromptsConfig(source="jsonl", path=path, num_prompts=1)
    with pytest.raises(ConfigurationError, match=r"p\.jsonl' line 1 is not usable JSON"):
        load_prompts(config, seed=0)
