"""Engine ``openai``: an OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp server, ...)
measured under load.

``load`` opens the endpoint (starting the managed server when the config has a ``server``
section) and describes the model when its files are on this host; ``run`` sends the load
(``core.serving.client``: open loop on a seeded schedule, or N in flight) inside the measured
window, which opens right before the first send and closes at the last response's end.
Every request is kept, failed or not, and appended to the run's JSONL file as it ends. The
server's own Prometheus counts are scraped right before and after the window.

The model runs in the server's processes: FLOPs are modelled only when the model's
architecture is known here, and this process's memory is not the model's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.engines.base import EngineCapabilities, InferenceEngine
from llm_energy_measure.core.serving.session import Session
from llm_energy_measure.core.types import InferenceOutput, LoadedModel, Prompt, ServingRun
from llm_energy_measure.domain import (
    MeasurementWarning,
    ModelInfo,
    OutputLength,
    ServerCheck,
    Timestamps,
)
from llm_energy_measure.exceptions import InferenceError, MissingExtraError

#: A p99 send lag above this (s) draws a ``send_lag`` warning.
SEND_LAG_WARNING_S = 0.010
#: Requests a closed loop with ``load.duration_s`` may draw (prompts are reused in order).
MAX_DURATION_REQUESTS = 10_000_000


class CycledSpecs(Sequence[Any]):
    """Request specs over the prompts, reused in order, built when first read."""

    def __init__(self, prompts: Sequence[Prompt], count: int,
                 make: Callable[[int, Prompt], Any]) -> None:
        self._prompts = prompts
        self._count = count
        self._make = make

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if not -self._count <= index < self._count:
            raise IndexError(index)
        index %= self._count
        return self._make(index, self._prompts[index % len(self._prompts)])


def sampling_body(config: ExperimentConfig) -> dict[str, Any]:
    """Decoder settings as OpenAI request fields (``top_k``, ``min_p`` and
    ``repetition_penalty`` are extensions vLLM, SGLang and llama.cpp accept; sent only when
    they differ from the neutral value)."""
    d = config.decoder
    body: dict[str, Any] = {"seed": config.seed}
    if d.mode == "greedy":
        body["temperature"] = 0.0
    else:
        body |= {"temperature": d.temperature, "top_p": d.top_p}
        if d.top_k > 0:
            body["top_k"] = d.top_k
        if d.min_p > 0:
            body["min_p"] = d.min_p
    if d.repetition_penalty != 1.0:
        body["repetition_penalty"] = d.repetition_penalty
    return body


def describe_model(config: ExperimentConfig) -> tuple[ModelInfo, Any, str | None]:
    """ModelInfo and tokenizer of the served model when its files are on this host (managed
    servers, and unmanaged ones whose ``model.name`` is set), else an ``endpoint`` ModelInfo
    with null sizes and no tokenizer. Also the model's local path (for a managed server)."""
    described = config.server is not None or "name" in config.model.model_fields_set
    if described:
        try:
            from transformers import AutoTokenizer

            from llm_energy_measure.core.engines.vllm import describe_vllm_model
            from llm_energy_measure.core.model_source import resolve_model_source

            source = resolve_model_source(config.model)
            info, _ = describe_vllm_model(source, config, config.model.name)
            tokenizer = AutoTokenizer.from_pretrained(str(source.location))
            quant = info.quantization.model_copy(update={"method": "none", "details": {}})
            return info.model_copy(update={"quantization": quant}), tokenizer, str(
                source.location)
        except Exception as exc:  # the model is not readable here: described by the server
            if config.server is not None and config.server.engine == "vllm":
                raise InferenceError(f"cannot read model {config.model.name!r} for the "
                                     f"managed server: {exc}") from exc
            logger.info(f"model {config.model.name!r} not readable here ({exc}); "
                        "described as served")
    name = config.endpoint.model or config.model.name
    return ModelInfo(name=name, source="endpoint", num_parameters=None, dtype="unknown",
                     weight_bytes=None), None, None


class OpenAIEngine(InferenceEngine):
    """An OpenAI-compatible endpoint under load (see the module docstring)."""

    name = "openai"

    def __init__(self, *, records_path: Path | None = None,
                 server_log: Path | None = None) -> None:
        self.capabilities = EngineCapabilities(
            token_timestamps=True, token_gaps=True, flops_by_architecture=False,
            torch_memory_peaks=False, process_memory=False,
        )
        self._records_path = records_path
        self._server_log = server_log

    # loading --------------------------------------------------------------------------

    def load(self, config: ExperimentConfig) -> LoadedModel:
        from llm_energy_measure.core.serving.session import open_session

        try:
            import httpx  # noqa: F401  (the load generator's HTTP client)
        except ImportError:
            raise MissingExtraError("serving", "httpx", "engine openai") from None

        info, tokenizer, path = describe_model(config)
        self.capabilities = EngineCapabilities(
            token_timestamps=True, token_gaps=True,
            flops_by_architecture=info.source != "endpoint", torch_memory_peaks=False,
            process_memory=False,
        )
        session = open_session(config, model_path=path, server_log=self._server_log)
        warnings: list[MeasurementWarning] = []
        if session.extension_note is not None:
            warnings.append(MeasurementWarning(code="fixed_length_unsupported",
                                               message=session.extension_note))
        how = (f" (server shared by {session.shared_by})" if session.shared_by is not None
               else " (managed server)" if session.managed is not None else "")
        logger.info(f"endpoint {session.base_url} serves {session.served_model!r}{how}")
        return LoadedModel(model=session, tokenizer=tokenizer, info=info, device="endpoint",
                           warnings=warnings)

    def warmup_plan(self, prompts: Sequence[Prompt],
                    config: ExperimentConfig) -> tuple[list[Prompt], int | None]:
        """``load.warmup_requests`` requests, sent once before the first window."""
        n = config.load.warmup_requests
        if n == 0 or not prompts:
            return [], 0
        return [prompts[i % len(prompts)] for i in range(n)], 1

    # running --------------------------------------------------------------------------

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
        from llm_energy_measure.core.serving.client import (
            EndpointSettings,
            RequestResult,
            RequestSpec,
            run_load_sync,
        )
        from llm_energy_measure.core.serving.records import Converted, RecordsFile, convert
        from llm_energy_measure.interrupts import deferred_stops, raise_if_stopped, stop_requested

        session: Session = loaded.model
        warm = cycle < 0
        load = config.load
        extra = sampling_body(config)
        if config.decoder.fixed_length and session.extensions:
            extra |= {"ignore_eos": True}

        def make(index: int, prompt: Prompt) -> RequestSpec:
            max_tokens = prompt.target_output_tokens or config.decoder.max_new_tokens
            body = dict(extra)
            if "ignore_eos" in body:
                body["min_tokens"] = max_tokens
            return RequestSpec(request_id=index, prompt=prompt.text, max_tokens=max_tokens,
                               extra_body=body)

        schedule, concurrency, count = self._shape(config, len(prompts), warm)
        specs = CycledSpecs(prompts, count, make)
        texts = {i: prompts[i % len(prompts)].text for i in range(min(count, len(prompts)))}
        counter = _token_counter(loaded.tokenizer)
        converted: list[Converted] = []
        records = RecordsFile(None if warm else self._records_path)

        def on_result(result: RequestResult) -> None:
            prompt = texts.get(result.request_id % max(1, len(prompts)), "")
            item = convert(result, prompt=prompt, cycle=cycle, count=counter,
                           save_text=config.inference.save_outputs)
            converted.append(item)
            records.append({**item.record.model_dump(mode="json"),
                            "token_method": item.token_method})
            if on_batch_done is not None:
                on_batch_done(len(converted))

        server = session.managed

        def should_stop() -> bool:
            return stop_requested() or (server is not None and not server.alive())

        settings = EndpointSettings(
            base_url=session.base_url, model=session.served_model, api=config.endpoint.api,
            api_key=session.api_key, connect_timeout_s=session.connect_timeout_s,
            read_timeout_s=session.read_timeout_s,
        )
        before = None if warm else _scrape(session)
        records.open()
        try:
            with deferred_stops():
                result = run_load_sync(
                    settings, specs, schedule=schedule, concurrency=concurrency,
                    duration_s=None if warm else load.duration_s,
                    max_in_flight=load.max_in_flight,
                    breaker_failures=load.max_consecutive_failures,
                    on_result=on_result, should_stop=should_stop,
                    on_start=None if warm else on_window_open,
                )
            if on_window_close is not None and not warm:
                on_window_close()
        finally:
            records.close()
        if warm:
            raise_if_stopped()
        if server is not None and not server.alive():
            log = self._server_log
            if session.shared_by is not None:
                how = f"the shared server of {session.shared_by} (pid {server.pid}) exited"
                log = server.shared.log_path
            else:
                how = f"the managed server exited with code {server.returncode}"
            raise InferenceError(
                f"{how} during the run; "
                f"{sum(1 for c in converted if c.record.ok)} request(s) had completed"
                + (f" (records in {self._records_path})" if self._records_path else "")
                + (f"; its log: {log}" if log else ""))
        stop_reason = result.stop_reason
        after = None if warm else _scrape(session)
        return self._output(config, session, converted, result, stop_reason, before, after)

    def _shape(self, config: ExperimentConfig, num_prompts: int,
               warm: bool) -> tuple[list[float] | None, int | None, int]:
        """(schedule, concurrency, requests) of one pass: warm-up sends its requests all at
        once; open loop follows the seeded schedule; closed loop keeps N in flight."""
        from llm_energy_measure.core.serving.schedule import arrival_times, arrivals_for_duration

        load = config.load
        if warm:
            return None, num_prompts, num_prompts
        n = load.num_requests or config.prompts.num_prompts
        if load.arrival == "concurrency":
            count = MAX_DURATION_REQUESTS if load.duration_s is not None else n
            return None, load.concurrency, count
        assert load.rate_per_s is not None
        if load.duration_s is not None:
            schedule = arrivals_for_duration(load.arrival, load.rate_per_s, load.duration_s,
                                             config.seed)
        else:
            schedule = arrival_times(load.arrival, load.rate_per_s, n, config.seed)
        return schedule, None, len(schedule)

    def _output(self, config: ExperimentConfig, session: Session, converted: list[Any],
                result: Any, stop_reason: str, before: Any, after: Any) -> InferenceOutput:
        records = sorted((c.record for c in converted), key=lambda r: r.submitted_s)
        ok = [r for r in records if r.ok]
        fixed = config.decoder.fixed_length
        max_tokens = config.decoder.max_new_tokens
        honoured = all(r.output_tokens == max_tokens for r in ok) if fixed and ok else None
        warnings: list[MeasurementWarning] = []
        if fixed and honoured is False:
            short = sum(1 for r in ok if r.output_tokens != max_tokens)
            warnings.append(MeasurementWarning(
                code="fixed_length_not_honoured",
                message=f"{short} of {len(ok)} request(s) did not return exactly "
                        f"max_tokens={max_tokens} output tokens"))
        lags = sorted(r.submitted_s - r.scheduled_s for r in records if r.scheduled_s is not None)
        if lags and lags[int(0.99 * (len(lags) - 1))] > SEND_LAG_WARNING_S:
            p99 = lags[int(0.99 * (len(lags) - 1))]
            warnings.append(MeasurementWarning(
                code="send_lag",
                message=f"the load generator sent requests late (p99 {p99 * 1000:.1f} ms after "
                        "schedule): the offered load was lower than configured; the client "
                        "host may be busy (e.g. sharing its cores with the server)"))
        failed = len(records) - len(ok)
        if failed:
            warnings.append(MeasurementWarning(
                code="failed_requests",
                message=f"{failed} of {len(records)} request(s) failed or were cancelled: "
                        "kept in the records, left out of tokens, throughput and latency"))
        if stop_reason == "circuit_open":
            warnings.append(MeasurementWarning(
                code="circuit_open", severity="error",
                message="the load stopped early: the endpoint failed too many requests in a "
                        "row (circuit breaker open)"))
        if stop_reason == "stopped":
            warnings.append(MeasurementWarning(
                code="partial", severity="error",
                message="the run was stopped: in-flight requests were cancelled; the result "
                        "holds the requests done so far"))
        check = _cross_check(session, before, after, records)
        if check is not None and check.mismatches:
            warnings.extend(MeasurementWarning(code="server_count_mismatch", message=m)
                            for m in check.mismatches)
        token_methods = sorted({c.token_method for c in converted}) or ["usage"]
        itl_methods = sorted({c.itl_method for c in converted}) or ["per-chunk"]
        serving = ServingRun(
            endpoint=session.base_url, served_model=session.served_model,
            api=config.endpoint.api, managed_server=session.managed is not None,
            server_command=session.command, arrival=config.load.arrival,
            rate_per_s=config.load.rate_per_s, concurrency=config.load.concurrency,
            stop_reason=stop_reason,  # type: ignore[arg-type]
            token_count_method=", ".join(token_methods), itl_method=", ".join(itl_methods),
            output_length=OutputLength(
                requested="fixed" if fixed else "up_to", max_tokens=max_tokens,
                extensions=tuple(f for f in ("ignore_eos", "min_tokens")
                                 if fixed and f in session.extensions),
                honoured=honoured),
            server=check,
            records_file=str(self._records_path) if self._records_path else None,
        )
        start = result.started_at_epoch_s
        return InferenceOutput(
            requests=records,
            window=Timestamps(start=start, end=start + result.duration_s,
                              duration_s=result.duration_s),
            compute_time_s=result.duration_s, num_batches=1, warnings=warnings,
            serving=serving,
        )

    # facts ----------------------------------------------------------------------------

    def batching(self, config: ExperimentConfig) -> str:
        load = config.load
        if load.arrival == "concurrency":
            return f"closed loop, {load.concurrency} in flight; the server batches"
        return f"open loop, {load.arrival} arrivals at {load.rate_per_s:g}/s; the server batches"

    def details(self, loaded: LoadedModel) -> dict[str, str]:
        session: Session = loaded.model
        facts = {"endpoint": session.base_url, "served_model": session.served_model,
                 "api": session.api, "managed_server": str(session.managed is not None)}
        if session.server_version:
            facts["server_version"] = session.server_version
        if session.command:
            facts["server_command"] = " ".join(session.command)
        if session.managed is not None and session.managed.pid is not None:
            facts["server_pid"] = str(session.managed.pid)
        if session.shared_by is not None:
            facts["shared_server"] = session.shared_by
        return facts

    def release(self, loaded: LoadedModel | None) -> None:
        from llm_energy_measure.core.serving.session import close_session

        if loaded is not None and isinstance(loaded.model, Session):
            close_session(loaded.model)
        super().release(loaded)


def _token_counter(tokenizer: Any) -> Callable[[str], int] | None:
    if tokenizer is None:
        return None

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def _scrape(session: Session) -> Any:
    """The server's Prometheus samples, or None when it has none (the check is optional)."""
    from llm_energy_measure.core.serving.prometheus import scrape

    if session.metrics_url is None:
        return None
    started = time.perf_counter()
    try:
        samples = scrape(session.metrics_url, min(5.0, session.read_timeout_s))
    except Exception as exc:  # a server without metrics: no cross-check
        logger.debug(f"no server metrics at {session.metrics_url}: {exc}")
        session.metrics_url = None
        return None
    logger.debug(f"scraped {session.metrics_url} in {time.perf_counter() - started:.3f} s")
    return samples


def _cross_check(session: Session, before: Any, after: Any,
                 records: Sequence[Any]) -> ServerCheck | None:
    from llm_energy_measure.core.serving.prometheus import cross_check, server_snapshot

    if before is None or after is None or session.metrics_url is None:
        return None
    ok = [r for r in records if r.ok]
    counts, mismatches = cross_check(
        server_snapshot(before), server_snapshot(after),
        client_prompt_tokens=sum(r.input_tokens for r in ok),
        client_output_tokens=sum(r.output_tokens for r in ok),
        client_requests_ok=len(ok),
    )
    if not counts:
        return None
    return ServerCheck(metrics_url=session.metrics_url, counts=counts,
                       mismatches=tuple(mismatches))
