"""A stable identity for what an experiment measures."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llm_energy_measure.config.models import ExperimentConfig

#: Fields left out of the hash because they do not change what is measured: names and output
#: places, latency objectives, the decoder preset (its values are already expanded into the
#: decoder fields), and per-machine launch details that differ between the machines of one
#: multi-node experiment.
HASH_EXCLUDED_FIELDS: dict[str, Any] = {
    "config_name": True,
    "slo": True,  # how a result is judged, not what is measured
    "results_dir": True,
    "decoder": {"preset"},
    "launch": {"machine_rank", "main_process_ip", "main_process_port", "process_timeout_s"},
}

HASH_LENGTH = 16


#: Engine-specific config sections, each read only by its engine: left out of the hash of an
#: experiment run by another engine (they change nothing it measures).
#: The ``vllm`` section also sets up a managed vLLM server of engine ``openai``.
ENGINE_SECTIONS: dict[str, frozenset[str]] = {
    "vllm": frozenset({"vllm", "openai"}),
    "endpoint": frozenset({"openai"}),
    "load": frozenset({"openai"}),
    "server": frozenset({"openai"}),
    "llama_cpp": frozenset({"llama_cpp"}),
}


def canonical_config(config: ExperimentConfig) -> dict[str, Any]:
    """The effective config as JSON-ready data, without the fields in HASH_EXCLUDED_FIELDS
    and without the sections of engines other than ``config.engine``."""
    data = config.model_dump(mode="json", exclude=HASH_EXCLUDED_FIELDS)
    for section, engines in ENGINE_SECTIONS.items():
        if config.engine not in engines:
            data.pop(section, None)
    # An unset energy source changes nothing measured: hashes stay those of configs written
    # before the key existed.
    if data.get("energy", {}).get("prometheus") is None:
        data.get("energy", {}).pop("prometheus", None)
    return data


def config_hash(config: ExperimentConfig) -> str:
    """First 16 hex digits of the sha256 of the canonical JSON of the effective config.

    Independent of key order, file format, defaults written out or left implicit, ``1`` vs
    ``1.0`` for float fields, and the fields in HASH_EXCLUDED_FIELDS.
    """
    text = json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]
