"""The launcher's pure parts: rank mapping (resume), fault parsing, and the
experiment id agreed by rank 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration.launch.distributed import ControlGroup, DistributedInfo
from llm_energy_measure.orchestration.launch.faults import Fault, fault_from_env, parse_fault
from llm_energy_measure.orchestration.launch.rank import (
    RankPlan,
    agree_on_experiment_id,
    rank_plan,
)
from llm_energy_measure.state import StateStore


def _info(rank: int, world: int) -> DistributedInfo:
    return DistributedInfo(rank=rank, local_rank=rank, world_size=world, local_world_size=world)


def test_without_ranks_the_launched_rank_is_the_experiment_rank() -> None:
    assert rank_plan(_info(1, 2), None, None) == RankPlan(rank=1, num_processes=2)


def test_resume_maps_launched_processes_onto_the_missing_ranks() -> None:
    assert rank_plan(_info(0, 2), "1,3", 4) == RankPlan(rank=1, num_processes=4)
    assert rank_plan(_info(1, 2), "1,3", 4) == RankPlan(rank=3, num_processes=4)
    assert rank_plan(_info(0, 1), "2", 3) == RankPlan(rank=2, num_processes=3)


@pytest.mark.parametrize("ranks, total, needle", [
    ("1", 4, "must list 2"),           # one rank for two processes
    ("1,1", 4, "distinct"),
    ("1,x", 4, "integers"),
    ("1,5", 4, r"0\.\.3"),
])
def test_bad_rank_lists_are_refused(ranks: str, total: int, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        rank_plan(_info(0, 2), ranks, total)


def test_fault_spec_is_parsed_and_fires_only_at_its_rank_and_point() -> None:
    fault = parse_fault("rank=1:after=window_open:kind=error")
    assert fault == Fault(rank=1, after="window_open", kind="error")
    fault.maybe_fire(0, "window_open")   # another rank: nothing
    fault.maybe_fire(1, "window_close")  # another point: nothing
    with pytest.raises(RuntimeError, match="injected"):
        fault.maybe_fire(1, "window_open")
    with pytest.raises(MemoryError, match="out of memory"):
        Fault(0, "start", "oom").maybe_fire(0, "start")
    assert fault_from_env({}) is None
    assert fault_from_env({"LLM_ENERGY_MEASURE_FAULT": "rank=0:after=start:kind=hang"}) == \
        Fault(0, "start", "hang")


@pytest.mark.parametrize("text", ["rank=1", "rank=x:after=start:kind=oom",
                                  "rank=1:after=later:kind=oom", "rank=1:after=start:kind=boom",
                                  "garbage"])
def test_malformed_fault_specs_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="LLM_ENERGY_MEASURE_FAULT"):
        parse_fault(text)


def test_rank_0_creates_the_id_state_and_saved_config(tmp_path: Path) -> None:
    config = ExperimentConfig(config_name="Direct Launch")
    group = ControlGroup(DistributedInfo(), timeout_s=1)
    exp_id = agree_on_experiment_id(group, None, config, tmp_path, 2, tmp_path / "c.yaml")
    assert exp_id.startswith("direct-launch-")
    state = StateStore(tmp_path).load(exp_id)
    assert state is not None and state.num_processes == 2 and state.status == "running"
    saved = tmp_path / "state" / f"{exp_id}.launch" / "config.json"
    assert json.loads(saved.read_text())["config_name"] == "Direct Launch"


def test_a_given_id_with_state_is_reused_not_recreated(tmp_path: Path) -> None:
    config = ExperimentConfig()
    store = StateStore(tmp_path)
    store.create("given-1", config_name="x", num_processes=2)
    group = ControlGroup(DistributedInfo(), timeout_s=1)
    assert agree_on_experiment_id(group, "given-1", config, tmp_path, 2, tmp_path) == "given-1"
    state = store.load("given-1")
    assert state is not None and state.status == "pending"  # untouched


def test_an_unsafe_given_id_stops_every_rank(tmp_path: Path) -> None:
    group = ControlGroup(DistributedInfo(), timeout_s=1)
    with pytest.raises(ConfigurationError, match="rank 0 could not set up"):
        agree_on_experiment_id(group, "../escape", ExperimentConfig(), tmp_path, 2, tmp_path)
