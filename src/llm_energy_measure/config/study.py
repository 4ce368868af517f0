"""Study configs: a sweep of experiments over one base config, and how to run it.

A study file (YAML or JSON, read like experiment configs) names a base experiment config
(``base``: a path relative to the study file, or ``base_config``: an inline mapping), a
Cartesian ``sweep`` over dotted keys and/or an explicit list of ``points`` (or, instead, a
``search`` for the highest load meeting the SLO), and the run policy: repetitions
(``cycles``), run ``order``, cool-downs, per-run timeout, retries and executor.
Loading is pure: nothing here reads devices or starts anything.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llm_energy_measure.config.errors import format_validation_error
from llm_energy_measure.config.overrides import check_override_key, split_key
from llm_energy_measure.constants import MAX_SWEEP_POINTS
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.security import control_character

StudyOrder = Literal["sequential", "interleaved", "shuffled"]
#: ``submitit-local`` runs the Slurm submission code with submitit's LocalExecutor (this host).
StudyExecutorName = Literal["local", "slurm", "submitit-local"]
STUDY_EXECUTORS: tuple[str, ...] = ("local", "slurm", "submitit-local")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CooldownUntilIdleConfig(_Strict):
    """Wait between runs until every GPU is back within ``temperature_margin_c`` of the idle
    temperature measured at study start, for at most ``timeout_s``. GPU hosts only."""

    enabled: bool = False
    temperature_margin_c: float = Field(3.0, gt=0, le=100)
    timeout_s: float = Field(120.0, ge=0, le=86_400)
    poll_interval_s: float = Field(2.0, gt=0, le=600)


class SlurmConfig(_Strict):
    """Slurm resources per run (one job per run, or one array task per run)."""

    partition: str | None = None
    time_min: int = Field(60, ge=1, le=525_600, description="job time limit in minutes")
    gpus_per_node: int = Field(1, ge=0, le=64)
    cpus_per_task: int = Field(8, ge=1, le=1024)
    mem_gb: float = Field(32.0, gt=0, le=65_536)
    array_parallelism: int = Field(8, ge=1, le=100_000, description="array tasks at once")
    job_array: bool = Field(True, description="submit all runs as one job array (parallel, "
                            "no order or cool-down between runs); false: one job per run, "
                            "in order, waiting for each")
    additional_parameters: dict[str, Any] = Field(default_factory=dict,
                                                  description="extra sbatch options")


SearchKey = Literal["load.rate_per_s", "load.concurrency"]


class SearchConfig(_Strict):
    """Find the highest ``key`` in [``low``, ``high``] whose run meets the base config's
    ``slo`` (bisection; see ``orchestration.study.search``).

    ``load.rate_per_s`` (requests/s; the base's ``load.arrival`` must be poisson or
    constant) or ``load.concurrency`` (integers; arrival ``concurrency``). The search stops
    when the bracket (highest value met, lowest value failed) is within ``tolerance`` of its
    lower end (relative; for concurrency also when they are adjacent integers), or after
    ``max_probes`` runs (the two bounds included).
    """

    key: SearchKey
    low: float = Field(gt=0, le=100_000)
    high: float = Field(gt=0, le=100_000)
    max_probes: int = Field(6, ge=2, le=64, description="runs at most, the bounds included")
    tolerance: float = Field(0.1, gt=0, lt=1, description="relative width of the final "
                             "bracket")

    @model_validator(mode="after")
    def _bounds(self) -> SearchConfig:
        if self.low >= self.high:
            raise ValueError(f"search.low ({self.low:g}) must be below search.high "
                             f"({self.high:g})")
        if self.key == "load.concurrency" and not (self.low.is_integer()
                                                   and self.high.is_integer()):
            raise ValueError("search.low and search.high must be whole numbers with key "
                             "load.concurrency, e.g. low: 1, high: 64")
        return self

    @property
    def integer(self) -> bool:
        """Whether the searched values are integers (concurrency)."""
        return self.key == "load.concurrency"


class StudyConfig(_Strict):
    """One study: a base experiment config, the points to run, and the run policy."""

    study_name: str = Field(min_length=1, max_length=128)
    base: str | None = Field(None, description="base experiment config file, relative to the "
                             "study file")
    base_config: dict[str, Any] | None = Field(None, description="inline base experiment config")
    sweep: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values "
                                        "(Cartesian product)")
    points: list[dict[str, Any]] = Field(default_factory=list, description="explicit override "
                                         "mappings, run in addition to the grid")
    cycles: int = Field(1, ge=1, le=1000, description="runs of every point (with a "
                        "search: the cycles of each probe's experiment)")
    order: StudyOrder = "interleaved"
    seed: int = Field(0, ge=0, description="seed of the shuffled order")
    cooldown_s: float = Field(0.0, ge=0, le=86_400, description="pause between runs")
    cooldown_until_idle: CooldownUntilIdleConfig = CooldownUntilIdleConfig()
    timeout_s: float | None = Field(None, gt=0, description="per run; null: no limit")
    retries: int = Field(0, ge=0, le=100, description="extra attempts of a run that failed "
                         "transiently")
    executor: StudyExecutorName = "local"
    slurm: SlurmConfig = SlurmConfig()
    search: SearchConfig | None = Field(None, description="find the highest load meeting "
                                        "the SLO instead of running a sweep")

    @model_validator(mode="after")
    def _checks(self) -> StudyConfig:
        char = control_character(self.study_name)
        if char is not None:
            raise ValueError(f"study_name: control character U+{ord(char):04X} is not allowed; "
                             "write it as plain text")
        if (self.base is None) == (self.base_config is None):
            raise ValueError(
                "give exactly one of 'base' (a config file path) and 'base_config' "
                "(an inline config mapping)"
            )
        if self.search is not None and (self.sweep or self.points):
            raise ValueError("search: a study with a search has no sweep or points (each "
                             "probe is a point); split them into two studies")
        for key, values in self.sweep.items():
            if not values:
                raise ValueError(f"sweep.{key}: give at least one value")
        grid = math.prod(len(values) for values in self.sweep.values()) if self.sweep else 0
        if grid + len(self.points) > MAX_SWEEP_POINTS:
            sizes = " x ".join(str(len(values)) for values in self.sweep.values()) or "0"
            raise ValueError(
                f"the study has {grid + len(self.points)} points (sweep {sizes} = {grid}, "
                f"plus {len(self.points)} listed), more than the limit of {MAX_SWEEP_POINTS}; "
                "sweep fewer values or split it into several studies"
            )
        return self


def validate_study(data: dict[str, Any], source: str = "study") -> StudyConfig:
    """A StudyConfig from a mapping, or ConfigurationError with one line naming the key.

    Sweep and point keys are checked against the experiment config (did-you-mean on typos);
    their values are checked later, point by point, when the study is expanded.
    """
    try:
        study = StudyConfig.model_validate(data)
    except ValidationError as exc:
        message = format_validation_error(exc, lambda loc: source, root=StudyConfig)
        raise ConfigurationError(message) from exc
    keyed = [("sweep", key) for key in study.sweep]
    keyed += [(f"points[{i}]", key) for i, point in enumerate(study.points) for key in point]
    for where, key in keyed:
        try:
            check_override_key(split_key(key))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{source}: {where}: {exc}") from exc
    return study


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate a study file (YAML/JSON). ``base`` is returned as written; resolve it
    with ``resolve_base_path``."""
    from llm_energy_measure.config.loader import read_config_file

    return validate_study(read_config_file(path), source=str(path))


def resolve_base_path(study: StudyConfig, study_path: str | Path) -> Path | None:
    """The base config file, resolved against the study file's folder (None for base_config).

    Raises ConfigurationError naming the key when the file does not exist.
    """
    if study.base is None:
        return None
    base = Path(os.path.normpath(Path(study_path).parent / Path(study.base).expanduser()))
    if not base.is_file():
        raise ConfigurationError(
            f"{study_path}: base: '{study.base}' not found (looked for {base}); "
            "give a path relative to the study file"
        )
    return base
