"""Experiment configuration: models, loading (YAML/JSON, ``_extends``), overrides, checks.

Precedence (highest first): CLI flags/overrides > environment (results directory only) >
config file (child over its ``_extends`` parents) > model defaults. See ``config.precedence``.
Importing this package does not import torch or any other heavy dependency.
"""

from llm_energy_measure.config.hashing import canonical_config, config_hash
from llm_energy_measure.config.loader import load_config, load_config_dict, read_config_file
from llm_energy_measure.config.merge import deep_merge
from llm_energy_measure.config.models import (
    DECODER_PRESETS,
    BaselineConfig,
    BatchingConfig,
    DecoderConfig,
    EnergyConfig,
    ExperimentConfig,
    InferenceConfig,
    LaunchConfig,
    LlamaCppConfig,
    ModelConfig,
    PromptsConfig,
    QuantizationConfig,
    ShardingConfig,
    TrafficConfig,
    VllmConfig,
    WarmupConfig,
)
from llm_energy_measure.config.overrides import apply_overrides, parse_overrides
from llm_energy_measure.config.precedence import effective_results_dir
from llm_energy_measure.config.validation import config_warnings, validate_config

__all__ = [
    "DECODER_PRESETS",
    "BaselineConfig",
    "BatchingConfig",
    "DecoderConfig",
    "EnergyConfig",
    "ExperimentConfig",
    "InferenceConfig",
    "LaunchConfig",
    "LlamaCppConfig",
    "ModelConfig",
    "PromptsConfig",
    "QuantizationConfig",
    "ShardingConfig",
    "TrafficConfig",
    "VllmConfig",
    "WarmupConfig",
    "apply_overrides",
    "canonical_config",
    "config_hash",
    "config_warnings",
    "deep_merge",
    "effective_results_dir",
    "load_config",
    "load_config_dict",
    "parse_overrides",
    "read_config_file",
    "validate_config",
]
