"""Snapshot of the machine a result was measured on (read-only)."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from llm_energy_measure.domain import EnvironmentInfo

if TYPE_CHECKING:
    from llm_energy_measure.core.devices import GPUs


def _pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _total_memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:  # pragma: no cover - psutil is a run dependency
        return None


def collect_environment(gpus: GPUs | None = None) -> EnvironmentInfo:
    """Devices, driver, CUDA, library versions, CPU and OS. Never changes any setting.

    ``gpus``: the run's probed GPU collection (not closed here); probed and closed here
    when None.

    Taken before the measurement starts; the orchestrator fills in ``energy_counters`` (the
    hardware counters the energy backend used) at the end.
    """
    from llm_energy_measure.core.devices import (
        cpu_model_name,
        cuda_driver_version,
        driver_version,
        get_gpus,
        gpu_infos,
    )

    cuda_version: str | None = None
    torch_threads: int | None = None
    try:
        import torch

        cuda_version = torch.version.cuda
        torch_threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    probed = get_gpus() if gpus is None else None
    visible = gpus if gpus is not None else probed
    assert visible is not None
    try:
        infos = gpu_infos(visible)
        driver = driver_version(visible)
        cuda_driver = cuda_driver_version(visible)
    finally:
        if probed is not None:
            probed.close()
    return EnvironmentInfo(
        hostname=socket.gethostname(),
        os=f"{platform.system()} {platform.release()}",
        python_version=sys.version.split()[0],
        package_version=_pkg_version("llm-energy-measure") or "unknown",
        cpu_model=cpu_model_name(),
        cpu_count=os.cpu_count(),
        total_memory_bytes=_total_memory_bytes(),
        torch_version=_pkg_version("torch"),
        transformers_version=_pkg_version("transformers"),
        accelerate_version=_pkg_version("accelerate"),
        cuda_version=cuda_version or cuda_driver,
        driver_version=driver,
        gpus=infos,
        torch_num_threads=torch_threads,
    )
