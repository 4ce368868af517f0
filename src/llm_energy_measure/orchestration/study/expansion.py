"""Expanding a study into points and runs (pure: nothing is run or written here).

Points, in expansion order: the Cartesian product of ``sweep`` (keys in the order written,
the last key varying fastest), then every mapping of ``points``. Each point is the base config
with its overrides applied and is validated on its own: an invalid point (or one identical to
an earlier point) is kept in the manifest with ``valid: false`` and its error, and skipped.
Point ids are ``p000``, ``p001``, ... in expansion order, invalid points included.

Runs are (point, cycle) pairs in the study's ``order``:

- ``sequential``: p0c0, p0c1, ..., p1c0, p1c1, ...
- ``interleaved``: p0c0, p1c0, ..., p0c1, p1c1, ... (drift in time spreads over all points)
- ``shuffled``: a permutation of the sequential list drawn from ``random.Random(seed)``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_energy_measure.config.hashing import config_hash
from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.config.overrides import apply_overrides
from llm_energy_measure.config.study import StudyConfig, StudyOrder, resolve_base_path
from llm_energy_measure.config.validation import validate_config
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.state.study_models import StudyPoint, StudyRun

#: Label of a point without overrides (a study with neither sweep nor points).
BASE_LABEL = "base"
STUDY_HASH_LENGTH = 16


@dataclass(frozen=True)
class StudyPlan:
    """An expanded study: every point (valid or not), the valid points' configs, the runs."""

    points: list[StudyPoint]
    configs: dict[str, ExperimentConfig]
    runs: list[StudyRun]
    study_hash: str


def point_overrides(study: StudyConfig) -> list[dict[str, Any]]:
    """Override mappings of every point, in expansion order (grid first, then ``points``)."""
    keys = list(study.sweep)
    grid = [dict(zip(keys, values, strict=True))
            for values in itertools.product(*(study.sweep[k] for k in keys))] if keys else []
    found = grid + [dict(point) for point in study.points]
    return found or [{}]


def _render(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def point_label(overrides: Mapping[str, Any]) -> str:
    """``{"batching.batch_size": 4, "model.precision": "bfloat16"}`` ->
    ``"batching.batch_size=4, model.precision=bfloat16"`` (``"base"`` when empty)."""
    if not overrides:
        return BASE_LABEL
    return ", ".join(f"{key}={_render(value)}" for key, value in overrides.items())


def point_config(
    base_data: Mapping[str, Any], overrides: Mapping[str, Any], *, base_source: str, point_id: str
) -> ExperimentConfig:
    """The base config with ``overrides`` applied, validated (ConfigurationError if invalid;
    errors in an overridden key name the point, others the base config)."""
    data = apply_overrides(base_data, overrides)
    origins = {tuple(k.strip() for k in key.split(".")): f"point {point_id}" for key in overrides}
    return validate_config(data, source=base_source, origins=origins)


def expand_points(
    study: StudyConfig, base_data: Mapping[str, Any], *, base_source: str
) -> tuple[list[StudyPoint], dict[str, ExperimentConfig]]:
    """Every point with its validity, and the configs of the valid ones (by point id)."""
    points: list[StudyPoint] = []
    configs: dict[str, ExperimentConfig] = {}
    seen: dict[str, str] = {}
    for index, overrides in enumerate(point_overrides(study)):
        point_id = f"p{index:03d}"
        label = point_label(overrides)
        try:
            config = point_config(base_data, overrides, base_source=base_source,
                                  point_id=point_id)
        except ConfigurationError as exc:
            points.append(StudyPoint(point_id=point_id, label=label, overrides=overrides,
                                     valid=False, error=str(exc)))
            continue
        digest = config_hash(config)
        if digest in seen:
            points.append(StudyPoint(
                point_id=point_id, label=label, overrides=overrides, config_hash=digest,
                valid=False, error=f"same config as {seen[digest]} (config hash {digest})"))
            continue
        seen[digest] = point_id
        configs[point_id] = config
        points.append(StudyPoint(point_id=point_id, label=label, overrides=overrides,
                                 config_hash=digest))
    return points, configs


def run_order(
    point_ids: Sequence[str], cycles: int, order: StudyOrder, seed: int
) -> list[tuple[str, int]]:
    """(point id, cycle) of every run, in the order they are run (see the module doc)."""
    sequential = [(p, c) for p in point_ids for c in range(cycles)]
    if order == "sequential":
        return sequential
    if order == "interleaved":
        return [(p, c) for c in range(cycles) for p in point_ids]
    shuffled = list(sequential)
    random.Random(seed).shuffle(shuffled)
    return shuffled


def study_hash(config_hashes: Sequence[str], cycles: int, order: StudyOrder, seed: int) -> str:
    """First 16 hex digits of the sha256 of the canonical JSON of the valid points' config
    hashes (in expansion order), cycles, order and seed: equal studies hash equal."""
    canonical = {"config_hashes": list(config_hashes), "cycles": cycles, "order": order,
                 "seed": seed}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:STUDY_HASH_LENGTH]


def plan_study(study: StudyConfig, base_data: Mapping[str, Any], *, base_source: str) -> StudyPlan:
    """Expand ``study``; ConfigurationError (the first point's error) when no point is valid."""
    points, configs = expand_points(study, base_data, base_source=base_source)
    valid = [p for p in points if p.valid]
    if not valid:
        first = points[0]
        more = f" (and {len(points) - 1} more invalid point(s))" if len(points) > 1 else ""
        raise ConfigurationError(f"no valid point in study {study.study_name!r}: "
                                 f"{first.point_id}: {first.error}{more}")
    order = run_order([p.point_id for p in valid], study.cycles, study.order, study.seed)
    runs = [StudyRun(point_id=p, cycle=c, order_index=i) for i, (p, c) in enumerate(order)]
    digest = study_hash([p.config_hash or "" for p in valid], study.cycles, study.order,
                        study.seed)
    return StudyPlan(points=points, configs=configs, runs=runs, study_hash=digest)


def base_config_data(study: StudyConfig, study_path: str | Path | None) -> tuple[dict[str, Any],
                                                                             str]:
    """The base experiment settings (``_extends`` merged, not validated) and their source."""
    from llm_energy_measure.config.loader import load_config_dict

    if study.base_config is not None:
        return dict(study.base_config), f"{study_path or 'study'}: base_config"
    if study_path is None:
        raise ConfigurationError("base: a study with a base file must be loaded from a file")
    base = resolve_base_path(study, study_path)
    assert base is not None
    return load_config_dict(base), str(base)


def run_experiment_id(study_id: str, point_id: str, cycle: int) -> str:
    """The experiment id of one run: fixed per study, point and cycle, so a resumed study
    never runs a (point, cycle) twice under two ids."""
    return f"{study_id}-{point_id}-c{cycle}"
