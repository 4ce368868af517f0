"""torch.distributed plumbing for the ranks of a launched experiment.

Rank, local rank and world size come from the variables torchrun / ``accelerate launch`` set
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``). The ranks only
exchange control messages (barriers, the experiment id), never tensors, so every control
operation runs on a gloo group, on CPU and GPU machines alike; gloo's ``monitored_barrier``
names the ranks that did not arrive when a barrier times out.

torch is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_energy_measure.exceptions import DistributedError

#: Overrides the torch intra-op threads of every rank (default: the host's cores shared
#: equally among its ranks).
THREADS_ENV = "LLM_ENERGY_MEASURE_TORCH_THREADS"


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process sits in the launched world (all ranks zero-based)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    node_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Global rank 0: creates the experiment id when none was given."""
        return self.rank == 0


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise DistributedError(
            f"environment variable {name}={raw!r} is not an integer; it is set by torchrun / "
            "accelerate launch, do not set it by hand"
        ) from None


def discover_distributed(env: Mapping[str, str] | None = None) -> DistributedInfo:
    """Rank facts from the launcher's environment variables (a single process without them).

    Raises DistributedError when the values are inconsistent (e.g. RANK >= WORLD_SIZE).
    """
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local_rank = _env_int(env, "LOCAL_RANK", 0)
    local_world = _env_int(env, "LOCAL_WORLD_SIZE", world)
    node_rank = _env_int(env, "GROUP_RANK", _env_int(env, "NODE_RANK", 0))
    if world < 1 or not 0 <= rank < world:
        raise DistributedError(f"RANK={rank} is outside WORLD_SIZE={world}")
    if local_world < 1 or not 0 <= local_rank < local_world:
        raise DistributedError(f"LOCAL_RANK={local_rank} is outside LOCAL_WORLD_SIZE={local_world}")
    return DistributedInfo(rank, local_rank, world, local_world, node_rank)


def torch_threads_for(cpu_count: int | None, local_world_size: int) -> int:
    """Intra-op threads per process when ``local_world_size`` processes share this host's
    ``cpu_count`` cores: an equal share, at least 1."""
    return max(1, (cpu_count or 1) // max(1, local_world_size))


class ControlGroup:
    """Barriers and object broadcast among the ranks, over gloo.

    ``timeout_s`` bounds every barrier: a rank that does not arrive within it makes the
    barrier raise DistributedError on the ranks that did (naming the missing ranks where gloo
    reports them). A single-process world needs no process group: every call returns at once.
    """

    def __init__(self, info: DistributedInfo, timeout_s: float) -> None:
        self.info = info
        self.timeout_s = timeout_s
        self._group: Any = None
        self._owns_default = False

    def __enter__(self) -> ControlGroup:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Join the process group (env:// rendezvous set up by the launcher)."""
        if not self.info.is_distributed:
            return
        import torch.distributed as dist

        timeout = datetime.timedelta(seconds=self.timeout_s)
        try:
            if not dist.is_initialized():
                dist.init_process_group(backend="gloo", timeout=timeout)
                self._owns_default = True
            if dist.get_backend() == "gloo":
                self._group = dist.group.WORLD
            else:  # a process group made by someone else (e.g. nccl): add a gloo one
                self._group = dist.new_group(backend="gloo", timeout=timeout)
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(
                f"rank {self.info.rank} could not join the process group: {exc}"
            ) from exc

    def barrier(self, label: str) -> None:
        """Wait until every rank reaches the barrier ``label``."""
        if self._group is None:
            return
        import torch.distributed as dist

        try:
            dist.monitored_barrier(
                group=self._group,
                timeout=datetime.timedelta(seconds=self.timeout_s),
                wait_all_ranks=True,
            )
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DistributedError(
                f"barrier '{label}' failed on rank {self.info.rank} after at most "
                f"{self.timeout_s:g} s: {first}"
            ) from exc

    def broadcast(self, value: Any, src: int = 0) -> Any:
        """``value`` of rank ``src`` on every rank (picklable objects)."""
        if self._group is None:
            return value
        import torch.distributed as dist

        box = [value if self.info.rank == src else None]
        try:
            dist.broadcast_object_list(box, src=src, group=self._group)
        except RuntimeError as exc:
            raise DistributedError(
                f"rank {self.info.rank} did not receive rank {src}'s broadcast: {exc}"
            ) from exc
        return box[0]

    def close(self) -> None:
        """Leave the process group if this object created it."""
        if self._owns_default:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._owns_default = False
        self._group = None
