"""FileSystemRepository on a real directory: layout, markers, atomicity, damage, safety."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from loguru import logger
from tests.factories import make_raw

from llm_energy_measure.exceptions import ConfigurationError, ResultsError
from llm_energy_measure.results import FileSystemRepository, aggregate_results
from llm_energy_measure.storage import atomic as atomic_module
from llm_energy_measure.storage import repository as repository_module

BAD_IDS = ["../x", "a/b", "", "x" * 200, "\x00", "..", ".hidden", "a\\b"]


@pytest.fixture
def repo(tmp_path: Path) -> FileSystemRepository:
    return FileSystemRepository(tmp_path / "results")


@pytest.fixture
def log_messages():
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    yield messages
    logger.remove(sink)


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_layout_and_round_trip(repo, tmp_path):
    raws = [make_raw("exp-1", rank, 2) for rank in (1, 0)]
    paths = [repo.save_raw(r) for r in raws]
    base = tmp_path / "results"
    assert paths[0] == base / "raw" / "exp-1" / "process_1.json"
    result = aggregate_results(repo.load_all_raw("exp-1"))
    assert repo.save_aggregated(result) == base / "aggregated" / "exp-1.json"
    assert _all_files(base) == [
        ".summary_journal.jsonl",
        "aggregated/exp-1.json",
        "raw/exp-1/.completed_0",
        "raw/exp-1/.completed_1",
        "raw/exp-1/process_0.json",
        "raw/exp-1/process_1.json",
    ]
    assert repo.load_raw("exp-1", 1) == raws[0]
    assert repo.load_all_raw("exp-1") == [raws[1], raws[0]]
    assert repo.load_aggregated("exp-1") == result
    stored = json.loads((base / "aggregated" / "exp-1.json").read_text())
    assert stored["schema_version"] == 2


def test_absent_results(repo):
    assert repo.load_raw("nope", 0) is None
    assert repo.load_all_raw("nope") == []
    assert repo.load_aggregated("nope") is None
    assert repo.completed_ranks("nope") == set()
    assert repo.list_experiments() == [] and repo.list_aggregated() == []
    assert not repo.has_raw("nope") and not repo.has_aggregated("nope")


def test_marker_is_written_after_the_json(repo, monkeypatch):
    written: list[str] = []
    real = repository_module.atomic_write_text

    def recording(path, text, *, durable=True):
        written.append(path.name)
        return real(path, text, durable=durable)

    monkeypatch.setattr(repository_module, "atomic_write_text", recording)
    repo.save_raw(make_raw("exp", 3, 4))
    assert written == ["process_3.json", ".completed_3"]
    assert repo.completed_ranks("exp") == {3}


def test_completed_ranks_reflect_markers_only(repo, tmp_path):
    repo.save_raw(make_raw("exp", 0, 3))
    repo.save_raw(make_raw("exp", 2, 3))
    (tmp_path / "results/raw/exp/.completed_2").unlink()
    (tmp_path / "results/raw/exp/.completed_x").write_text("")
    assert repo.completed_ranks("exp") == {0}


def test_writes_leave_no_temporary_files(repo, tmp_path):
    for rank in range(3):
        repo.save_raw(make_raw("exp", rank, 3))
    repo.save_aggregated(aggregate_results(repo.load_all_raw("exp")))
    repo.save_aggregated(aggregate_results(repo.load_all_raw("exp")))  # overwrite
    assert not [f for f in _all_files(tmp_path) if f.endswith(".tmp")]


def test_failed_write_keeps_the_old_file_and_no_temp(repo, tmp_path, monkeypatch):
    first = make_raw("exp", 0, 1, start=1.0)
    path = repo.save_raw(first)

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_module.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        repo.save_raw(make_raw("exp", 0, 1, start=2.0))
    monkeypatch.undo()
    assert repo.load_raw("exp", 0) == first
    assert sorted(p.name for p in path.parent.iterdir()) == [".completed_0", "process_0.json"]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text[: len(text) // 2], id="truncated"),
        pytest.param(lambda text: "", id="empty"),
        pytest.param(lambda text: "\x00\xff garbage", id="garbage"),
        pytest.param(lambda text: text.replace('"output_tokens": 80', '"output_tokens": "lots"'),
                     id="hand-edited-type"),
        pytest.param(lambda text: text.replace('"hostname": "hostA"', '"hostnam": "hostA"', 1),
                     id="hand-edited-key"),
        pytest.param(lambda text: "[1, 2]", id="not-an-object"),
    ],
)
def test_damaged_raw_file_is_skipped_with_a_warning_naming_it(repo, log_messages, damage):
    for rank in range(3):
        repo.save_raw(make_raw("exp", rank, 3))
    bad = repo.raw_path("exp", 1)
    bad.write_text(damage(bad.read_text()))
    loaded = repo.load_all_raw("exp")
    assert [r.process_index for r in loaded] == [0, 2]
    assert any(str(bad) in m for m in log_messages), log_messages
    with pytest.raises(ResultsError, match=r"process_1\.json"):
        repo.load_raw("exp", 1)


def test_unknown_schema_version_is_skipped_naming_the_version(repo, log_messages):
    repo.save_raw(make_raw("exp", 0, 2))
    path = repo.save_raw(make_raw("exp", 1, 2))
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    assert [r.process_index for r in repo.load_all_raw("exp")] == [0]
    assert any("schema_version 99" in m and str(path) in m for m in log_messages)


def test_misplaced_raw_file_is_skipped(repo, log_messages):
    repo.save_raw(make_raw("exp", 0, 2))
    path = repo.raw_path("exp", 0)
    path.rename(path.with_name("process_1.json"))  # says process 0, named process 1
    assert repo.load_all_raw("exp") == []
    assert any("process_1.json" in m and "moved or edited" in m for m in log_messages)


def test_corrupt_aggregated_raises_naming_the_file(repo):
    path = repo.save_aggregated(aggregate_results([make_raw("exp", 0, 1)]))
    path.write_text(path.read_text()[:100])
    with pytest.raises(ResultsError, match=r"aggregated/exp\.json"):
        repo.load_aggregated("exp")


def test_aggregated_of_unknown_schema_version_raises(repo):
    path = repo.save_aggregated(aggregate_results([make_raw("exp", 0, 1)]))
    data = json.loads(path.read_text())
    data["schema_version"] = 7
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsError, match="schema_version 7"):
        repo.load_aggregated("exp")


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_unsafe_ids_are_refused_everywhere(repo, tmp_path, bad_id):
    calls = [
        lambda: repo.save_raw(make_raw(bad_id, 0, 1)),
        lambda: repo.save_aggregated(
            aggregate_results([make_raw("ok", 0, 1)]).model_copy(update={"experiment_id": bad_id})
        ),
        lambda: repo.load_raw(bad_id, 0),
        lambda: repo.load_all_raw(bad_id),
        lambda: repo.load_aggregated(bad_id),
        lambda: repo.completed_ranks(bad_id),
        lambda: repo.has_raw(bad_id),
        lambda: repo.has_aggregated(bad_id),
        lambda: repo.delete_experiment(bad_id),
    ]
    for call in calls:
        with pytest.raises(ConfigurationError, match="invalid experiment id"):
            call()
    assert _all_files(tmp_path) == []


def test_symlinked_experiment_folder_escaping_the_base_is_refused(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "process_0.json").write_text(make_raw("evil", 0, 1).model_dump_json())
    (tmp_path / "results" / "raw").mkdir(parents=True)
    (tmp_path / "results" / "raw" / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigurationError, match="outside"):
        repo.load_all_raw("evil")
    with pytest.raises(ConfigurationError, match="outside"):
        repo.save_raw(make_raw("evil", 1, 2))
    with pytest.raises(ConfigurationError, match="outside"):
        repo.delete_experiment("evil")
    assert sorted(p.name for p in outside.iterdir()) == ["process_0.json"]


def test_symlinked_result_file_escaping_the_base_is_refused(repo, tmp_path, log_messages):
    secret = tmp_path / "secret.json"
    secret.write_text(aggregate_results([make_raw("x", 0, 1)]).model_dump_json())
    repo.save_raw(make_raw("exp", 0, 2))
    (tmp_path / "results/raw/exp/process_1.json").symlink_to(secret)
    assert [r.process_index for r in repo.load_all_raw("exp")] == [0]
    assert any("outside" in m for m in log_messages)
    (tmp_path / "results/aggregated").mkdir()
    (tmp_path / "results/aggregated/x.json").symlink_to(secret)
    with pytest.raises(ConfigurationError, match="outside"):
        repo.load_aggregated("x")


def test_listing_has_and_delete(repo):
    for exp in ("b-exp", "a-exp"):
        repo.save_raw(make_raw(exp, 0, 1))
    repo.save_aggregated(aggregate_results([make_raw("b-exp", 0, 1)]))
    assert repo.list_experiments() == ["a-exp", "b-exp"]
    assert repo.list_aggregated() == ["b-exp"]
    assert repo.has_raw("a-exp") and not repo.has_aggregated("a-exp")
    repo.delete_experiment("b-exp")
    assert repo.list_experiments() == ["a-exp"] and repo.list_aggregated() == []
    assert not repo.has_raw("b-exp")
    with pytest.raises(ResultsError, match="no results for experiment 'b-exp'"):
        repo.delete_experiment("b-exp")


def test_listing_ignores_foreign_and_temporary_entries(repo, tmp_path):
    repo.save_raw(make_raw("exp", 0, 1))
    raw_dir = tmp_path / "results/raw"
    (raw_dir / ".hidden").mkdir()
    (raw_dir / "stray-file.json").write_text("{}")
    agg_dir = tmp_path / "results/aggregated"
    agg_dir.mkdir()
    (agg_dir / ".exp.json.123.abcd.tmp").write_text("{")
    (agg_dir / "notes.txt").write_text("")
    assert repo.list_experiments() == ["exp"]
    assert repo.list_aggregated() == []
    assert os.listdir(raw_dir / "exp")  # untouched


def test_importing_results_does_not_import_heavy_libraries():
    import subprocess
    import sys

    code = (
        "import sys, llm_energy_measure.results; "
        "print(sorted(m for m in ('torch', 'transformers', 'pyarrow', 'scipy', 'numpy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_result_of_the_older_schema_says_it_must_be_rerun(repo):
    # Schema 1 stored ITL as each request's mean gap (itl_s) and e2e at the row's last token.
    path = repo.save_aggregated(aggregate_results([make_raw("exp", 0, 1)]))
    data = json.loads(path.read_text())
    data["schema_version"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsError, match="schema_version 1 was written by an older"):
        repo.load_aggregated("exp")
