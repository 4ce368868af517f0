"""Experiment configuration models (pure validation: nothing here touches devices or env).

Every field is read by the pipeline. Validation errors name the key and the allowed values;
soft problems are reported by ``config.validation.config_warnings`` instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llm_energy_measure.config.serving import (
    EndpointConfig,
    LoadConfig,
    ServerConfig,
    SloConfig,
)
from llm_energy_measure.constants import (
    DEFAULT_BASELINE_DURATION_S,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_INPUT_TOKENS,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_NUM_PROMPTS,
    DEFAULT_SAMPLE_INTERVAL_MS,
    DEFAULT_SEED,
    DEFAULT_WARMUP_RUNS,
)
from llm_energy_measure.security import control_character, escape_controls, looks_like_credential


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False
    )


def _strings(value: object, key: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, text) of every string in a dumped config, keys of mappings included."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            child = f"{key}.{name}" if key else str(name)
            yield from _strings(str(name), child)
            yield from _strings(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{key}[{index}]")


def check_plain_text(data: object) -> None:
    """ValueError naming the key when a setting holds a control character (an escape such as
    ``"\\x1b[2J"`` decoded from YAML would drive the terminal of everyone who lists the
    results) or a credential (a config is stored with every result and launch: tokens belong
    in ``HF_TOKEN``). The value itself is never echoed."""
    for raw_key, text in _strings(data):
        key = escape_controls(raw_key)
        char = control_character(text)
        if char is not None:
            raise ValueError(
                f"{key}: control character U+{ord(char):04X} is not allowed; write it as "
                "plain text"
            )
        if looks_like_credential(text):
            raise ValueError(
                f"{key}: the value looks like an access token; a config never holds "
                "credentials (it is stored with the results): give the token through the "
                "HF_TOKEN environment variable"
            )


Precision = Literal["float32", "float16", "bfloat16"]
#: The inference engines (``core.engines.ENGINES`` maps each to its implementation).
EngineName = Literal["transformers", "vllm", "openai", "llama_cpp"]


class ModelConfig(_Strict):
    """Which model to load and how."""

    name: str = Field(DEFAULT_MODEL, min_length=1, description="Hub id, local folder, GGUF file "
                      "path, or builtin:tiny-llama")
    revision: str | None = Field(None, description="Hub revision (commit, tag, branch) to pin")
    gguf_file: str | None = Field(None, description="GGUF file name inside the repo/folder")
    precision: Precision = "float32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    trust_remote_code: bool = False
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"


class QuantizationConfig(_Strict):
    """BitsAndBytes quantization (CUDA only). Every field maps to BitsAndBytesConfig."""

    load_in_4bit: bool = False
    load_in_8bit: bool = False
    bnb_4bit_compute_dtype: Precision = "float16"
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_use_double_quant: bool = False
    bnb_4bit_quant_storage: Literal["uint8", "float16", "bfloat16", "float32"] = "uint8"
    llm_int8_threshold: float = Field(6.0, gt=0)
    llm_int8_skip_modules: list[str] | None = None
    llm_int8_enable_fp32_cpu_offload: bool = False
    llm_int8_has_fp16_weight: bool = False

    @model_validator(mode="after")
    def _one_mode(self) -> QuantizationConfig:
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("quantization: set only one of load_in_4bit and load_in_8bit")
        return self

    @property
    def enabled(self) -> bool:
        return self.load_in_4bit or self.load_in_8bit


class PromptsConfig(_Strict):
    """Where prompts come from and how many are measured."""

    source: Literal["builtin", "file", "jsonl", "huggingface", "synthetic"] = "builtin"
    path: Path | None = Field(None, description="text file (one prompt a line) or JSONL file")
    column: str | None = Field(None, description="JSONL/dataset column; detected when unset")
    dataset: str | None = Field(None, description="Hugging Face dataset id")
    dataset_config: str | None = None
    split: str = "train"
    num_prompts: int = Field(DEFAULT_NUM_PROMPTS, ge=1, le=1_000_000)
    max_input_tokens: int = Field(DEFAULT_MAX_INPUT_TOKENS, ge=1, le=1_048_576)
    shuffle: bool = False
    synthetic_input_tokens: int = Field(64, ge=1, le=1_048_576)

    @model_validator(mode="after")
    def _needs(self) -> PromptsConfig:
        if self.source in ("file", "jsonl") and self.path is None:
            raise ValueError(f"prompts.path is required when prompts.source is '{self.source}'")
        if self.source == "huggingface" and not self.dataset:
            raise ValueError("prompts.dataset is required when prompts.source is 'huggingface'")
        return self


class BatchingConfig(_Strict):
    """How prompts are grouped into generate calls."""

    strategy: Literal["fixed", "sorted", "token_budget"] = "fixed"
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=65_536)
    max_tokens_per_batch: int | None = Field(None, ge=1, description="token_budget: cap on "
                                             "padded input tokens per batch")

    @model_validator(mode="after")
    def _budget(self) -> BatchingConfig:
        if self.strategy == "token_budget" and self.max_tokens_per_batch is None:
            raise ValueError(
                "batching.max_tokens_per_batch is required when batching.strategy is "
                "'token_budget'"
            )
        return self


DecoderPreset = Literal["deterministic", "benchmark", "standard", "creative"]

#: Decoder presets: values applied under any field the user sets explicitly.
DECODER_PRESETS: dict[str, dict[str, object]] = {
    "deterministic": {"mode": "greedy", "fixed_length": False},
    "benchmark": {"mode": "greedy", "fixed_length": True},
    "standard": {"mode": "sampling", "temperature": 0.7, "top_p": 0.9, "top_k": 50},
    "creative": {"mode": "sampling", "temperature": 1.0, "top_p": 0.95, "top_k": 0},
}


class DecoderConfig(_Strict):
    """Generation settings. ``fixed_length`` generates exactly max_new_tokens (EOS ignored)."""

    preset: DecoderPreset | None = None
    mode: Literal["greedy", "sampling"] = "greedy"
    temperature: float = Field(1.0, gt=0, le=100)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, description="0 disables top-k")
    min_p: float = Field(0.0, ge=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0, le=100)
    max_new_tokens: int = Field(DEFAULT_MAX_NEW_TOKENS, ge=1, le=1_048_576)
    min_new_tokens: int = Field(0, ge=0)
    fixed_length: bool = False

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("preset") in DECODER_PRESETS:
            merged = dict(DECODER_PRESETS[str(data["preset"])])
            merged.update(data)
            return merged
        return data

    @model_validator(mode="after")
    def _lengths(self) -> DecoderConfig:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"decoder.min_new_tokens ({self.min_new_tokens}) must be <= "
                f"decoder.max_new_tokens ({self.max_new_tokens})"
            )
        return self


class InferenceConfig(_Strict):
    """Axes of the inference engine that researchers compare."""

    cache_implementation: Literal["dynamic", "static"] = "dynamic"
    torch_compile: bool = False
    save_outputs: bool = False


class TrafficConfig(_Strict):
    """Simulated arrivals. Waiting happens outside the compute timing."""

    enabled: bool = False
    mode: Literal["poisson", "constant"] = "poisson"
    rate_per_s: float = Field(1.0, gt=0, le=1_000_000)


class BaselineConfig(_Strict):
    """Idle power measured before the run, for the static/dynamic energy split."""

    enabled: bool = True
    duration_s: float = Field(DEFAULT_BASELINE_DURATION_S, ge=0.1, le=600)


#: The backend that measures nothing. YAML reads an unquoted ``null`` as None, so the name is
#: ``none``; None, ``null`` and ``none`` (any case) all select it.
NO_ENERGY_BACKEND = "none"
_NO_ENERGY_ALIASES = frozenset({"none", "null"})


class PrometheusEnergyConfig(_Strict):
    """An energy counter read from a Prometheus endpoint (e.g. a DCGM exporter's
    ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``, in mJ): the window's energy is the delta of the
    sum of the matching series between the window's edges."""

    url: str = Field(..., pattern=r"^https?://[^\s@]+$", description="metrics URL, e.g. "
                     "http://gpu-host:9400/metrics")
    metric: str = Field(..., pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    labels: dict[str, str] = Field(default_factory=dict, description="only series with these "
                                   "label values")
    unit: Literal["J", "mJ", "kJ", "Wh", "kWh"] = "J"
    device_kind: Literal["gpu", "cpu", "dram", "system"] = "gpu"
    timeout_s: float = Field(5.0, gt=0, le=300)


class EnergyConfig(_Strict):
    """Energy measurement: backend, sampler and emissions."""

    backend: Literal["auto", "nvml", "rapl", "codecarbon", "zeus", "prometheus", "none"] = "auto"
    prometheus: PrometheusEnergyConfig | None = Field(None, description="read with backend "
                                                      "'prometheus'")
    sample_interval_ms: float = Field(DEFAULT_SAMPLE_INTERVAL_MS, ge=10, le=60_000)
    baseline: BaselineConfig = BaselineConfig()
    country_iso_code: str | None = Field(None, min_length=3, max_length=3,
                                         description="ISO 3166-1 alpha-3, e.g. FRA")
    region: str | None = None
    carbon_intensity_g_per_kwh: float | None = Field(None, ge=0, le=5000)
    pue: float = Field(1.0, ge=1.0, le=5.0)
    save_timeseries: bool = True

    @model_validator(mode="after")
    def _prometheus(self) -> EnergyConfig:
        if self.backend == "prometheus" and self.prometheus is None:
            raise ValueError("energy.prometheus (url, metric) is required when energy.backend "
                             "is 'prometheus'")
        if self.backend != "prometheus" and self.prometheus is not None:
            raise ValueError("energy.prometheus is only read when energy.backend is "
                             "'prometheus'")
        return self

    @field_validator("backend", mode="before")
    @classmethod
    def _no_backend_alias(cls, value: object) -> object:
        """``backend: null`` (YAML None), ``null`` or ``none`` -> ``none``."""
        if value is None:
            return NO_ENERGY_BACKEND
        if isinstance(value, str) and value.strip().lower() in _NO_ENERGY_ALIASES:
            return NO_ENERGY_BACKEND
        return value


class WarmupConfig(_Strict):
    """Warm-up generate calls before the measured window (excluded from it)."""

    mode: Literal["fixed", "convergence"] = "fixed"
    runs: int = Field(DEFAULT_WARMUP_RUNS, ge=0, le=10_000)
    max_runs: int = Field(20, ge=1, le=10_000)
    cv_threshold: float = Field(0.05, gt=0, le=1)


class ShardingConfig(_Strict):
    """Splitting a model larger than one device across devices."""

    strategy: Literal["none", "device_map", "tensor_parallel"] = "none"
    max_memory: dict[str, str] | None = Field(None, description='e.g. {"0": "20GiB"}')

    @field_validator("max_memory", mode="before")
    @classmethod
    def _device_keys_as_str(cls, value: object) -> object:
        # YAML reads `0: 20GiB` with an integer key; accept it as device "0".
        if isinstance(value, dict):
            return {str(key): size for key, size in value.items()}
        return value


class LaunchConfig(_Strict):
    """Processes and machines (accelerate launch)."""

    num_processes: int = Field(1, ge=1, le=1024)
    gpus: list[int] | None = Field(None, description="visible GPU indices")
    num_machines: int = Field(1, ge=1, le=4096)
    machine_rank: int = Field(0, ge=0)
    main_process_ip: str | None = None
    main_process_port: int | None = Field(None, ge=1, le=65_535)
    process_timeout_s: float = Field(3600, gt=0)


#: Quantization methods of vLLM 0.32 (``vllm.model_executor.layers.quantization``).
VllmQuantization = Literal[
    "awq", "auto_awq", "fp8", "fbgemm_fp8", "fp_quant", "modelopt", "modelopt_fp4",
    "modelopt_mxfp8", "modelopt_mixed", "auto_gptq", "gptq", "gptq_marlin", "awq_marlin",
    "humming", "compressed-tensors", "experts_int8", "quark", "moe_wna16", "torchao", "inc",
    "mxfp4", "gpt_oss_mxfp4", "deepseek_v4_fp8", "online", "fp8_per_tensor", "fp8_per_block",
    "fp8_per_channel", "int8_per_channel_weight_only", "nvfp4_per_token", "mxfp8",
]


class VllmConfig(_Strict):
    """Settings of engine ``vllm`` (read only when ``engine: vllm``), passed to ``vllm.LLM``.

    None leaves vLLM's own default (recorded in the result's engine details where vLLM
    exposes the resolved value). The dtype comes from ``model.precision``, the seed from
    ``seed``.
    """

    max_model_len: int | None = Field(None, ge=1, description="context length vLLM "
                                      "allocates for (default: the model's)")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="fraction of "
                                                 "GPU memory vLLM may take (weights + KV cache)")
    max_num_seqs: int | None = Field(None, ge=1, description="most sequences scheduled at once")
    max_num_batched_tokens: int | None = Field(None, ge=1, description="most tokens per "
                                               "scheduler step")
    enable_prefix_caching: bool | None = None
    quantization: VllmQuantization | None = Field(None, description="vLLM quantization method "
                                                  "of the checkpoint")
    tensor_parallel_size: int = Field(1, ge=1, le=1024)
    pipeline_parallel_size: int = Field(1, ge=1, le=1024)
    enforce_eager: bool = Field(False, description="no torch.compile / CUDA graphs")
    kv_cache_space_gib: int | None = Field(None, ge=1, le=65_536, description="KV-cache size "
                                           "(GiB); on CPU also VLLM_CPU_KVCACHE_SPACE")
    multiprocessing: bool | None = Field(None, description="engine core in its own process "
                                         "(vLLM's default); default: off on CPU, on on GPU")
    submission: Literal["all", "waves"] = Field("all", description="all prompts in one "
                                                "generate call, or in waves of wave_size")
    wave_size: int | None = Field(None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _waves(self) -> VllmConfig:
        if self.submission == "waves" and self.wave_size is None:
            raise ValueError("vllm.wave_size is required when vllm.submission is 'waves'")
        if self.submission == "all" and self.wave_size is not None:
            raise ValueError("vllm.wave_size is only read when vllm.submission is 'waves'")
        return self


def _vllm_conflicts(config: ExperimentConfig) -> str | None:
    """Why settings of the transformers engine cannot apply with ``engine: vllm`` (or None)."""
    launch = config.launch
    if launch.num_processes > 1 or launch.num_machines > 1:
        return ("launch.num_processes > 1 (or num_machines > 1) is not supported with engine "
                "'vllm': vLLM manages its own workers; use vllm.tensor_parallel_size (or "
                "vllm.pipeline_parallel_size) to use several GPUs")
    if config.sharding.strategy != "none":
        return (f"sharding.strategy '{config.sharding.strategy}' applies to engine "
                "'transformers'; with engine 'vllm' use vllm.tensor_parallel_size")
    if config.quantization.enabled:
        return ("quantization (bitsandbytes) applies to engine 'transformers'; with engine "
                "'vllm' use vllm.quantization")
    if config.model.gguf_file or config.model.name.lower().endswith(".gguf") or \
            config.model.name.startswith("gguf:"):
        return "GGUF models are not supported with engine 'vllm'; use engine 'transformers'"
    if config.model.attn_implementation != "sdpa":
        return ("model.attn_implementation applies to engine 'transformers'; vLLM chooses its "
                "own attention backend (recorded in the result)")
    if config.inference.torch_compile:
        return ("inference.torch_compile applies to engine 'transformers'; vLLM compiles "
                "unless vllm.enforce_eager is true")
    if config.inference.cache_implementation != "dynamic":
        return ("inference.cache_implementation applies to engine 'transformers'; vLLM "
                "manages its own paged KV cache (vllm.kv_cache_space_gib)")
    if config.traffic.enabled:
        return "traffic simulation is not supported with engine 'vllm'; set traffic.enabled: false"
    return None


def _openai_conflicts(config: ExperimentConfig) -> str | None:
    """Why the settings cannot apply with ``engine: openai`` (or None)."""
    launch = config.launch
    if launch.num_processes > 1 or launch.num_machines > 1:
        return ("launch.num_processes > 1 (or num_machines > 1) is not supported with engine "
                "'openai': one load generator measures the endpoint; raise load.concurrency "
                "or load.rate_per_s instead")
    if config.endpoint.base_url is None and config.server is None:
        return ("engine 'openai' needs endpoint.base_url (a running server) or a server "
                "section (a server the run starts)")
    if config.endpoint.base_url is not None and config.server is not None:
        return ("endpoint.base_url is the managed server's own when a server section is set; "
                "remove one of them")
    if config.sharding.strategy != "none":
        return "sharding applies to engine 'transformers'; a server shards the model itself"
    if config.quantization.enabled:
        return ("quantization (bitsandbytes) applies to engine 'transformers'; quantize on "
                "the server (e.g. server.args: [--quantization, fp8])")
    if config.traffic.enabled:
        return ("traffic applies to the offline engines; with engine 'openai' the load "
                "section sets the arrivals")
    if config.inference.torch_compile or config.inference.cache_implementation != "dynamic":
        return ("inference.torch_compile and inference.cache_implementation apply to engine "
                "'transformers'")
    return None


class LlamaCppConfig(_Strict):
    """Settings of engine ``llama_cpp`` (read only when ``engine: llama_cpp``), passed to
    ``llama_cpp.Llama``. The model is a GGUF file (``model.name``); the seed is ``seed``."""

    n_ctx: int = Field(2048, ge=0, le=1_048_576, description="context (KV-cache) length in "
                       "tokens; 0: the model's training context")
    n_threads: int | None = Field(None, ge=1, le=4096, description="threads of decoding "
                                  "(default: the bindings', half the CPUs)")
    n_threads_batch: int | None = Field(None, ge=1, le=4096, description="threads of prompt "
                                        "processing (default: the bindings', every CPU)")
    n_batch: int = Field(512, ge=1, le=1_048_576, description="most prompt tokens per decode "
                         "call (prefill chunk)")
    n_gpu_layers: int = Field(0, ge=-1, le=100_000, description="layers offloaded to the GPU "
                              "(-1: all; needs a GPU build of llama.cpp)")
    flash_attn: bool = Field(False, description="llama.cpp's flash attention")


def _llama_cpp_conflicts(config: ExperimentConfig) -> str | None:
    """Why settings of the transformers engine cannot apply with ``engine: llama_cpp`` (or
    None)."""
    mc = config.model
    if not (mc.gguf_file or mc.name.lower().endswith(".gguf") or mc.name.startswith("gguf:")):
        return (f"engine 'llama_cpp' runs GGUF files: model.name '{mc.name}' is not a .gguf "
                "file or gguf: alias (or set model.gguf_file for a folder or Hub repo)")
    launch = config.launch
    if launch.num_processes > 1 or launch.num_machines > 1:
        return ("launch.num_processes > 1 (or num_machines > 1) is not supported with engine "
                "'llama_cpp': one process runs the model; use llama_cpp.n_threads for more "
                "cores")
    if config.sharding.strategy != "none":
        return (f"sharding.strategy '{config.sharding.strategy}' applies to engine "
                "'transformers'; with engine 'llama_cpp' use llama_cpp.n_gpu_layers")
    if config.quantization.enabled:
        return ("quantization (bitsandbytes) applies to engine 'transformers'; with engine "
                "'llama_cpp' the GGUF file's own quantization is used")
    if mc.precision != "float32":
        return (f"model.precision '{mc.precision}' applies to engine 'transformers' (the dtype "
                "GGUF weights are dequantized to); llama.cpp computes with the GGUF file's "
                "own types: leave model.precision at float32")
    if mc.attn_implementation != "sdpa":
        return ("model.attn_implementation applies to engine 'transformers'; with engine "
                "'llama_cpp' use llama_cpp.flash_attn")
    if config.inference.torch_compile:
        return "inference.torch_compile applies to engine 'transformers', not 'llama_cpp'"
    if config.inference.cache_implementation != "dynamic":
        return ("inference.cache_implementation applies to engine 'transformers'; llama.cpp "
                "allocates its KV cache for llama_cpp.n_ctx tokens")
    if config.traffic.enabled:
        return ("traffic simulation is not supported with engine 'llama_cpp'; set "
                "traffic.enabled: false")
    if mc.device == "cuda" and config.llama_cpp.n_gpu_layers == 0:
        return ("model.device 'cuda' with engine 'llama_cpp' needs llama_cpp.n_gpu_layers "
                "(-1 offloads every layer)")
    if mc.device == "cpu" and config.llama_cpp.n_gpu_layers != 0:
        return ("model.device 'cpu' with llama_cpp.n_gpu_layers "
                f"{config.llama_cpp.n_gpu_layers}: set n_gpu_layers to 0, or model.device to "
                "auto or cuda")
    return None


class ExperimentConfig(_Strict):
    """One experiment: what to run and how to measure it."""

    config_name: str = Field("experiment", min_length=1, max_length=128)
    engine: EngineName = Field("transformers", description="the inference engine that runs "
                               "the workload")
    model: ModelConfig = ModelConfig()
    quantization: QuantizationConfig = QuantizationConfig()
    prompts: PromptsConfig = PromptsConfig()
    batching: BatchingConfig = BatchingConfig()
    decoder: DecoderConfig = DecoderConfig()
    inference: InferenceConfig = InferenceConfig()
    traffic: TrafficConfig = TrafficConfig()
    energy: EnergyConfig = EnergyConfig()
    warmup: WarmupConfig = WarmupConfig()
    sharding: ShardingConfig = ShardingConfig()
    launch: LaunchConfig = LaunchConfig()
    vllm: VllmConfig = VllmConfig()
    endpoint: EndpointConfig = EndpointConfig()
    load: LoadConfig = Field(default_factory=lambda: LoadConfig(arrival="concurrency",
                                                                 concurrency=1))
    server: ServerConfig | None = None
    slo: SloConfig | None = Field(None, description="latency objectives (serving runs): "
                                  "attainment, goodput, energy per SLO-meeting request")


    llama_cpp: LlamaCppConfig = LlamaCppConfig()
    cycles: int = Field(1, ge=1, le=1000)
    seed: int = Field(DEFAULT_SEED, ge=0)
    results_dir: Path | None = Field(None, description="overrides the default results directory")

    @model_validator(mode="after")
    def _plain_text(self) -> ExperimentConfig:
        check_plain_text(self.model_dump(mode="json"))
        return self

    @model_validator(mode="after")
    def _cross(self) -> ExperimentConfig:
        world = self.launch.num_processes * self.launch.num_machines
        if self.prompts.num_prompts < world:
            machines = (f" x launch.num_machines ({self.launch.num_machines})"
                        if self.launch.num_machines > 1 else "")
            raise ValueError(
                f"prompts.num_prompts ({self.prompts.num_prompts}) must be at least "
                f"launch.num_processes ({self.launch.num_processes}){machines}: every process "
                "measures a share of the prompts; raise prompts.num_prompts or lower "
                "launch.num_processes"
            )
        if self.launch.machine_rank >= self.launch.num_machines:
            raise ValueError(
                f"launch.machine_rank ({self.launch.machine_rank}) must be < "
                f"launch.num_machines ({self.launch.num_machines})"
            )
        if self.launch.gpus is not None and len(self.launch.gpus) < self.launch.num_processes:
            raise ValueError(
                f"launch.gpus lists {len(self.launch.gpus)} GPU(s) but launch.num_processes is "
                f"{self.launch.num_processes}"
            )
        if self.engine == "vllm":
            conflict = _vllm_conflicts(self)
            if conflict is not None:
                raise ValueError(conflict)
        if self.engine == "openai":
            conflict = _openai_conflicts(self)
            if conflict is not None:
                raise ValueError(conflict)
        if self.engine == "llama_cpp":
            conflict = _llama_cpp_conflicts(self)
            if conflict is not None:
                raise ValueError(conflict)
        return self
