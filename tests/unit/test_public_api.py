"""The documented imports and top-level modules keep working (and stay cheap to import)."""

from __future__ import annotations

import subprocess
import sys


def test_documented_imports() -> None:
    from llm_energy_measure.config import ExperimentConfig, load_config
    from llm_energy_measure.core import load_model_tokenizer, run_inference
    from llm_energy_measure.domain import AggregatedResult, RawProcessResult
    from llm_energy_measure.orchestration import ExperimentOrchestrator, run_experiment
    from llm_energy_measure.results import FileSystemRepository

    assert ExperimentConfig().engine == "transformers"
    assert callable(load_config) and callable(run_experiment)
    assert run_inference.__module__ == "llm_energy_measure.core.engines.transformers"
    assert load_model_tokenizer.__module__ == "llm_energy_measure.core.model_loader"
    assert {"experiment_id", "engine", "inference"} <= set(AggregatedResult.model_fields)
    assert {"process_index", "engine", "requests"} <= set(RawProcessResult.model_fields)
    assert ExperimentOrchestrator.__name__ == "ExperimentOrchestrator"
    assert FileSystemRepository.__module__ == "llm_energy_measure.storage.repository"


def test_top_level_modules_and_their_names() -> None:
    from llm_energy_measure import (
        cli,
        constants,
        exceptions,
        logging,
        protocols,
        resilience,
        security,
    )

    assert {"run", "aggregate"} <= {c.callback.__name__ for c in cli.app.registered_commands
                                    if c.callback is not None}
    assert {g.name for g in cli.app.registered_groups} >= {"config", "results", "study"}
    assert constants.DEFAULT_MODEL.startswith("builtin:")
    assert issubclass(exceptions.ConfigurationError, exceptions.LLMBenchError)
    assert issubclass(exceptions.InferenceError, exceptions.LLMBenchError)
    assert issubclass(exceptions.EnergyTrackingError, exceptions.LLMBenchError)
    assert callable(logging.setup_logging)
    assert {"InferenceEngine", "EnergyBackend", "ResultsRepository"} <= set(protocols.__all__)
    assert callable(resilience.retrying) and callable(resilience.CircuitBreaker)
    assert security.sanitize_experiment_id("run-1") == "run-1"
    assert security.is_safe_path("/a", "/a/b") and not security.is_safe_path("/a", "/b")


def test_importing_the_package_layers_does_not_import_torch() -> None:
    code = ("import sys, llm_energy_measure.config, llm_energy_measure.results, "
            "llm_energy_measure.orchestration, llm_energy_measure.state, "
            "llm_energy_measure.core.engines, llm_energy_measure.protocols; "
            "print(sorted(m for m in ('torch', 'transformers', 'accelerate', 'codecarbon') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_entry_point_runs_as_a_module() -> None:
    out = subprocess.run([sys.executable, "-m", "llm_energy_measure.entrypoint", "--version"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("0.1.0"), out.stderr[-500:]
