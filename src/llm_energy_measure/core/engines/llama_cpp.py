"""The llama.cpp engine: a GGUF file run by ``llama-cpp-python`` in this process, quantized.

Loading: ``llama_cpp.Llama`` on the GGUF file that ``model.name`` resolves to (a path, a
``gguf:`` alias, or ``model.gguf_file`` in a folder or the Hub cache) with the ``llama_cpp``
config section (``n_ctx``, ``n_threads``, ``n_threads_batch``, ``n_batch``, ``n_gpu_layers``,
``flash_attn``) and ``seed``. ``llama_cpp`` is imported here only; a missing one is a
MissingExtraError naming ``pip install "llm-energy-measure[llama-cpp]"``.

Model facts come from the GGUF metadata as llama.cpp read it (architecture, layers, heads, KV
heads, vocabulary, context), the parameter count and the bytes of the weight tensors from
llama.cpp itself (``llama_model_n_params``, ``llama_model_size``): ``weight_bytes`` is the
quantized size, what a decode step reads, so MBU is against the bytes really read.
``ModelInfo.dtype`` is the GGUF file type (e.g. ``Q4_1``); the KV cache is float16
(llama.cpp's default), which the MBU figure uses for the cache reads.

Batching: sequential. llama-cpp-python's ``Llama`` holds one sequence per context (its
parallel slots exist only in llama.cpp's own server), so requests run one after another, each
prompt processed in chunks of ``n_batch`` tokens. The KV cache is cleared before every request
(no prefix of an earlier request is reused: the work done is the work the FLOPs count).

Per request: input tokens = ``len(llm.tokenize(text))`` (the bindings' tokenizer, as
``create_completion`` tokenizes a text prompt: special tokens parsed, BOS as the GGUF says),
tokenized before the window opens. Tokens come from the bindings' token stream,
``Llama.generate`` (the generator that ``create_completion`` itself iterates): it yields each
token as it is sampled, and ``time.perf_counter()`` is read at each yield, so TTFT, every gap
between tokens (ITL per token gap), TPOT and the request's completion are exact. The chunks
of ``create_completion(stream=True)`` are not tokens: a chunk is held back while the text
ends in an incomplete UTF-8 character (it then carries several tokens), the EOS token is never
yielded, and no usage comes with them. Output tokens = tokens sampled up to and including the
first end-of-generation token (``llama_vocab_is_eog``), as for the other engines; e2e = when
the request's stream ended (the caller has its whole answer then) - submission.

Decoder: greedy is ``temp 0`` (llama.cpp's greedy sampler); sampling passes temperature,
top_k (0 disables it), top_p, min_p (llama.cpp's chain applies them before the temperature,
transformers after it). ``repetition_penalty`` is llama.cpp's repeat penalty over the last
``n_ctx`` generated tokens (transformers also penalizes the prompt's tokens: a warning says
so). Fixed length (``min_new_tokens``): every end-of-generation token gets a logit of -inf
until the request has its minimum (llama-cpp-python's logits processors; a logit bias, as the
OpenAI API's ``logit_bias`` does), so every request generates exactly ``max_new_tokens``.

Window (``InferenceOutput.window``): opens after every prompt is tokenized, closes when the
last request's stream ends. Sampling a token reads its logits, which waits for the device, so
nothing is left running when a clock is read.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from loguru import logger

from llm_energy_measure.core.engines.base import EngineCapabilities, InferenceEngine
from llm_energy_measure.core.generation import new_token_limits
from llm_energy_measure.core.timing import latencies
from llm_energy_measure.core.types import InferenceOutput, LoadedModel, Prompt
from llm_energy_measure.domain import (
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
    from llm_energy_measure.config.models import DecoderConfig, ExperimentConfig
    from llm_energy_measure.core.model_source import ModelSource

#: llama.cpp's default KV-cache type (``type_k`` / ``type_v``: GGML_TYPE_F16).
KV_CACHE_DTYPE = "float16"

#: GGUF ``general.architecture`` -> Hugging Face ``model_type`` for the architectures whose
#: GGUF metadata holds every fact the analytic FLOPs model needs (dense Llama-style decoders;
#: a ``llama`` file with experts is Mixtral). Others get the parameter estimate.
_HF_MODEL_TYPES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "granite": "granite",
                   "olmo": "olmo", "olmo2": "olmo2"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def llama_cpp_installed() -> bool:
    """True when a real ``llama_cpp`` package is importable (a folder named ``llama_cpp`` on
    the path, which Python would import as an empty namespace package, does not count)."""
    spec = importlib.util.find_spec("llama_cpp")
    return spec is not None and spec.origin not in (None, "namespace")


def import_llama_cpp() -> Any:
    """The ``llama_cpp`` module; MissingExtraError naming the extra when it is absent."""
    if not llama_cpp_installed():
        raise MissingExtraError("llama-cpp", "llama-cpp-python", "engine 'llama_cpp'")
    try:
        import llama_cpp
    except Exception as exc:  # e.g. a build whose shared library does not load here
        raise ConfigurationError(
            f"llama-cpp-python is installed but cannot be imported: {_first_line(exc)}; "
            "reinstall it (bash scripts/setup_llama_cpp.sh)"
        ) from exc
    return llama_cpp


# --------------------------------------------------------------------------- the GGUF file


def gguf_path_of(source: ModelSource, display: str) -> Path:
    """The local GGUF file of ``source``; ConfigurationError when the source is not one."""
    from llm_energy_measure.core.model_source import cached_hub_file

    path = source.gguf_path
    if path is None and source.gguf_file is not None and source.hub_repo is not None:
        path = cached_hub_file(source.hub_repo, source.gguf_file, source.revision)
    if source.gguf_file is None:
        raise ConfigurationError(
            f"engine 'llama_cpp' runs GGUF files: model '{display}' is not one; give a .gguf "
            "path, a gguf: alias, or model.gguf_file"
        )
    if path is None or not path.is_file():
        raise ModelLoadError(
            f"GGUF file '{source.gguf_file}' of '{display}' is not on this machine (engine "
            "'llama_cpp' reads local files only): download it first"
        )
    return path


def _int(metadata: Mapping[str, str], key: str) -> int | None:
    value = metadata.get(key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def gguf_file_type_name(metadata: Mapping[str, str], filename: str) -> str | None:
    """The GGUF file type (``Q4_1``, ``F16``, ...) from ``general.file_type``, else the name."""
    from llm_energy_measure.core.model_source import gguf_file_type

    code = _int(metadata, "general.file_type")
    if code is not None:
        try:
            import gguf

            return str(gguf.LlamaFileType(code).name).removeprefix("MOSTLY_")
        except (ImportError, ValueError):
            pass
    return gguf_file_type(None, filename)


def describe_gguf(
    metadata: Mapping[str, str],
    *,
    name: str,
    source: ModelSource,
    filename: str,
    num_parameters: int,
    weight_bytes: int,
    file_bytes: int,
    n_vocab: int | None,
) -> ModelInfo:
    """ModelInfo of a GGUF model from its metadata (llama.cpp's ``Llama.metadata``: every
    scalar key as a string) and the counts llama.cpp reports.

    ``weight_bytes`` is the bytes of the weight tensors as stored (quantized); bits per weight
    (recorded in the quantization details) = 8 x weight_bytes / num_parameters.
    """
    from llm_energy_measure.core.model_source import gguf_bits

    arch = metadata.get("general.architecture") or "unknown"
    heads = _int(metadata, f"{arch}.attention.head_count")
    hidden = _int(metadata, f"{arch}.embedding_length")
    head_dim = _int(metadata, f"{arch}.attention.key_length")
    if head_dim is None and heads and hidden:
        head_dim = hidden // heads
    experts = _int(metadata, f"{arch}.expert_count") or 0
    model_type = _HF_MODEL_TYPES.get(arch, arch)
    if arch == "llama" and experts:
        model_type = "mixtral"
    file_type = gguf_file_type_name(metadata, filename)
    bpw = 8 * weight_bytes / num_parameters if num_parameters else None
    quant = QuantizationSpec(
        method="gguf", bits=gguf_bits(file_type),
        details={"gguf_file": filename, "file_type": file_type,
                 "bits_per_weight": round(bpw, 3) if bpw is not None else None,
                 "file_bytes": file_bytes, "runtime": "llama.cpp (quantized kernels)"},
    )
    return ModelInfo(
        name=name,
        source=source.kind,
        revision=source.revision,
        architecture=f"{arch} (GGUF)",
        model_type=model_type,
        num_parameters=num_parameters,
        num_layers=_int(metadata, f"{arch}.block_count"),
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=_int(metadata, f"{arch}.attention.head_count_kv") or heads,
        head_dim=head_dim,
        intermediate_size=_int(metadata, f"{arch}.feed_forward_length"),
        vocab_size=_int(metadata, f"{arch}.vocab_size") or n_vocab,
        max_position_embeddings=_int(metadata, f"{arch}.context_length"),
        dtype=file_type or "gguf",
        weight_bytes=weight_bytes,
        quantization=quant,
        random_weights=source.random_weights,
        attn_implementation=None,
        sharding="none",
    )


def flops_config(metadata: Mapping[str, str], info: ModelInfo) -> Any | None:
    """A config object with the Hugging Face names of the facts the analytic FLOPs model
    reads (``core.arch_spec.arch_spec_from_config``), for the architectures whose GGUF
    metadata holds them all; None otherwise (the FLOPs then come from ModelInfo)."""
    arch = metadata.get("general.architecture") or ""
    if arch not in _HF_MODEL_TYPES or metadata.get(f"{arch}.attention.sliding_window"):
        return None
    needed = (info.hidden_size, info.num_layers, info.num_attention_heads,
              info.intermediate_size, info.vocab_size)
    if not all(needed):
        return None
    config = SimpleNamespace(
        model_type=info.model_type, hidden_size=info.hidden_size,
        num_hidden_layers=info.num_layers, num_attention_heads=info.num_attention_heads,
        num_key_value_heads=info.num_kv_heads, head_dim=info.head_dim,
        intermediate_size=info.intermediate_size, vocab_size=info.vocab_size,
        max_position_embeddings=info.max_position_embeddings,
    )
    if info.model_type == "mixtral":
        used = _int(metadata, f"{arch}.expert_used_count")
        if not used:
            return None
        config.num_local_experts = _int(metadata, f"{arch}.expert_count")
        config.num_experts_per_tok = used
    return config


# --------------------------------------------------------------------------- the tokenizer


class LlamaCppTokenizer:
    """The bindings' tokenizer (``Llama.tokenize`` / ``detokenize``) with the call shape of a
    Hugging Face tokenizer that ``core.prompts`` uses (counting, truncation, synthetic
    prompts). A text is tokenized as ``create_completion`` tokenizes a text prompt: special
    tokens parsed, BOS added when the GGUF file says so."""

    is_fast = False

    def __init__(
        self,
        tokenize: Callable[..., list[int]],
        detokenize: Callable[..., bytes],
        n_vocab: int,
        special_ids: Sequence[int] = (),
        eos_token_id: int | None = None,
    ) -> None:
        self._tokenize = tokenize
        self._detokenize = detokenize
        self._n_vocab = n_vocab
        self.all_special_ids = list(special_ids)
        self.eos_token_id = eos_token_id
        self.pad_token_id = eos_token_id

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._tokenize(text.encode("utf-8"), add_special_tokens, True))

    def __call__(
        self, texts: str | Sequence[str], add_special_tokens: bool = True, **_: Any
    ) -> dict[str, Any]:
        if isinstance(texts, str):
            ids = self.encode(texts, add_special_tokens)
            return {"input_ids": ids, "attention_mask": [1] * len(ids)}
        rows = [self.encode(t, add_special_tokens) for t in texts]
        return {"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        data = self._detokenize(list(ids), None, not skip_special_tokens)
        return bytes(data).decode("utf-8", errors="replace")

    def batch_decode(self, rows: Sequence[Sequence[int]], skip_special_tokens: bool = True,
                     ) -> list[str]:
        return [self.decode(r, skip_special_tokens) for r in rows]

    def __len__(self) -> int:
        return self._n_vocab


# --------------------------------------------------------------------------- loading


@dataclass
class LlamaCppModel:
    """What ``LoadedModel.model`` holds for this engine.

    ``config`` (None when the architecture's metadata does not suffice) is what the analytic
    FLOPs model reads (see ``flops_config``); ``kv_cache_dtype`` the KV-cache element type
    that the MBU figure counts cache reads in; ``eog_ids`` every end-of-generation token.
    """

    llm: Any
    config: Any | None
    path: Path
    eog_ids: tuple[int, ...]
    gpu_offload: bool
    kv_cache_dtype: str = KV_CACHE_DTYPE
    details: dict[str, str] = field(default_factory=dict)


def llama_kwargs(config: ExperimentConfig, path: Path, seed: int) -> dict[str, Any]:
    """Keyword arguments of ``llama_cpp.Llama`` for ``config`` (threads left None take the
    bindings' defaults, recorded in the result)."""
    c = config.llama_cpp
    return {
        "model_path": str(path),
        "n_ctx": c.n_ctx,
        "n_batch": c.n_batch,
        "n_threads": c.n_threads,
        "n_threads_batch": c.n_threads_batch,
        "n_gpu_layers": c.n_gpu_layers,
        "flash_attn": c.flash_attn,
        "seed": seed,
        "verbose": False,
    }


def server_model_path(config: ExperimentConfig) -> Path:
    """The local GGUF file that ``config.model`` names (resolved as the engine resolves it)."""
    from llm_energy_measure.core.model_source import resolve_model_source

    return gguf_path_of(resolve_model_source(config.model), config.model.name)


def llama_cpp_server_command(config: ExperimentConfig, port: int, python: str) -> list[str]:
    """The command that starts llama-cpp-python's OpenAI-compatible server for ``config``:
    ``python -m llama_cpp.server`` on 127.0.0.1:``port`` with the model file resolved, served
    under the name ``endpoint.model`` (else ``model.name``), and the ``llama_cpp`` section's
    settings (threads left unset take the server's defaults).

    The server (``llama-cpp-python[server]``) serves ``/v1/completions`` (streaming with
    ``stream_options.include_usage``) and ``GET /v1/models`` (ready once it answers).
    """
    c = config.llama_cpp
    command = [
        python, "-m", "llama_cpp.server",
        "--model", str(server_model_path(config)),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(c.n_ctx),
        "--n_batch", str(c.n_batch),
        "--n_gpu_layers", str(c.n_gpu_layers),
        "--flash_attn", str(c.flash_attn),
        "--seed", str(config.seed),
        "--model_alias", config.endpoint.model or config.model.name,
    ]
    if c.n_threads is not None:
        command += ["--n_threads", str(c.n_threads)]
    if c.n_threads_batch is not None:
        command += ["--n_threads_batch", str(c.n_threads_batch)]
    return command


def _device(config: ExperimentConfig, gpu_offload: bool) -> str:
    """``LoadedModel.device``: ``cuda:0`` when layers are offloaded to a GPU build, else cpu.
    Refuses a request for offload that this build of llama.cpp cannot honour."""
    wants_gpu = config.llama_cpp.n_gpu_layers != 0
    if wants_gpu and not gpu_offload:
        if config.model.device == "cuda" or config.llama_cpp.n_gpu_layers > 0:
            raise ConfigurationError(
                f"llama_cpp.n_gpu_layers is {config.llama_cpp.n_gpu_layers} but this build of "
                "llama-cpp-python has no GPU offload: set n_gpu_layers to 0, or reinstall it "
                'with a GPU backend (CMAKE_ARGS="-DGGML_CUDA=on")'
            )
        return "cpu"  # -1 with model.device auto: every layer, on the only device there is
    return "cuda:0" if wants_gpu else "cpu"


def eog_token_ids(llama_cpp: Any, llm: Any) -> tuple[int, ...]:
    """Every token that ends generation (EOS, EOT, ...) in the model's vocabulary."""
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return tuple(t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t))


def _special_ids(llm: Any, eog: Sequence[int]) -> list[int]:
    ids = {llm.token_bos(), llm.token_eos(), *eog}
    return sorted(i for i in ids if isinstance(i, int) and i >= 0)


class LlamaCppEngine(InferenceEngine):
    """llama.cpp through llama-cpp-python (see the module docstring)."""

    name = "llama_cpp"
    #: Every token's time comes from the token stream; FLOPs from the GGUF architecture; the
    #: model is not under this process's torch allocator (its RSS is measured).
    capabilities = EngineCapabilities(
        token_timestamps=True, token_gaps=True, flops_by_architecture=True,
        torch_memory_peaks=False,
    )

    def load(self, config: ExperimentConfig) -> LoadedModel:
        """``llama_cpp.Llama`` on the GGUF file of ``config.model``; ModelInfo from its
        metadata; the bindings' tokenizer."""
        from llm_energy_measure.core.model_source import resolve_model_source

        llama_cpp = import_llama_cpp()
        display = config.model.name
        source = resolve_model_source(config.model)
        path = gguf_path_of(source, display)
        gpu_offload = bool(llama_cpp.llama_supports_gpu_offload())
        device = _device(config, gpu_offload)
        start = time.perf_counter()
        try:
            llm = llama_cpp.Llama(**llama_kwargs(config, path, config.seed))
        except Exception as exc:
            raise ModelLoadError(
                f"llama.cpp cannot load '{display}' ({path}): {_first_line(exc)}") from exc
        load_s = time.perf_counter() - start
        # The repeat penalty covers the whole context, as far as llama.cpp lets it (its
        # default is the last 64 tokens).
        llm.last_n_tokens_size = llm.n_ctx()
        metadata = dict(llm.metadata)
        info = describe_gguf(
            metadata, name=display, source=source, filename=path.name,
            num_parameters=int(llama_cpp.llama_model_n_params(llm.model)),
            weight_bytes=int(llama_cpp.llama_model_size(llm.model)),
            file_bytes=path.stat().st_size, n_vocab=llm.n_vocab(),
        )
        if source.hub_repo is not None:  # provenance: the cached snapshot's commit
            from llm_energy_measure.core.model_source import hub_commit

            commit = hub_commit(source.hub_repo, path.name, source.revision)
            info = info.model_copy(update={"revision": commit or info.revision})
        eog = eog_token_ids(llama_cpp, llm)
        tokenizer = LlamaCppTokenizer(
            llm.tokenize, llm.detokenize, llm.n_vocab(), _special_ids(llm, eog),
            eos_token_id=llm.token_eos())
        model = LlamaCppModel(
            llm=llm, config=flops_config(metadata, info), path=path, eog_ids=eog,
            gpu_offload=gpu_offload, details=engine_details(llama_cpp, llm, config, device))
        logger.info(
            f"llama.cpp (llama-cpp-python {llama_cpp.__version__}) loaded {display} "
            f"({info.architecture}, {(info.num_parameters or 0) / 1e6:.1f} M parameters, "
            f"{info.dtype}, "
            f"{(info.weight_bytes or 0) / 1e6:.1f} MB of weights) on {device} in {load_s:.1f} s"
        )
        warnings = _decoder_warnings(config)
        return LoadedModel(model=model, tokenizer=tokenizer, info=info, device=device,
                           warnings=warnings)

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
        if not prompts:
            raise InferenceError("no prompts to run: the workload of this process is empty")
        model: LlamaCppModel = loaded.model
        llm = model.llm
        seed = config.seed + cycle if cycle >= 0 else config.seed
        n_ctx = int(llm.n_ctx())
        # Everything a request needs is built before the window opens.
        prepared: list[tuple[Prompt, list[int], int, int]] = []
        for prompt in prompts:
            ids = loaded.tokenizer.encode(prompt.text)
            max_new, min_new = new_token_limits([prompt], config.decoder)
            if len(ids) + max_new > n_ctx:
                raise ConfigurationError(
                    f"request {prompt.request_id} needs {len(ids)} + {max_new} tokens but "
                    f"llama.cpp's context is {n_ctx}: raise llama_cpp.n_ctx or lower "
                    "prompts.max_input_tokens / decoder.max_new_tokens"
                )
            prepared.append((prompt, ids, max_new, min_new))
        sampling = sampling_kwargs(config.decoder)
        eog = frozenset(model.eog_ids)

        records: list[tuple[Prompt, list[int], list[int], list[float], float, float]] = []
        compute_time_s = 0.0
        if on_window_open is not None:
            on_window_open()
        window_start = time.time()
        t0 = time.perf_counter()
        for done, (prompt, ids, max_new, min_new) in enumerate(prepared, start=1):
            processors = ([suppress_eog(model.eog_ids, len(ids), min_new)]
                          if min_new > 0 and model.eog_ids else None)
            llm.reset()  # empty KV cache: no prefix of an earlier request is reused
            llm.set_seed(seed)
            tokens: list[int] = []
            stamps: list[float] = []
            submitted = time.perf_counter()
            try:
                for token in llm.generate(ids, logits_processor=processors, **sampling):
                    stamps.append(time.perf_counter())
                    tokens.append(int(token))
                    if token in eog or len(tokens) >= max_new:
                        break
            except Exception as exc:
                raise InferenceError(
                    f"llama.cpp generation failed on request {prompt.request_id}: "
                    f"{type(exc).__name__}: {_first_line(exc)}"
                ) from exc
            returned = time.perf_counter()
            compute_time_s += returned - submitted
            records.append((prompt, ids, tokens, stamps, submitted, returned))
            if on_batch_done is not None:
                on_batch_done(done)
        t1 = time.perf_counter()
        window_end = time.time()
        if on_window_close is not None:
            on_window_close()

        save_text = config.inference.save_outputs
        requests = []
        for prompt, ids, tokens, stamps, submitted, returned in records:
            latency = latencies([s - t0 for s in stamps], len(tokens), submitted - t0,
                                returned - t0)
            text = None
            if save_text:
                kept = tokens[:-1] if tokens and tokens[-1] in eog else tokens
                text = bytes(llm.detokenize(kept, prev_tokens=ids)).decode(
                    "utf-8", errors="replace")
            requests.append(RequestRecord(
                request_id=prompt.request_id, cycle=cycle, input_tokens=len(ids),
                output_tokens=len(tokens), submitted_s=submitted - t0, **latency._asdict(),
                output_text=text,
            ))
        requests.sort(key=lambda r: r.request_id)
        return InferenceOutput(
            requests=requests,
            window=Timestamps(start=window_start, end=window_end, duration_s=t1 - t0),
            compute_time_s=compute_time_s,
            num_batches=len(prepared),  # one sequence at a time
            padded_input_tokens=sum(r.input_tokens for r in requests),  # never padded
            warnings=list(loaded.warnings),
        )

    def version(self) -> str | None:
        try:
            return str(import_llama_cpp().__version__)
        except ConfigurationError:
            return None

    def batching(self, config: ExperimentConfig) -> str:
        return (f"sequential: one request at a time in one llama.cpp context (prompt in chunks "
                f"of {config.llama_cpp.n_batch} tokens); llama-cpp-python has no parallel "
                "slots in-process")

    def details(self, loaded: LoadedModel) -> dict[str, str]:
        """Threads, context, batch, offload and the CPU features llama.cpp was built for."""
        model: LlamaCppModel = loaded.model
        return dict(model.details)

    def release(self, loaded: LoadedModel | None) -> None:
        """Free llama.cpp's model and context, then drop the model."""
        model = getattr(loaded, "model", None) if loaded is not None else None
        if isinstance(model, LlamaCppModel) and model.llm is not None:
            try:
                model.llm.close()
            except Exception as exc:  # teardown must not mask the run's own outcome
                logger.warning(f"llama.cpp close failed: {_first_line(exc)}")
            model.llm = None
        super().release(loaded)


# --------------------------------------------------------------------------- sampling


def sampling_kwargs(decoder: DecoderConfig) -> dict[str, Any]:
    """Sampling arguments of ``Llama.generate`` for ``decoder``.

    Greedy: ``temp 0`` (llama.cpp's greedy sampler; top_k / top_p / min_p unused). Sampling:
    temperature, top_k (0 disables it in both), top_p, min_p; typical-p and the frequency /
    presence penalties off. ``repeat_penalty`` = ``repetition_penalty`` in both modes.
    """
    sampling = decoder.mode == "sampling"
    return {
        "temp": decoder.temperature if sampling else 0.0,
        "top_k": decoder.top_k if sampling else 0,
        "top_p": decoder.top_p if sampling else 1.0,
        "min_p": decoder.min_p if sampling else 0.0,
        "typical_p": 1.0,
        "repeat_penalty": decoder.repetition_penalty,
        "frequency_penalty": 0.0,
        "presence_penalty": 0.0,
    }


def suppress_eog(
    eog_ids: Sequence[int], prompt_tokens: int, min_new_tokens: int
) -> Callable[[Any, Any], Any]:
    """A logits processor (``(input_ids, scores) -> scores``) that sets every
    end-of-generation token's logit to -inf while fewer than ``min_new_tokens`` tokens have
    been generated. ``input_ids`` holds the prompt and the tokens evaluated so far (every
    sampled token but the one being chosen)."""
    import numpy as np

    banned = np.asarray(eog_ids, dtype=np.intc)

    def processor(input_ids: Any, scores: Any) -> Any:
        if len(input_ids) - prompt_tokens < min_new_tokens:
            scores[banned] = -np.inf
        return scores

    return processor


def _decoder_warnings(config: ExperimentConfig) -> list[MeasurementWarning]:
    if config.decoder.repetition_penalty == 1.0:
        return []
    return [MeasurementWarning(
        code="llama_cpp_repeat_penalty",
        message=f"decoder.repetition_penalty {config.decoder.repetition_penalty} is llama.cpp's "
                "repeat penalty, over the generated tokens only (transformers also penalizes "
                "the prompt's tokens): texts differ between the engines")]


# --------------------------------------------------------------------------- engine facts


def engine_details(llama_cpp: Any, llm: Any, config: ExperimentConfig, device: str,
                   ) -> dict[str, str]:
    """What the result records about llama.cpp as built and configured."""
    params = llm.context_params
    system = llama_cpp.llama_print_system_info()
    details = {
        "n_ctx": str(llm.n_ctx()),
        "n_batch": str(params.n_batch),
        "n_ubatch": str(params.n_ubatch),
        "n_threads": str(params.n_threads),
        "n_threads_batch": str(params.n_threads_batch),
        "n_gpu_layers": str(config.llama_cpp.n_gpu_layers),
        "gpu_offload_supported": str(bool(llama_cpp.llama_supports_gpu_offload())).lower(),
        "device": device,
        "flash_attn": str(config.llama_cpp.flash_attn).lower(),
        "kv_cache_dtype": KV_CACHE_DTYPE,
        "kv_cache": "cleared before every request (no prefix reuse)",
        "cpu_count": str(os.cpu_count()),
        "system_info": (system.decode("utf-8", "replace") if isinstance(system, bytes)
                        else str(system)).strip(),
        "token_times": "Llama.generate token stream, time.perf_counter at each token",
        "sampling_order": "top_k, top_p, min_p, then temperature (llama.cpp's chain)",
        "memory_note": ("weights are memory-mapped from the GGUF file: the process's peak RSS "
                        "includes the pages read; torch peak figures are not read"),
    }
    return details
