"""StudyStore: manifest files written atomically under a lock, with clear errors."""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from llm_energy_measure.exceptions import ConfigurationError, ResultsError
from llm_energy_measure.state.study_models import StudyManifest, StudyPoint, StudyRun
from llm_energy_measure.state.study_store import StudyStore

STUDY_ID = "s-20260101T000000Z-abcdef"


def _manifest(runs: int = 2) -> StudyManifest:
    return StudyManifest(
        study_id=STUDY_ID, study_name="s", study_hash="0" * 16, created_at=1.0, updated_at=1.0,
        points=[StudyPoint(point_id="p000", label="base")],
        runs=[StudyRun(point_id="p000", cycle=c, order_index=c,
                       experiment_id=f"{STUDY_ID}-p000-c{c}") for c in range(runs)],
    )


def test_create_load_roundtrip_at_the_documented_path(tmp_path: Path) -> None:
    store = StudyStore(tmp_path)
    store.create(_manifest())
    path = tmp_path / "studies" / STUDY_ID / "manifest.json"
    assert json.loads(path.read_text())["study_id"] == STUDY_ID
    assert store.load(STUDY_ID) == _manifest()
    assert [m.study_id for m in store.list_studies()] == [STUDY_ID]


def test_create_refuses_an_existing_study(tmp_path: Path) -> None:
    store = StudyStore(tmp_path)
    store.create(_manifest())
    with pytest.raises(ConfigurationError, match="already exists"):
        store.create(_manifest())


def test_missing_study_names_the_id_and_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no study 'nope' under .*studies"):
        StudyStore(tmp_path).load("nope")


def test_unsafe_study_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="invalid experiment id"):
        StudyStore(tmp_path).load("../outside")


def test_corrupt_manifest_is_a_results_error(tmp_path: Path) -> None:
    store = StudyStore(tmp_path)
    store.create(_manifest())
    store.manifest_path(STUDY_ID).write_text("{not json")
    with pytest.raises(ResultsError, match="unreadable"):
        store.load(STUDY_ID)
    assert store.list_studies() == []  # skipped with a warning, not fatal


def test_update_changes_and_stamps_and_invalid_change_leaves_file(tmp_path: Path) -> None:
    store = StudyStore(tmp_path)
    store.create(_manifest())

    def complete_first(m: StudyManifest) -> None:
        m.runs[0].status = "completed"

    updated = store.update(STUDY_ID, complete_first)
    assert updated.runs[0].status == "completed" and updated.updated_at > 1.0
    before = store.manifest_path(STUDY_ID).read_bytes()

    def break_it(m: StudyManifest) -> None:
        m.runs[1].cycle = -1  # fails validation (ge=0)

    with pytest.raises(ValidationError):
        store.update(STUDY_ID, break_it)
    assert store.manifest_path(STUDY_ID).read_bytes() == before
    leftovers = [p.name for p in store.study_dir(STUDY_ID).iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def _bump(results_dir: str, count: int) -> None:
    store = StudyStore(Path(results_dir))

    def add_one(m: StudyManifest) -> None:
        m.runs[0].attempts += 1

    for _ in range(count):
        store.update(STUDY_ID, add_one)


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method")
def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    StudyStore(tmp_path).create(_manifest())
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_bump, args=(str(tmp_path), 25)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert StudyStore(tmp_path).load(STUDY_ID).runs[0].attempts == 75


def test_experiments_by_point_lists_completed_runs_in_cycle_order() -> None:
    manifest = _manifest(runs=3)
    manifest.runs[2].status = "completed"
    manifest.runs[0].status = "completed"
    assert manifest.experiments_by_point() == {
        "p000": [f"{STUDY_ID}-p000-c0", f"{STUDY_ID}-p000-c2"]}
