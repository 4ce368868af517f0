"""The vLLM engine: offline ``vllm.LLM.generate``, continuous batching by vLLM's scheduler.

Loading: ``vllm.LLM`` with the ``vllm`` config section (dtype from ``model.precision``, seed
from ``seed``) and ``disable_log_stats=False``, so that every ``RequestOutput.metrics`` carries
the request's engine timestamps. ``vllm`` is imported here only; a missing one is a
MissingExtraError naming ``pip install "llm-energy-measure[vllm]"``.

Process model (``vllm.multiprocessing``): by default vLLM runs its engine core in a child
process (and workers in further ones). On CPU this engine runs it in this process instead
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``) unless told otherwise: the engine starts in seconds
rather than tens of seconds, there is no spawned child to keep alive, and the process's peak
RSS then covers the whole engine. On GPU vLLM's default (a separate engine-core process, which
overlaps scheduling and output processing with GPU work) is kept, since that is how vLLM is
run in practice. Either way vLLM's global reseed of ``random`` / numpy / torch is undone after
load, so it cannot leak into anything this process draws later.

Window (``InferenceOutput.window``): opens right before the first ``generate`` call, after
every prompt is tokenized, and closes right after the last one returns. There is nothing to
synchronize: ``generate`` returns only once every request is finished, and on GPU the work
runs in vLLM's worker processes, where a ``torch.cuda.synchronize`` of this process would not
reach. Submission (``vllm.submission``): every prompt in one call (vLLM schedules them all at
once, continuous batching), or in waves of ``vllm.wave_size``.

Per request: input tokens = ``len(prompt_token_ids)``; output tokens = ``len(token_ids)`` of
its completion (up to and including EOS). TTFT = ``metrics.first_token_ts`` - submission;
TPOT = (``last_token_ts`` - ``first_token_ts``) / (tokens - 1); completion (its own last
token) = ``last_token_ts`` - submission; e2e = when its ``generate`` call returned -
submission (what the caller sees: offline ``generate`` returns every request of a call
together). Submission is ``time.monotonic()`` right before its ``generate`` call: vLLM's
engine timestamps are ``time.monotonic()`` too (CLOCK_MONOTONIC is system-wide on Linux, so
this holds across vLLM's processes). The offline metrics hold only the first and last token
times, so ITL per token gap is not reported (``EngineInfo.unreported``). Without engine
timestamps, TTFT, TPOT and completion are null, with a note. The prefix cache is emptied
before every pass (warm-up and earlier cycles submit the same prompts).
"""

from __future__ import annotations

import importlib.util
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from llm_energy_measure.core.engines.base import EngineCapabilities, InferenceEngine
from llm_energy_measure.core.generation import new_token_limits
from llm_energy_measure.core.types import InferenceOutput, LoadedModel, Prompt
from llm_energy_measure.domain import (
    EngineInfo,
    MeasurementWarning,
    ModelInfo,
    QuantizationSpec,
    RequestRecord,
    Timestamps,
)
from llm_energy_measure.exceptions import (
    ConfigurationError,
    InferenceError,
    MissingExtraError,
    ModelLoadError,
)

if TYPE_CHECKING:
    from llm_energy_measure.config.models import DecoderConfig, ExperimentConfig, VllmConfig
    from llm_energy_measure.core.model_source import ModelSource

_GIB = 1024**3

#: Set for vLLM unless the user set them: its log goes to stderr (our CLI may print
#: machine-readable output on stdout) and only from warnings up.
_LOG_DEFAULTS = {"VLLM_LOGGING_STREAM": "ext://sys.stderr", "VLLM_LOGGING_LEVEL": "WARNING"}

_NO_METRICS = ("vLLM returned no per-request metrics (RequestOutput.metrics is None) for "
               "{n} request(s): their TTFT and ITL are null and their e2e is the duration "
               "of their generate call")


@dataclass
class VllmModel:
    """What ``LoadedModel.model`` holds for this engine.

    ``config`` is the model's Hugging Face config: the analytic FLOPs model reads the
    architecture from it (see ``core.compute_metrics.arch_spec_for``), as for transformers.
    """

    llm: Any
    config: Any
    platform: str  # vLLM's device type: "cpu", "cuda", ...
    in_process: bool


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def vllm_installed() -> bool:
    """True when a real ``vllm`` package is importable (a folder named ``vllm`` on the path,
    which Python would import as an empty namespace package, does not count)."""
    spec = importlib.util.find_spec("vllm")
    return spec is not None and spec.origin not in (None, "namespace")


def import_vllm() -> Any:
    """The ``vllm`` module (configured to log to stderr, warnings only, unless set)."""
    if not vllm_installed():
        raise MissingExtraError("vllm", "vllm", "engine 'vllm'")
    for key, value in _LOG_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        import vllm
    except Exception as exc:
        raise ConfigurationError(
            f"vllm is installed but cannot be imported: {_first_line(exc)}"
        ) from exc
    return vllm


# --------------------------------------------------------------------------- loading


def llm_kwargs(config: ExperimentConfig, source: ModelSource) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM`` for ``config`` (options left None are not passed,
    so vLLM's own defaults apply)."""
    v = config.vllm
    kwargs: dict[str, Any] = {
        "model": source.location,
        "dtype": config.model.precision,
        "seed": config.seed,
        "trust_remote_code": config.model.trust_remote_code,
        "tensor_parallel_size": v.tensor_parallel_size,
        "pipeline_parallel_size": v.pipeline_parallel_size,
        "enforce_eager": v.enforce_eager,
        "disable_log_stats": False,  # LLM's default (True) leaves RequestOutput.metrics None
    }
    if source.hub_repo is not None and source.revision is not None:
        kwargs["revision"] = source.revision
    optional = {
        "max_model_len": v.max_model_len,
        "gpu_memory_utilization": v.gpu_memory_utilization,
        "max_num_seqs": v.max_num_seqs,
        "max_num_batched_tokens": v.max_num_batched_tokens,
        "enable_prefix_caching": v.enable_prefix_caching,
        "quantization": v.quantization,
    }
    kwargs.update({k: value for k, value in optional.items() if value is not None})
    if v.kv_cache_space_gib is not None:
        kwargs["kv_cache_memory_bytes"] = v.kv_cache_space_gib * _GIB
    return kwargs


def engine_environment(v: VllmConfig, platform: str) -> dict[str, str]:
    """Environment variables vLLM reads while it builds the engine, for ``v`` on ``platform``.

    On CPU ``VLLM_CPU_KVCACHE_SPACE`` (GiB) would override ``kv_cache_memory_bytes``, so it is
    set to the configured size (a stray value in the user's environment cannot change it).
    """
    in_process = not v.multiprocessing if v.multiprocessing is not None else platform == "cpu"
    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0" if in_process else "1"}
    if platform == "cpu" and v.kv_cache_space_gib is not None:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(v.kv_cache_space_gib)
    return env


@contextmanager
def _global_random_state_kept() -> Iterator[None]:
    """Restore the global ``random`` / numpy / torch (CPU) generators when the block exits:
    vLLM seeds them all with its own seed, in this process when it runs in-process."""
    import numpy as np
    import torch

    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


def _device(platform: str, config: ExperimentConfig) -> str:
    """``LoadedModel.device`` for vLLM on ``platform``; refuses a ``model.device`` it cannot
    honour. Several GPUs (tensor/pipeline parallel) give ``auto``: every visible GPU."""
    requested = config.model.device
    if requested == "cuda" and platform != "cuda":
        raise ConfigurationError(
            f"model.device is 'cuda' but the installed vLLM runs on '{platform}'; install "
            'the CUDA build (pip install "llm-energy-measure[vllm]") or set model.device: auto'
        )
    if requested == "cpu" and platform != "cpu":
        raise ConfigurationError(
            f"model.device is 'cpu' but the installed vLLM is a '{platform}' build; set "
            "model.device: auto, or install vLLM's CPU build (bash scripts/setup_vllm.sh)"
        )
    if platform == "cpu":
        return "cpu"
    world = config.vllm.tensor_parallel_size * config.vllm.pipeline_parallel_size
    return "cuda:0" if world == 1 else "auto"


def _visible_gpu_warning(device: str, config: ExperimentConfig) -> list[MeasurementWarning]:
    """With several vLLM workers, energy covers every visible GPU: warn when more are visible
    than vLLM uses (they would be counted although idle)."""
    if device != "auto":
        return []
    import torch

    world = config.vllm.tensor_parallel_size * config.vllm.pipeline_parallel_size
    visible = torch.cuda.device_count()
    if visible <= world:
        return []
    return [MeasurementWarning(
        code="vllm_idle_gpus_measured",
        message=f"vLLM uses {world} GPU(s) but {visible} are visible: energy covers all of "
                f"them; set CUDA_VISIBLE_DEVICES to the {world} GPU(s) vLLM should use")]


def describe_vllm_model(
    source: ModelSource, config: ExperimentConfig, display: str
) -> tuple[ModelInfo, Any]:
    """ModelInfo and the Hugging Face config of the model vLLM loads.

    The model is built from its config on torch's ``meta`` device (no weights, no memory), so
    that parameter counts, weight bytes and architecture come from ``describe_model`` exactly
    as for engine transformers.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from llm_energy_measure.core.model_loader import describe_model
    from llm_energy_measure.core.model_source import hub_commit
    from llm_energy_measure.core.placement import torch_dtype

    mc = config.model
    kwargs: dict[str, Any] = {"trust_remote_code": mc.trust_remote_code}
    if source.hub_repo is not None and source.revision is not None:
        kwargs["revision"] = source.revision
    try:
        hf_config = AutoConfig.from_pretrained(source.location, **kwargs)
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(
                hf_config, dtype=torch_dtype(mc.precision),
                trust_remote_code=mc.trust_remote_code,
            )
    except Exception as exc:
        raise ModelLoadError(
            f"cannot read the architecture of '{display}' from '{source.location}': "
            f"{_first_line(exc)}"
        ) from exc
    quant = QuantizationSpec()
    if config.vllm.quantization is not None:
        quant = QuantizationSpec(method="vllm", details={"method": config.vllm.quantization})
    revision = source.revision
    if source.hub_repo is not None:
        revision = hub_commit(source.hub_repo, "config.json", source.revision) or revision
    info = describe_model(
        skeleton, name=display, source=source, quantization=quant, revision=revision
    )
    world = config.vllm.tensor_parallel_size * config.vllm.pipeline_parallel_size
    sharding = "none" if world == 1 else (
        f"vllm:tp={config.vllm.tensor_parallel_size},pp={config.vllm.pipeline_parallel_size}")
    return info.model_copy(update={"attn_implementation": None, "sharding": sharding}), hf_config


def _quantized_weights_warning(config: ExperimentConfig) -> list[MeasurementWarning]:
    if config.vllm.quantization is None:
        return []
    return [MeasurementWarning(
        code="vllm_weight_bytes_unquantized",
        message=f"vllm.quantization is '{config.vllm.quantization}': model.weight_bytes (and "
                "MBU) are those of the architecture in model.precision, not of the quantized "
                "weights vLLM holds")]


# --------------------------------------------------------------------------- one pass


def sampling_kwargs(
    decoder: DecoderConfig, max_tokens: int, min_tokens: int, seed: int, *, detokenize: bool
) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one request.

    Greedy: temperature 0 (vLLM then ignores top_p / top_k / min_p). Sampling: temperature,
    top_p, top_k (0 disables it, as in vLLM), min_p. ``repetition_penalty`` applies in both
    modes, as for transformers. ``min_tokens == max_tokens`` (fixed length) also sets
    ``ignore_eos``: every request generates exactly ``max_tokens``.
    """
    sampling = decoder.mode == "sampling"
    return {
        "n": 1,
        "temperature": decoder.temperature if sampling else 0.0,
        "top_p": decoder.top_p if sampling else 1.0,
        "top_k": decoder.top_k if sampling else 0,
        "min_p": decoder.min_p if sampling else 0.0,
        "repetition_penalty": decoder.repetition_penalty,
        "max_tokens": max_tokens,
        "min_tokens": min_tokens,
        "ignore_eos": min_tokens >= max_tokens,
        "seed": seed,
        "detokenize": detokenize,
    }


def submission_waves(prompts: Sequence[Prompt], config: ExperimentConfig) -> list[list[Prompt]]:
    """The groups submitted by one ``generate`` call each: all prompts, or waves."""
    if config.vllm.submission == "all" or config.vllm.wave_size is None:
        return [list(prompts)]
    size = config.vllm.wave_size
    return [list(prompts[i : i + size]) for i in range(0, len(prompts), size)]


def _engine_ts(value: Any) -> float | None:
    """An engine timestamp, or None when vLLM left it unset (0)."""
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def request_record(
    prompt: Prompt,
    output: Any,
    *,
    submitted: float,
    returned: float,
    t0: float,
    cycle: int,
    save_text: bool,
) -> tuple[RequestRecord, bool]:
    """One request's record from its ``RequestOutput`` (times relative to the window start
    ``t0``, all on ``time.monotonic``), and whether its engine timestamps were present."""
    completion = output.outputs[0]
    n_out = len(completion.token_ids)
    metrics = getattr(output, "metrics", None)
    first = _engine_ts(getattr(metrics, "first_token_ts", None))
    last = _engine_ts(getattr(metrics, "last_token_ts", None))
    timed = first is not None and last is not None and n_out > 0
    # e2e is what the caller sees: offline generate returns every request of a call
    # together; the request's own last token is its completion.
    e2e = returned - submitted
    if timed:
        assert first is not None and last is not None
        ttft: float | None = first - submitted
        tpot = (last - first) / (n_out - 1) if n_out >= 2 else None
        done: float | None = last - submitted
    else:
        ttft, tpot, done = None, None, None
    record = RequestRecord(
        request_id=prompt.request_id, cycle=cycle,
        input_tokens=len(output.prompt_token_ids), output_tokens=n_out,
        submitted_s=submitted - t0, ttft_s=ttft, tpot_s=tpot, completion_s=done, e2e_s=e2e,
        output_text=completion.text if save_text else None,
    )
    return record, timed or n_out == 0


class VllmEngine(InferenceEngine):
    """vLLM offline inference (see the module docstring)."""

    name = "vllm"
    #: Token times come from vLLM's per-request metrics; the model runs in vLLM's workers
    #: (their memory is what the device layer sees), not under this process's allocator.
    capabilities = EngineCapabilities(
        token_timestamps=True, token_gaps=False, flops_by_architecture=True,
        torch_memory_peaks=False,
    )

    def __init__(self) -> None:
        self._untimed_requests = 0

    def load(self, config: ExperimentConfig) -> LoadedModel:
        """``vllm.LLM`` for ``config.model`` (builtin, local folder or Hub id) and its
        tokenizer; ModelInfo as engine transformers describes the same model."""
        from llm_energy_measure.core.model_source import resolve_model_source

        vllm = import_vllm()
        from vllm.platforms import current_platform

        platform = str(current_platform.device_type)
        device = _device(platform, config)
        display = config.model.name
        source = resolve_model_source(config.model)
        info, hf_config = describe_vllm_model(source, config, display)
        env = engine_environment(config.vllm, platform)
        os.environ.update(env)
        envs = getattr(vllm, "envs", None)
        if envs is not None and hasattr(envs, "disable_envs_cache"):
            envs.disable_envs_cache()  # an earlier in-process engine froze vLLM's env reads
        kwargs = llm_kwargs(config, source)
        start = time.perf_counter()
        try:
            with _global_random_state_kept():
                llm = vllm.LLM(**kwargs)
        except Exception as exc:
            raise ModelLoadError(f"vLLM cannot load '{display}': {_first_line(exc)}") from exc
        in_process = env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
        logger.info(
            f"vLLM {vllm.__version__} loaded {display} ({info.architecture}, "
            f"{(info.num_parameters or 0) / 1e6:.1f} M parameters, {config.model.precision}) on "
            f"{platform}, {'in-process' if in_process else 'multiprocess'}, in "
            f"{time.perf_counter() - start:.1f} s"
        )
        warnings = _quantized_weights_warning(config)
        if platform != "cpu":
            warnings += _visible_gpu_warning(device, config)
        return LoadedModel(
            model=VllmModel(llm=llm, config=hf_config, platform=platform,
                            in_process=in_process),
            tokenizer=llm.get_tokenizer(), info=info, device=device, warnings=warnings,
        )

    def run(
        self,
        loaded: LoadedModel,
        prompts: Sequence[Prompt],
        config: ExperimentConfig,
        *,
        cycle: int = 0,
        on_batch_done: Callable[[int], None] | None = None,
        on_window_open: Callable[[], None] | None = None,
        on_window_close: Callable[[], None] | None = None,
    ) -> InferenceOutput:
        """Measure one pass over ``prompts`` (see the module docstring)."""
        from vllm import SamplingParams

        if not prompts:
            raise InferenceError("no prompts to run: the workload of this process is empty")
        model: VllmModel = loaded.model
        llm = model.llm
        seed = config.seed + cycle if cycle >= 0 else config.seed
        save_text = config.inference.save_outputs
        waves = submission_waves(prompts, config)
        # Everything a request needs is built before the window opens.
        prepared: list[tuple[list[Prompt], list[dict[str, Any]], list[Any]]] = []
        cache: dict[tuple[int, int], Any] = {}
        max_len = _max_model_len(llm)
        for wave in waves:
            ids = loaded.tokenizer([p.text for p in wave])["input_ids"]
            params = []
            for prompt, prompt_ids in zip(wave, ids, strict=True):
                max_new, min_new = new_token_limits([prompt], config.decoder)
                if max_len is not None and len(prompt_ids) + max_new > max_len:
                    raise ConfigurationError(
                        f"request {prompt.request_id} needs {len(prompt_ids)} + {max_new} "
                        f"tokens but vLLM's context is {max_len}: raise vllm.max_model_len "
                        "or lower prompts.max_input_tokens / decoder.max_new_tokens"
                    )
                key = (max_new, min_new)
                if key not in cache:
                    cache[key] = SamplingParams(**sampling_kwargs(
                        config.decoder, max_new, min_new, seed, detokenize=save_text))
                params.append(cache[key])
            prepared.append((wave, [{"prompt_token_ids": list(x)} for x in ids], params))

        # Every pass starts with an empty prefix cache: otherwise warm-up and earlier cycles,
        # which submit the same prompts, would leave their prefills cached and later cycles
        # would measure less work than the FLOPs count (prefix sharing within a pass stays).
        reset = getattr(llm, "reset_prefix_cache", None)
        if callable(reset):
            reset()
        finished: list[tuple[list[Prompt], list[Any], float, float]] = []
        compute_time_s = 0.0
        done = 0
        if on_window_open is not None:
            on_window_open()
        window_start = time.time()
        t0 = time.monotonic()
        for wave, inputs, params in prepared:
            submitted = time.monotonic()
            try:
                outputs = llm.generate(inputs, params, use_tqdm=False)
            except Exception as exc:
                raise InferenceError(
                    f"vLLM generate failed on {len(inputs)} prompt(s): {type(exc).__name__}: "
                    f"{_first_line(exc)}"
                ) from exc
            returned = time.monotonic()
            compute_time_s += returned - submitted
            finished.append((wave, outputs, submitted, returned))
            done += len(wave)
            if on_batch_done is not None:
                on_batch_done(done)
        t1 = time.monotonic()
        window_end = time.time()
        if on_window_close is not None:
            on_window_close()

        requests: list[RequestRecord] = []
        untimed = 0
        for wave, outputs, submitted, returned in finished:
            for prompt, output in zip(wave, outputs, strict=True):
                record, timed = request_record(
                    prompt, output, submitted=submitted, returned=returned, t0=t0,
                    cycle=cycle, save_text=save_text)
                requests.append(record)
                untimed += not timed
        requests.sort(key=lambda r: r.request_id)
        warnings = list(loaded.warnings)
        if untimed:
            warnings.append(MeasurementWarning(
                code="vllm_no_request_metrics", message=_NO_METRICS.format(n=untimed)))
            if cycle >= 0:
                self._untimed_requests += untimed
        return InferenceOutput(
            requests=requests,
            window=Timestamps(start=window_start, end=window_end, duration_s=t1 - t0),
            compute_time_s=compute_time_s,
            num_batches=len(prepared),
            padded_input_tokens=sum(r.input_tokens for r in requests),  # vLLM never pads
            warnings=warnings,
        )

    def version(self) -> str | None:
        try:
            return str(import_vllm().__version__)
        except ConfigurationError:
            return None

    def batching(self, config: ExperimentConfig) -> str:
        if config.vllm.submission == "waves":
            return (f"continuous batching by vLLM's scheduler (waves of "
                    f"{config.vllm.wave_size} prompts, one generate call each)")
        return (f"continuous batching by vLLM's scheduler (all {config.prompts.num_prompts} "
                "prompts submitted at once)")

    def details(self, loaded: LoadedModel) -> dict[str, str]:
        """Attention backend, KV cache, scheduler limits and process mode, as vLLM resolved
        them."""
        model: VllmModel = loaded.model
        return engine_details(model)

    def info(self, loaded: LoadedModel, config: ExperimentConfig) -> EngineInfo:
        base = super().info(loaded, config)
        if not self._untimed_requests:
            return base
        note = _NO_METRICS.format(n=self._untimed_requests)
        return base.model_copy(update={"unreported": {**base.unreported, "ttft": note,
                                                      "tpot": note, "itl": note}})

    def release(self, loaded: LoadedModel | None) -> None:
        """Shut vLLM's engine core down (its processes too), then drop the model."""
        model = getattr(loaded, "model", None) if loaded is not None else None
        if isinstance(model, VllmModel):
            try:
                model.llm.llm_engine.engine_core.shutdown()
            except Exception as exc:  # teardown must not mask the run's own outcome
                logger.warning(f"vLLM engine shutdown failed: {_first_line(exc)}")
            model.llm = None
        super().release(loaded)


# --------------------------------------------------------------------------- engine facts


def _max_model_len(llm: Any) -> int | None:
    value = getattr(getattr(llm, "llm_engine", None), "vllm_config", None)
    value = getattr(getattr(value, "model_config", None), "max_model_len", None)
    return int(value) if isinstance(value, int) else None


def _backend_names(worker: Any) -> list[str]:
    """Attention backends of a worker's model runner (runs where the worker is)."""
    runner = worker.model_runner
    return sorted({g.backend.get_name() for groups in runner.attn_groups for g in groups})


def attention_backends(model: VllmModel) -> str:
    """The attention backend(s) vLLM's workers chose, or why they could not be read."""
    try:
        if model.in_process:
            executor = model.llm.llm_engine.model_executor
            return ",".join(_backend_names(executor.driver_worker.worker))
        if os.environ.get("VLLM_ALLOW_INSECURE_SERIALIZATION") == "1":
            names = model.llm.collective_rpc(_backend_names)
            return ",".join(sorted({n for per_worker in names for n in per_worker}))
    except Exception as exc:
        return f"unknown ({_first_line(exc)})"
    return ("not read: the workers run in other processes (set "
            "VLLM_ALLOW_INSECURE_SERIALIZATION=1 to let them report it)")


def _in_process_kv_bytes(model: VllmModel) -> int | None:
    """Bytes of the KV-cache tensors the (in-process) worker allocated."""
    try:
        runner = model.llm.llm_engine.model_executor.driver_worker.worker.model_runner
        return sum(int(t.size) for t in runner.kv_cache_config.kv_cache_tensors)
    except (AttributeError, TypeError):
        return None


def engine_details(model: VllmModel) -> dict[str, str]:
    """What the result records about the vLLM engine as built."""
    vc = model.llm.llm_engine.vllm_config
    cache, sched, par = vc.cache_config, vc.scheduler_config, vc.parallel_config
    details = {
        "platform": model.platform,
        "process_mode": "in-process" if model.in_process else "multiprocess",
        "attention_backend": attention_backends(model),
        "max_model_len": str(vc.model_config.max_model_len),
        "max_num_seqs": str(sched.max_num_seqs),
        "max_num_batched_tokens": str(sched.max_num_batched_tokens),
        "enable_prefix_caching": str(cache.enable_prefix_caching).lower(),
        "prefix_cache": "emptied before every measured pass and warm-up call",
        "tensor_parallel_size": str(par.tensor_parallel_size),
        "pipeline_parallel_size": str(par.pipeline_parallel_size),
        "enforce_eager": str(vc.model_config.enforce_eager).lower(),
    }
    blocks = getattr(cache, "num_gpu_blocks", None)
    if isinstance(blocks, int):
        details["kv_cache_blocks"] = str(blocks)
        details["kv_cache_block_size"] = str(cache.block_size)
        details["kv_cache_tokens"] = str(blocks * int(cache.block_size))
    kv_bytes = getattr(cache, "kv_cache_memory_bytes", None)
    if not isinstance(kv_bytes, int) and model.in_process:
        kv_bytes = _in_process_kv_bytes(model)
    if isinstance(kv_bytes, int):
        details["kv_cache_bytes"] = str(kv_bytes)
    details["memory_note"] = (
        "vLLM pre-allocates its KV cache at load: GPU memory in use (NVML, in the time "
        "series) includes it whatever the workload needs; torch peak figures are not read"
    )
    return details
