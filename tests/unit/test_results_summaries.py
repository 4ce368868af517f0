"""`results list` rows: values, the summary cache (index + journal), damage tolerance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.factories import make_device, make_raw

from llm_energy_measure.results import ExperimentSummary, FileSystemRepository, aggregate_results
from llm_energy_measure.storage.layout import SUMMARY_INDEX_NAME as INDEX_FILE_NAME
from llm_energy_measure.storage.layout import SUMMARY_JOURNAL_NAME as JOURNAL_FILE_NAME


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def repo(base: Path) -> FileSystemRepository:
    return FileSystemRepository(base)


def _store(repo, exp_id, n=2, **kwargs):
    raws = [make_raw(exp_id, i, n, start=100.0, duration_s=8.0, **kwargs) for i in range(n)]
    for raw in raws:
        repo.save_raw(raw)
    return repo.save_aggregated(aggregate_results(raws))


def test_rows_carry_the_aggregated_figures(repo):
    _store(repo, "exp-b", n=2)
    _store(repo, "exp-a", n=1, devices=[make_device("gpu:E", 40.0, method="estimate",
                                                    estimated=True)])
    rows = repo.list_summaries()
    assert [r.experiment_id for r in rows] == ["exp-a", "exp-b"]
    assert rows[1] == ExperimentSummary(
        experiment_id="exp-b", aggregated=True, config_name="synthetic",
        model_name="builtin:tiny-llama", num_processes=2, output_tokens=160,
        output_tokens_per_s=160 / 8.0, energy_j=200.0, estimated=False, started_at=100.0,
    )
    assert rows[0].energy_j == 40.0 and rows[0].estimated is True


def test_raw_only_experiments_are_listed_on_request(repo):
    _store(repo, "done", n=1)
    for rank in (0, 2):
        repo.save_raw(make_raw("running", rank, 3, start=50.0 + rank))
    assert [r.experiment_id for r in repo.list_summaries(include_raw=False)] == ["done"]
    rows = {r.experiment_id: r for r in repo.list_summaries(include_raw=True)}
    assert rows["running"] == ExperimentSummary(
        experiment_id="running", aggregated=False, config_name="synthetic",
        model_name="builtin:tiny-llama", num_processes=2, output_tokens=160, started_at=50.0,
    )
    assert [r.experiment_id for r in repo.list_summaries(include_raw=False)] == ["done"]


def test_saves_go_through_the_journal_into_the_index(repo, base):
    _store(repo, "exp", n=1)
    assert (base / JOURNAL_FILE_NAME).exists()
    repo.list_summaries()
    assert not (base / JOURNAL_FILE_NAME).exists()
    index = json.loads((base / INDEX_FILE_NAME).read_text())
    assert [entry[0] for entry in index["entries"]] == ["agg:exp"]


def test_cached_row_is_used_while_the_file_signature_is_unchanged(repo, base):
    path = _store(repo, "exp", n=1)
    repo.list_summaries()
    stat = path.stat()
    # Same size and mtime but unreadable content: only a cache hit can still list it.
    path.write_bytes(b"x" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert repo.list_summaries()[0].output_tokens == 80


def test_file_changed_behind_the_cache_is_read_again(repo, base):
    path = _store(repo, "exp", n=1)
    repo.list_summaries()
    data = json.loads(path.read_text())
    data["inference"]["output_tokens"] = 12345
    path.write_text(json.dumps(data))
    assert repo.list_summaries()[0].output_tokens == 12345


def test_damaged_result_file_gives_a_problem_row(repo):
    path = _store(repo, "broken", n=1)
    _store(repo, "fine", n=1)
    path.write_text(path.read_text()[:50])
    rows = {r.experiment_id: r for r in repo.list_summaries()}
    assert rows["fine"].output_tokens == 80
    assert rows["broken"].output_tokens is None
    assert "broken.json" in rows["broken"].problem


@pytest.mark.parametrize("content", ["{not json", '{"format": 1, "entries": [["agg:exp", 5]]}',
                                     '{"format": 1, "entries": [["agg:exp", [1, 2], [1]]]}',
                                     '{"format": 99, "entries": []}', "[]"])
def test_damaged_index_is_ignored_and_rebuilt(repo, base, content):
    _store(repo, "exp", n=1)
    repo.list_summaries()
    (base / INDEX_FILE_NAME).write_text(content)
    assert repo.list_summaries()[0].output_tokens == 80
    index = json.loads((base / INDEX_FILE_NAME).read_text())
    assert index["format"] == 1 and len(index["entries"]) == 1


def test_damaged_journal_lines_are_ignored(repo, base):
    _store(repo, "exp", n=1)
    with open(base / JOURNAL_FILE_NAME, "a") as handle:
        handle.write('["agg:exp", [1, 2], ["exp", true]]\n{torn line\n')
    assert repo.list_summaries()[0].output_tokens == 80


def test_stale_journal_entry_does_not_override_the_file(repo, base):
    path = _store(repo, "exp", n=1)
    data = json.loads(path.read_text())
    data["inference"]["output_tokens"] = 7
    path.write_text(json.dumps(data))  # edited after the journal line was written
    assert repo.list_summaries()[0].output_tokens == 7


def test_deleted_experiments_disappear(repo):
    _store(repo, "a", n=1)
    _store(repo, "b", n=1)
    assert len(repo.list_summaries()) == 2
    repo.delete_experiment("a")
    assert [r.experiment_id for r in repo.list_summaries()] == ["b"]


def test_empty_store(repo):
    assert repo.list_summaries() == []


def test_rows_are_newest_first_then_by_id(repo, base):
    for exp_id, start in (("old", 10.0), ("new", 30.0), ("mid-b", 20.0), ("mid-a", 20.0)):
        repo.save_aggregated(aggregate_results([make_raw(exp_id, 0, 1, start=start)]))
    broken = _store(repo, "broken", n=1)
    broken.write_text("{")
    order = [r.experiment_id for r in repo.list_summaries()]
    assert order == ["new", "mid-a", "mid-b", "old", "broken"]
