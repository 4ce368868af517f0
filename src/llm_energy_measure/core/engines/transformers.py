"""The measured pass: batched ``generate`` calls with per-request tokens and latencies.

Window (``InferenceOutput.window``): opens after every batch is tokenized and moved to the
device, closes after the last batch; both edges follow a device synchronize. Compute time
(``compute_time_s``): the sum of the generate calls' durations, each bracketed by a
synchronize; simulated traffic waits sit inside the window but outside compute time.

Per request: input tokens = attention-mask sum of its row (no padding); output tokens = tokens
generated up to and including the first EOS (nothing after it); TTFT, token gaps and TPOT, the
row's own completion and e2e at the batch's return, from per-step timestamps recorded after
every decoding step (see ``core.timing``).
Submission is the start of the request's generate call, or its simulated arrival in traffic
mode (earlier when it waited for its batch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from llm_energy_measure.core.engines.base import InferenceEngine
from llm_energy_measure.core.generation import eos_token_ids, generation_kwargs, new_token_limits
from llm_energy_measure.core.timing import (
    arrivals_note,
    count_output_tokens,
    latencies,
    make_step_recorder,
    synchronize,
    workload_arrival_times,
)
from llm_energy_measure.core.types import InferenceOutput, LoadedModel, Prompt
from llm_energy_measure.domain import MeasurementWarning, RequestRecord, Timestamps
from llm_energy_measure.exceptions import InferenceError, is_out_of_memory

if TYPE_CHECKING:
    from llm_energy_measure.config.models import ExperimentConfig

_COMPILED_ATTR = "_llm_energy_measure_compiled"


@dataclass
class _Batch:
    prompts: list[Prompt]
    inputs: Any  # BatchEncoding on the model's input device
    max_new_tokens: int
    min_new_tokens: int


def _input_device(loaded: LoadedModel) -> Any:
    """Where input tensors go: the loaded device, or the model's first device when sharded."""
    if loaded.device == "auto":
        return loaded.model.device
    return loaded.device


def _compile_once(model: Any) -> MeasurementWarning:
    """Compile ``model.forward`` with torch.compile (only the first time it is asked)."""
    import torch

    if not getattr(model, _COMPILED_ATTR, False):
        model.forward = torch.compile(model.forward)
        setattr(model, _COMPILED_ATTR, True)
        logger.info("model.forward compiled with torch.compile")
    return MeasurementWarning(
        code="torch_compile", severity="info",
        message="model.forward runs under torch.compile; compilation happens in the first "
                "(warm-up) calls, outside the measured window when warm-up runs",
    )


def _prepare_batches(
    loaded: LoadedModel, prompts: Sequence[Prompt], config: ExperimentConfig
) -> tuple[list[_Batch], list[MeasurementWarning]]:
    """Group and tokenize every batch before the window opens (left padding).

    Each prompt is tokenized once: its token count (for grouping) and the batch tensors both
    come from that one encoding (padding a batch's encodings gives exactly what tokenizing
    the batch's texts with padding gives).
    """
    from llm_energy_measure.core.batching import plan_batches

    tokenizer = loaded.tokenizer
    encoded_all = tokenizer([p.text for p in prompts])
    ids_all: list[list[int]] = list(encoded_all["input_ids"])
    masks_all = encoded_all.get("attention_mask") or [[1] * len(ids) for ids in ids_all]
    row_of = {p.request_id: i for i, p in enumerate(prompts)}
    counts = [int(sum(mask)) for mask in masks_all]
    plan = plan_batches(prompts, counts, config.batching)
    device = _input_device(loaded)
    batches: list[_Batch] = []
    mixed_targets = 0
    for group in plan.batches:
        rows = [row_of[p.request_id] for p in group]
        encoded = tokenizer.pad(
            {"input_ids": [ids_all[r] for r in rows],
             "attention_mask": [masks_all[r] for r in rows]},
            padding=True, return_tensors="pt",
        )
        max_new, min_new = new_token_limits(group, config.decoder)
        targets = {p.target_output_tokens for p in group}
        if len(targets) > 1:
            mixed_targets += 1
        batches.append(_Batch(list(group), encoded.to(device), max_new, min_new))
    warnings = list(plan.warnings)
    if mixed_targets:
        warnings.append(MeasurementWarning(
            code="mixed_output_targets",
            message=f"{mixed_targets} batch(es) mixed prompts with different target output "
                    "lengths: every sequence of such a batch generated the batch's largest "
                    "target (and is counted as such)"))
    return batches, warnings


def _generate(model: Any, batch: _Batch, kwargs: dict[str, Any], recorder: Any) -> Any:
    from transformers import StoppingCriteriaList

    try:
        return model.generate(
            **batch.inputs,
            **kwargs,
            max_new_tokens=batch.max_new_tokens,
            min_new_tokens=batch.min_new_tokens or None,
            stopping_criteria=StoppingCriteriaList([recorder]),
        )
    except Exception as exc:
        size = len(batch.prompts)
        if is_out_of_memory(exc):
            raise InferenceError(
                f"out of memory during generate with a batch of {size} prompt(s) "
                f"(max_new_tokens {batch.max_new_tokens}): lower batching.batch_size or "
                "decoder.max_new_tokens, use batching.strategy: token_budget, or a lower "
                "model.precision / quantization"
            ) from exc
        raise InferenceError(
            f"generate failed on a batch of {size} prompt(s): {type(exc).__name__}: {exc}"
        ) from exc


def run_inference(
    loaded: LoadedModel,
    prompts: Sequence[Prompt],
    config: ExperimentConfig,
    *,
    cycle: int = 0,
    on_batch_done: Callable[[int], None] | None = None,
    arrival_times_s: Sequence[float] | None = None,
    on_window_open: Callable[[], None] | None = None,
    on_window_close: Callable[[], None] | None = None,
) -> InferenceOutput:
    """Run ``prompts`` through ``loaded.model.generate`` in batches and measure each request.

    ``cycle`` seeds sampling (``config.seed + cycle``; negative cycles, used for warm-up, use
    ``config.seed``) and labels the requests. ``on_batch_done(n)`` is called after each batch
    with the number of requests finished so far in this call. ``arrival_times_s`` (seconds
    after the window opens, aligned with ``prompts``) overrides the arrivals that
    ``config.traffic`` would simulate (one system-wide process sharded by request id, see
    ``timing.workload_arrival_times``); with either, each batch waits (sleeps) until its last
    request has arrived. Times in the returned RequestRecords are relative to the window start.
    ``on_window_open`` runs right after the opening device synchronize and
    ``on_window_close`` right after the closing one, so that energy and memory windows
    bracket exactly the measured window (tokenization happens before it opens).
    """
    import torch

    if not prompts:
        raise InferenceError("no prompts to run: the workload of this process is empty")
    if arrival_times_s is not None and len(arrival_times_s) != len(prompts):
        raise InferenceError(
            f"{len(arrival_times_s)} arrival times for {len(prompts)} prompts: they must align"
        )
    model, tokenizer = loaded.model, loaded.tokenizer
    warnings: list[MeasurementWarning] = list(loaded.warnings)
    if config.inference.torch_compile:
        warnings.append(_compile_once(model))
    batches, batch_warnings = _prepare_batches(loaded, prompts, config)
    warnings.extend(batch_warnings)

    arrivals: dict[int, float] | None = None
    if arrival_times_s is None and config.traffic.enabled:
        arrival_times_s = workload_arrival_times(prompts, config.traffic, config.seed)
        warnings.append(arrivals_note(config.traffic, config.seed, len(prompts)))
    if arrival_times_s is not None:
        arrivals = {p.request_id: float(t) for p, t in zip(prompts, arrival_times_s, strict=True)}

    eos_ids = eos_token_ids(model, tokenizer)
    base_kwargs = generation_kwargs(
        config.decoder, config.inference, pad_token_id=tokenizer.pad_token_id, eos_ids=eos_ids
    )
    torch.manual_seed(config.seed + cycle if cycle >= 0 else config.seed)

    # Token ids, step times and submit times per batch; turned into records after the window
    # closes, so that counting, EOS scans and decoding are not measured.
    finished: list[tuple[_Batch, Any, list[float], list[float], float]] = []
    padded_input_tokens = sum(int(b.inputs["input_ids"].numel()) for b in batches)
    compute_time_s = 0.0
    done = 0

    recorder = make_step_recorder(loaded.device)
    synchronize(loaded.device)
    if on_window_open is not None:
        on_window_open()
    window_start = time.time()
    t0 = time.perf_counter()
    for batch in batches:
        if arrivals is not None:
            last_arrival_s = max(arrivals[p.request_id] for p in batch.prompts)
            wait_s = t0 + last_arrival_s - time.perf_counter()
            if wait_s > 0:
                time.sleep(wait_s)  # simulated traffic: inside the window, outside compute
        recorder.reset()
        synchronize(loaded.device)
        start = time.perf_counter()
        output_ids = _generate(model, batch, base_kwargs, recorder)
        synchronize(loaded.device)
        returned = time.perf_counter()
        compute_time_s += returned - start

        submitted = (
            [t0 + arrivals[p.request_id] for p in batch.prompts]
            if arrivals is not None else [start] * len(batch.prompts)
        )
        finished.append((batch, output_ids, list(recorder.times_s), submitted, returned))
        done += len(batch.prompts)
        if on_batch_done is not None:
            on_batch_done(done)
    synchronize(loaded.device)
    t1 = time.perf_counter()
    window_end = time.time()
    if on_window_close is not None:
        on_window_close()

    requests = [
        record
        for batch, output_ids, step_times_s, submitted, returned in finished
        for record in _measure_rows(
            batch, output_ids, step_times_s, submitted, t0, eos_ids, tokenizer,
            cycle=cycle, save_text=config.inference.save_outputs, returned=returned,
        )
    ]
    requests.sort(key=lambda record: record.request_id)
    return InferenceOutput(
        requests=requests,
        window=Timestamps(start=window_start, end=window_end, duration_s=t1 - t0),
        compute_time_s=compute_time_s,
        num_batches=len(batches),
        padded_input_tokens=padded_input_tokens,
        warnings=warnings,
    )


def _measure_rows(
    batch: _Batch,
    output_ids: Any,
    step_times_s: Sequence[float],
    submitted: Sequence[float],
    t0: float,
    eos_ids: Sequence[int],
    tokenizer: Any,
    *,
    cycle: int,
    save_text: bool,
    returned: float,
) -> list[RequestRecord]:
    """Tokens and latencies of each row of one finished batch (times on the perf clock;
    ``returned``: when the batch's generate call returned)."""
    prompt_len = int(batch.inputs["input_ids"].shape[1])
    generated: list[list[int]] = output_ids[:, prompt_len:].tolist()
    real_inputs: list[int] = batch.inputs["attention_mask"].sum(dim=1).tolist()
    # Steps beyond the kept tokens (a look-ahead step undone by generate) are ignored.
    steps_s = list(step_times_s[: len(generated[0])])
    rows: list[RequestRecord] = []
    for row, prompt in enumerate(batch.prompts):
        n_out = count_output_tokens(generated[row], eos_ids)
        latency = latencies(steps_s, n_out, submitted[row], returned)
        text = (
            tokenizer.decode(generated[row][:n_out], skip_special_tokens=True)
            if save_text else None
        )
        rows.append(RequestRecord(
            request_id=prompt.request_id, cycle=cycle,
            input_tokens=int(real_inputs[row]), output_tokens=n_out,
            submitted_s=submitted[row] - t0, **latency._asdict(), output_text=text,
        ))
    return rows


class TransformersEngine(InferenceEngine):
    """transformers ``generate`` in static batches (see ``run_inference``)."""

    name = "transformers"

    def load(self, config: ExperimentConfig) -> LoadedModel:
        """Hub id, local folder, GGUF file (dequantized) or builtin model; see model_loader."""
        from llm_energy_measure.core.model_loader import load_model_tokenizer

        return load_model_tokenizer(config)

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
        """Measure one pass over ``prompts``; see ``run_inference``."""
        return run_inference(
            loaded, prompts, config, cycle=cycle, on_batch_done=on_batch_done,
            on_window_open=on_window_open, on_window_close=on_window_close,
        )

    def version(self) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("transformers")
        except PackageNotFoundError:  # pragma: no cover - a run dependency
            return None

    def batching(self, config: ExperimentConfig) -> str:
        b = config.batching
        if b.strategy == "token_budget":
            return (f"static batches (token_budget: at most {b.max_tokens_per_batch} padded "
                    f"input tokens, at most {b.batch_size} prompts)")
        return f"static batches ({b.strategy}, batch_size {b.batch_size})"
