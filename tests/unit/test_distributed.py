"""Rank discovery from the launcher's environment, thread shares, and the gloo control group."""

from __future__ import annotations

import os
import socket
import time

import pytest

from llm_energy_measure.exceptions import DistributedError
from llm_energy_measure.orchestration.launch.distributed import (
    ControlGroup,
    DistributedInfo,
    discover_distributed,
    torch_threads_for,
)


def test_no_launcher_variables_means_one_process() -> None:
    info = discover_distributed({})
    assert info == DistributedInfo(rank=0, local_rank=0, world_size=1, local_world_size=1)
    assert not info.is_distributed and info.is_main


def test_torchrun_variables_are_read() -> None:
    env = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
           "GROUP_RANK": "1"}
    info = discover_distributed(env)
    assert (info.rank, info.local_rank, info.world_size, info.local_world_size,
            info.node_rank) == (3, 1, 4, 2, 1)
    assert info.is_distributed and not info.is_main


def test_local_world_defaults_to_the_world_on_one_node() -> None:
    info = discover_distributed({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    assert info.local_world_size == 2


@pytest.mark.parametrize("env, needle", [
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE"),
    ({"WORLD_SIZE": "2", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "2"}, "LOCAL_RANK=2"),
])
def test_inconsistent_variables_are_refused(env: dict[str, str], needle: str) -> None:
    with pytest.raises(DistributedError, match=needle):
        discover_distributed(env)


@pytest.mark.parametrize("cores, procs, expected", [(2, 2, 1), (16, 2, 8), (16, 3, 5),
                                                    (2, 4, 1), (None, 1, 1), (8, 1, 8)])
def test_threads_share_the_cores_equally(cores: int | None, procs: int, expected: int) -> None:
    assert torch_threads_for(cores, procs) == expected


def test_a_single_process_group_needs_no_torch_distributed() -> None:
    with ControlGroup(DistributedInfo(), timeout_s=1) as group:
        group.barrier("anything")  # returns at once
        assert group.broadcast({"id": "x"}) == {"id": "x"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(rank: int, port: int, queue, late_s: float) -> None:  # type: ignore[no-untyped-def]
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)})
    info = discover_distributed()
    with ControlGroup(info, timeout_s=3) as group:
        value = group.broadcast(f"id-from-{os.getpid()}" if rank == 0 else None)
        group.barrier("first")
        if rank == 1:
            time.sleep(late_s)  # misses the next barrier's timeout
            queue.put((rank, value, None))
            return
        try:
            group.barrier("second")
            queue.put((rank, value, None))
        except DistributedError as exc:
            queue.put((rank, value, str(exc)))


@pytest.mark.slow
def test_two_ranks_share_one_id_and_a_late_rank_fails_the_barrier_by_name() -> None:
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, port, queue, 6.0)) for r in (0, 1)]
    for p in procs:
        p.start()
    got = {}
    for _ in procs:
        rank, value, error = queue.get(timeout=60)
        got[rank] = (value, error)
    for p in procs:
        p.join(timeout=30)
    assert got[0][0] == got[1][0] and str(got[0][0]).startswith("id-from-")
    error = got[0][1]
    assert error is not None and "barrier 'second'" in error and "Ranks 1 failed" in error
