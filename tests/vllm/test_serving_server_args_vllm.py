"""The managed server's command line is one vLLM's own api_server parser accepts, with each
setting landing on the intended engine argument (contract with the installed vLLM)."""

from __future__ import annotations

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.serving.server_args import vllm_server_command


def _parser():  # type: ignore[no-untyped-def]
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser())


def test_vllm_parses_the_command() -> None:
    config = ExperimentConfig.model_validate({
        "engine": "openai", "model": {"name": "org/m", "precision": "bfloat16"}, "seed": 3,
        "server": {"engine": "vllm"},
        "vllm": {"max_model_len": 512, "gpu_memory_utilization": 0.5, "max_num_seqs": 8,
                 "max_num_batched_tokens": 1024, "enable_prefix_caching": False,
                 "quantization": "fp8", "enforce_eager": True, "kv_cache_space_gib": 2},
    })
    command = vllm_server_command(config, model_path="/m", host="127.0.0.1", port=8001,
                                  python="python", revision="abc")
    assert command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    args = _parser().parse_args(command[3:])
    assert (args.model, args.served_model_name, args.host, args.port) == (
        "/m", ["org/m"], "127.0.0.1", 8001)
    assert (args.dtype, args.seed, args.revision) == ("bfloat16", 3, "abc")
    assert (args.max_model_len, args.gpu_memory_utilization, args.max_num_seqs,
            args.max_num_batched_tokens) == (512, 0.5, 8, 1024)
    assert args.quantization == "fp8" and args.enforce_eager is True
    assert args.enable_prefix_caching is False
    assert args.kv_cache_memory_bytes == 2 * 1024**3
    assert args.disable_log_stats is False  # the /metrics counters are kept
