"""Config of engine openai: endpoint, load and server sections, and their conflicts; each
mistake is one clear line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_energy_measure.config import load_config, validate_config
from llm_energy_measure.config.hashing import config_hash
from llm_energy_measure.exceptions import ConfigurationError

BASE = {"engine": "openai", "endpoint": {"base_url": "http://127.0.0.1:8000/v1"}}


def _error(data: dict[str, object]) -> str:
    with pytest.raises(ConfigurationError) as info:
        validate_config(data)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_are_one_request_in_flight() -> None:
    config = validate_config(BASE)
    assert config.load.arrival == "concurrency" and config.load.concurrency == 1
    assert config.endpoint.api == "completions" and config.server is None


@pytest.mark.parametrize(("data", "fragment"), [
    ({"engine": "openai"}, "needs endpoint.base_url"),
    ({**BASE, "server": {"engine": "vllm"}}, "remove one of them"),
    ({**BASE, "load": {"arrival": "poisson"}}, "load.rate_per_s is required"),
    ({**BASE, "load": {"arrival": "concurrency", "concurrency": 2, "rate_per_s": 1}},
     "load.rate_per_s is only read"),
    ({**BASE, "load": {"arrival": "constant", "rate_per_s": 1, "num_requests": 5,
                       "duration_s": 3}}, "set one of load.num_requests and load.duration_s"),
    ({**BASE, "endpoint": {"base_url": "ftp://host/v1"}}, "http:// or https:// URL"),
    ({**BASE, "endpoint": {"base_url": "http://user:pw@host/v1"}}, "without credentials"),
    ({**BASE, "endpoint": {"base_url": "http://h/v1", "api_key_env": "sk-abc def"}},
     "name of an environment variable"),
    ({**BASE, "launch": {"num_processes": 2}, "prompts": {"num_prompts": 4}},
     "one load generator"),
    ({**BASE, "traffic": {"enabled": True}}, "the load section sets the arrivals"),
    ({"engine": "openai", "server": {"engine": "command"}}, "server.command is required"),
    ({"engine": "openai", "server": {"engine": "vllm", "command": ["x"]}},
     "server.command is only read"),
    ({**BASE, "energy": {"backend": "prometheus"}}, "energy.prometheus (url, metric)"),
    ({**BASE, "slo": {}}, "at least one target"),
    ({**BASE, "slo": {"ttft_ms": {"p98": 100}}}, "slo.ttft_ms"),
])
def test_mistakes_are_one_line_naming_the_key(data: dict[str, object], fragment: str) -> None:
    assert fragment in _error(data)


def test_serving_sections_do_not_change_the_hash_of_other_engines() -> None:
    plain = validate_config({})
    with_load = validate_config({"load": {"arrival": "concurrency", "concurrency": 8}})
    assert config_hash(plain) == config_hash(with_load)
    served = validate_config(BASE)
    more = validate_config({**BASE, "load": {"arrival": "concurrency", "concurrency": 8}})
    assert config_hash(served) != config_hash(more)
    # An SLO judges a result; it changes nothing measured.
    assert config_hash(served) == config_hash(validate_config({**BASE, "slo": {
        "ttft_ms": {"p99": 500}}}))


@pytest.mark.parametrize("name", ["serving-vllm-cpu.yaml", "serving-endpoint.yaml"])
def test_serving_examples_load(name: str) -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "examples" / name)
    assert config.engine == "openai"
