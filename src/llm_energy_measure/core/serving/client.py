"""The load generator: streams requests to an OpenAI-compatible endpoint and records each.

Open loop (``schedule`` given): request ``i`` is sent at ``t0 + schedule[i]`` whether or not
earlier ones finished; when ``max_in_flight`` requests are already in flight it waits, so
the lateness shows in ``sent_s - scheduled_s``. Closed loop (``concurrency`` N): N workers
each send the next request as soon as their previous one ended.

Times are seconds on one clock, ``time.perf_counter()``, relative to the load start ``t0``
(``LoadRun.started_at_epoch_s`` is ``time.time()`` at ``t0``). The HTTP clients are made
once, before ``t0``: one ``httpx.AsyncClient`` per ``REQUESTS_PER_CLIENT`` requests that may
be in flight (httpcore's pool costs grow with the square of its connections), each request
going to the first one with room (open loop) or to its worker's (closed loop). Each request's
body is built before its send time, so at the send time only the send is left.
Sleeps are asyncio sleeps up to ``SPIN_S`` before the send time, then yields to the event
loop until it is reached (sub-millisecond sends without blocking other streams).

Stops:
- ``should_stop()`` is polled every ``POLL_S`` and before each send; when it returns true
  every request in flight is cancelled, recorded with status ``cancelled`` and ``end_s``
  the cancel time, and the run ends with ``stop_reason`` ``stopped``. It must be cheap.
  If it raises (a KeyboardInterrupt from a signal handler, say), the run stops the same way
  and the exception is re-raised once every in-flight request has been recorded.
- Circuit breaker: after ``breaker_failures`` consecutive failed requests (status
  ``error``, in the order they ended; a success resets the count, a cancel does not count)
  no new request is sent and those in flight are cancelled at once (recorded
  ``cancelled``): the run is invalid anyway, and a stuck server would otherwise hold it
  until the read timeout. ``stop_reason`` ``circuit_open``.
- ``duration_s``: closed loop, no new request once the time is up; those in flight finish.
  Open loop, requests scheduled at or after ``duration_s`` are not sent. ``stop_reason``
  ``duration`` when some were left unsent.
- Ctrl+C while the loop runs (KeyboardInterrupt raised into the event loop, or the run's
  task cancelled): every request in flight is cancelled and recorded through
  ``on_result`` before the KeyboardInterrupt / CancelledError propagates; no ``LoadRun``
  is returned, so callers keep the records ``on_result`` wrote.

``on_result`` is called synchronously, on the event loop, as each request ends (cancelled
ones included): it must be fast (append a line to an open file; no fsync, no network), or
it delays the sends that follow. An exception from it stops the run like ``should_stop``
and is re-raised.

Environment proxies and ``.netrc`` are not read (``trust_env=False``): a proxy would be
part of the measured path, and no credential other than ``api_key`` is ever sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from loguru import logger

Api = Literal["completions", "chat"]
Status = Literal["ok", "error", "cancelled"]
StopReason = Literal["completed", "duration", "circuit_open", "stopped"]

#: Seconds between two polls of ``should_stop`` (and the longest uninterrupted sleep).
POLL_S = 0.05
#: Seconds before a send time at which the asyncio sleep ends and yielding begins.
SPIN_S = 0.002
#: Longest error text kept in a ``RequestResult``.
ERROR_CHARS = 300
#: Bytes of a non-200 body read to find its first line.
_ERROR_BODY_BYTES = 4096
#: Requests in flight per ``httpx.AsyncClient``: httpcore's pool rescans every connection
#: on each request it assigns or releases (cost ~ connections x requests): with 100
#: connections in one pool that is ~20 ms of CPU per request, with clients of this many
#: ~2 ms at 100 or 400 in flight. The clients are made once, before ``t0``.
REQUESTS_PER_CLIENT = 8


@dataclass(frozen=True)
class EndpointSettings:
    """Where requests go: ``base_url`` ending in ``/v1``, the served ``model`` name, and the
    ``api`` (``completions``: POST {base_url}/completions with ``prompt``; ``chat``: POST
    {base_url}/chat/completions with one user message). ``api_key`` (read by the caller from
    the environment) is sent only as ``Authorization: Bearer``, never shown in ``repr``.
    Timeouts in seconds: ``connect_timeout_s`` to open a connection, ``read_timeout_s``
    between two reads of a response (and to write a request).
    """

    base_url: str
    model: str
    api: Api = "completions"
    api_key: str | None = field(default=None, repr=False)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.api not in ("completions", "chat"):
            raise ValueError(f"api must be 'completions' or 'chat', got {self.api!r}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got "
                             f"{self.base_url!r}")
        if not (self.connect_timeout_s > 0 and self.read_timeout_s > 0):
            raise ValueError("connect_timeout_s and read_timeout_s must be > 0")

    @property
    def url(self) -> str:
        """The URL requests are posted to."""
        path = "/chat/completions" if self.api == "chat" else "/completions"
        return self.base_url.rstrip("/") + path


@dataclass(frozen=True)
class RequestSpec:
    """One request to send: ``extra_body`` (sampling: temperature, top_p, seed, ignore_eos,
    min_tokens, ...) is merged last into the JSON body, so it may override any key."""

    request_id: int
    prompt: str
    max_tokens: int
    extra_body: Mapping[str, object] = field(default_factory=dict)


@dataclass
class RequestResult:
    """What happened to one request; times in seconds since the load start ``t0``.

    ``scheduled_s``: its send offset (open loop; None in closed loop). ``sent_s``: when it
    was sent. ``first_token_s``: arrival of the first chunk carrying text (None if none
    did), equal to ``chunk_times_s[0]``. ``chunk_times_s`` / ``chunk_texts``: every chunk
    carrying text (reasoning text of chat models included). ``end_s``: when ``data:
    [DONE]`` arrived, or the failure / cancel time. Token counts come from the usage chunk
    (None when the server sent none). ``error``: one line, at most ``ERROR_CHARS``
    characters, never the API key. ``finish_reason``: the last one the server sent.
    """

    request_id: int
    scheduled_s: float | None
    sent_s: float
    first_token_s: float | None = None
    chunk_times_s: list[float] = field(default_factory=list)
    chunk_texts: list[str] = field(default_factory=list)
    end_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    status: Status = "ok"
    http_status: int | None = None
    error: str | None = None
    text: str = ""
    finish_reason: str | None = None


@dataclass
class LoadRun:
    """One load run: ``results`` holds every request sent (failed and cancelled ones too),
    ordered by ``request_id``; ``duration_s`` runs from ``t0`` to the last ``end_s``;
    ``peak_in_flight`` is the most requests in flight at once."""

    results: list[RequestResult]
    started_at_epoch_s: float
    duration_s: float
    stop_reason: StopReason
    peak_in_flight: int


#: Modules httpx imports at its first connection (~0.1 s): imported before ``t0`` so the
#: first requests' times do not include them.
_FIRST_USE_MODULES = ("h11", "httpcore", "anyio", "anyio._backends._asyncio",
                      "httpcore._backends.anyio")


def _warm_imports() -> None:
    for name in _FIRST_USE_MODULES:
        with contextlib.suppress(ImportError):  # private layout of another httpx version
            importlib.import_module(name)
    # httpcore tries ``import sniffio`` on every request and falls back to asyncio when it
    # is missing; a failed import is not cached, so each try searches sys.path again
    # (~0.2 ms, a tenth of the client's time per request). A None entry makes that import
    # fail at once, which is what it did anyway.
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def request_body(endpoint: EndpointSettings, spec: RequestSpec) -> dict[str, object]:
    """The JSON body of ``spec``: model, prompt or messages, ``max_tokens``, streaming with
    usage, then ``spec.extra_body``."""
    body: dict[str, object] = {"model": endpoint.model}
    if endpoint.api == "chat":
        body["messages"] = [{"role": "user", "content": spec.prompt}]
    else:
        body["prompt"] = spec.prompt
    body.update(max_tokens=spec.max_tokens, stream=True,
                stream_options={"include_usage": True})
    body.update(spec.extra_body)
    return body


def _one_line(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:ERROR_CHARS]


def _describe(exc: BaseException, secret: str | None) -> str:
    message = _one_line(str(exc), secret)
    return (f"{type(exc).__name__}: {message}" if message else type(exc).__name__)[:ERROR_CHARS]


def _sse_error(obj: Mapping[str, Any]) -> str | None:
    """The message of an error event (``{"error": {...}}`` or ``{"object": "error"}``)."""
    error = obj.get("error")
    if isinstance(error, Mapping):
        return str(error.get("message") or error)
    if error:
        return str(error)
    if obj.get("object") == "error":
        return str(obj.get("message", "error"))
    return None


def _choice_text(choice: Mapping[str, Any], api: Api) -> str:
    if api == "completions":
        return str(choice.get("text") or "")
    delta = choice.get("delta") or {}
    reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
    return str(reasoning) + str(delta.get("content") or "")


class _Load:
    """The state of one run; every method runs on the event loop's thread."""

    def __init__(self, endpoint: EndpointSettings, specs: Sequence[RequestSpec],
                 duration_s: float | None, max_in_flight: int, breaker_failures: int,
                 on_result: Callable[[RequestResult], None] | None,
                 should_stop: Callable[[], bool]) -> None:
        self.endpoint = endpoint
        self.specs = specs
        self.duration_s = duration_s
        self.max_in_flight = max_in_flight
        self.breaker_failures = breaker_failures
        self.on_result = on_result
        self.should_stop = should_stop
        self.results: list[RequestResult] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.failures = 0
        self.next_index = 0
        self.reason: StopReason | None = None
        self.halted = False
        self.error: BaseException | None = None
        self.wake = asyncio.Event()
        self.url = httpx.URL(endpoint.url)  # parsed once, not per request
        self.clients: list[httpx.AsyncClient] = []
        self.client_in_flight: list[int] = []
        self.t0 = 0.0  # set by run_load right after on_start()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    # --- stopping --------------------------------------------------------------------------

    def halt(self, reason: StopReason, *, cancel: bool) -> None:
        """Send nothing more; with ``cancel``, cancel every request in flight."""
        if self.reason is None or (cancel and self.reason == "duration"):
            self.reason = reason
        self.halted = True
        self.wake.set()
        if cancel:
            current = asyncio.current_task()
            for task in list(self.tasks):
                if task is not current:
                    task.cancel()

    def stop_requested(self) -> bool:
        """Poll ``should_stop`` (an exception from it stops the run and is kept)."""
        try:
            stop = bool(self.should_stop())
        except BaseException as exc:  # re-raised by run_load after the cleanup
            self.error = self.error or exc
            stop = True
        if stop:
            self.halt("stopped", cancel=True)
        return stop

    async def watch(self) -> None:
        while not self.stop_requested():
            await asyncio.sleep(POLL_S)

    # --- one request -----------------------------------------------------------------------

    def admit(self, client_index: int) -> None:
        self.in_flight += 1
        self.client_in_flight[client_index] += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def finish(self, result: RequestResult, client_index: int) -> None:
        """Record an ended request: results, on_result, in-flight count, breaker."""
        self.in_flight -= 1
        self.client_in_flight[client_index] -= 1
        self.wake.set()
        self.results.append(result)
        if self.on_result is not None:
            try:
                self.on_result(result)
            except BaseException as exc:  # re-raised by run_load after the cleanup
                self.error = self.error or exc
                self.halt("stopped", cancel=True)
        if result.status == "ok":
            self.failures = 0
        elif result.status == "error":
            self.failures += 1
            if self.failures >= self.breaker_failures and not self.halted:
                logger.warning("load stopped: {} consecutive failed requests (last: {})",
                               self.failures, result.error)
                self.halt("circuit_open", cancel=True)

    async def send(self, client_index: int, request: httpx.Request, spec: RequestSpec,
                   scheduled_s: float | None) -> None:
        """Send one admitted request and record it (cancelled ones too, then re-raise)."""
        result = RequestResult(request_id=spec.request_id, scheduled_s=scheduled_s,
                               sent_s=self.now())
        try:
            await self._exchange(self.clients[client_index], request, result)
        except asyncio.CancelledError:
            result.status, result.end_s = "cancelled", self.now()
            result.text = "".join(result.chunk_texts)
            self.finish(result, client_index)
            raise
        except Exception as exc:  # any failure is this request's, recorded
            result.status, result.end_s = "error", self.now()
            result.error = _describe(exc, self.endpoint.api_key)
            result.text = "".join(result.chunk_texts)
        self.finish(result, client_index)

    async def _exchange(self, client: httpx.AsyncClient, request: httpx.Request,
                        result: RequestResult) -> None:
        response = await client.send(request, stream=True)
        try:
            result.http_status = response.status_code
            if response.status_code != 200:
                head = b""
                async for part in response.aiter_bytes():
                    head += part
                    if len(head) >= _ERROR_BODY_BYTES:
                        break
                result.status, result.end_s = "error", self.now()
                text = head.decode("utf-8", "replace")
                result.error = (_one_line(text, self.endpoint.api_key)
                                or f"HTTP {response.status_code} with an empty body")
                return
            await self._read_stream(response, result)
        finally:
            await response.aclose()

    async def _read_stream(self, response: httpx.Response, result: RequestResult) -> None:
        api = self.endpoint.api
        done = False
        error: str | None = None
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": comments", "event:" lines
            data = line[5:].strip()
            if data == "[DONE]":
                if not done:
                    result.end_s, done = self.now(), True
                continue  # read to the end of the body, so the connection is reused
            t_s = self.now()
            obj = json.loads(data)
            error = error or _sse_error(obj)
            choices = obj.get("choices") or []
            if choices:
                choice = choices[0]
                text = _choice_text(choice, api)
                if text:
                    if result.first_token_s is None:
                        result.first_token_s = t_s
                    result.chunk_times_s.append(t_s)
                    result.chunk_texts.append(text)
                if choice.get("finish_reason"):
                    result.finish_reason = str(choice["finish_reason"])
            usage = obj.get("usage")
            if usage:
                result.prompt_tokens = usage.get("prompt_tokens")
                result.completion_tokens = usage.get("completion_tokens")
        result.text = "".join(result.chunk_texts)
        if not done:
            result.end_s = self.now()
            error = error or "the stream ended before data: [DONE]"
        if error is not None:
            result.status, result.error = "error", _one_line(error, self.endpoint.api_key)

    # --- the two loops ---------------------------------------------------------------------

    async def _sleep_until(self, offset_s: float) -> None:
        while True:
            remaining_s = offset_s - self.now()
            if remaining_s <= SPIN_S or self.halted:
                break
            await asyncio.sleep(min(remaining_s - SPIN_S, POLL_S))
        while self.now() < offset_s and not self.halted:
            await asyncio.sleep(0)

    def build(self, spec: RequestSpec) -> httpx.Request:
        return self.clients[0].build_request("POST", self.url,
                                             json=request_body(self.endpoint, spec))

    def pick_client(self) -> int:
        """The first client with fewer than ``REQUESTS_PER_CLIENT`` in flight (there is
        one: the clients hold the run's whole limit), so a light load reuses the
        connections of the first clients instead of opening new ones."""
        for i, count in enumerate(self.client_in_flight):
            if count < REQUESTS_PER_CLIENT:
                return i
        return self.client_in_flight.index(min(self.client_in_flight))

    async def open_loop(self, schedule: Sequence[float]) -> None:
        for i, offset_s in enumerate(schedule):
            if self.duration_s is not None and offset_s >= self.duration_s:
                self.halt("duration", cancel=False)
                return
            spec = self.specs[i]
            request = self.build(spec)
            await self._sleep_until(offset_s)
            while self.in_flight >= self.max_in_flight and not self.halted:
                self.wake.clear()
                await self.wake.wait()
            if self.halted or self.stop_requested():
                return
            client_index = self.pick_client()
            self.admit(client_index)
            task = asyncio.create_task(self.send(client_index, request, spec, offset_s))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            await asyncio.sleep(0)  # it sends now, not after the next request is built

    async def worker(self, client_index: int) -> None:
        while not self.halted:
            if self.duration_s is not None and self.now() >= self.duration_s:
                self.halt("duration", cancel=False)
                return
            if self.next_index >= len(self.specs) or self.stop_requested():
                return
            spec = self.specs[self.next_index]
            self.next_index += 1
            request = self.build(spec)
            self.admit(client_index)
            await self.send(client_index, request, spec, None)

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.wait(list(self.tasks))


def _check_args(specs: Sequence[RequestSpec], schedule: Sequence[float] | None,
                concurrency: int | None, duration_s: float | None, max_in_flight: int,
                breaker_failures: int) -> None:
    if (schedule is None) == (concurrency is None):
        raise ValueError("give exactly one of schedule (open loop) and concurrency (closed "
                         "loop)")
    if schedule is not None:
        if len(schedule) != len(specs):
            raise ValueError(f"{len(schedule)} send offsets for {len(specs)} requests")
        previous = 0.0
        for offset_s in schedule:
            if not (math.isfinite(offset_s) and offset_s >= previous):
                raise ValueError("schedule must be finite, >= 0 and non-decreasing")
            previous = offset_s
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if duration_s is not None and not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if max_in_flight < 1 or breaker_failures < 1:
        raise ValueError("max_in_flight and breaker_failures must be >= 1")


async def run_load(
    endpoint: EndpointSettings,
    specs: Sequence[RequestSpec],
    *,
    schedule: Sequence[float] | None,
    concurrency: int | None,
    duration_s: float | None = None,
    max_in_flight: int,
    breaker_failures: int = 5,
    on_result: Callable[[RequestResult], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_start: Callable[[], None] | None = None,
) -> LoadRun:
    """Send ``specs`` to ``endpoint`` and record every request (module docstring: stops).

    Exactly one of ``schedule`` (open loop: ``schedule[i]`` is the send offset in seconds of
    ``specs[i]``, non-decreasing, as from ``schedule.arrival_times``) and ``concurrency``
    (closed loop: requests kept in flight). ``max_in_flight`` caps the open loop (the
    closed loop has ``concurrency`` by construction). ``specs`` is only read through
    ``len()`` and indexing, so a closed loop with ``duration_s`` may pass a sequence
    computed on access. ``on_start()`` runs right before ``t0``, once the clients exist.
    """
    _check_args(specs, schedule, concurrency, duration_s, max_in_flight, breaker_failures)
    _warm_imports()
    pool = max(1, min(concurrency if concurrency is not None else max_in_flight, len(specs)))
    n_clients = math.ceil(pool / REQUESTS_PER_CLIENT)
    # No binding limit per client: the run's own count caps what is in flight.
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    timeout = httpx.Timeout(connect=endpoint.connect_timeout_s,
                            read=endpoint.read_timeout_s, write=endpoint.read_timeout_s,
                            pool=endpoint.read_timeout_s)
    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    load = _Load(endpoint, specs, duration_s, max_in_flight, breaker_failures, on_result,
                 should_stop)
    tls = httpx.create_ssl_context(trust_env=False)  # one for all clients (~50 ms each)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(n_clients):
            load.clients.append(await stack.enter_async_context(httpx.AsyncClient(
                limits=limits, timeout=timeout, headers=headers, trust_env=False,
                verify=tls)))
        load.client_in_flight = [0] * n_clients
        if on_start is not None:
            on_start()
        load.t0, started_at_epoch_s = time.perf_counter(), time.time()
        watcher = asyncio.create_task(load.watch())
        try:
            if schedule is not None:
                await load.open_loop(schedule)
            else:
                assert concurrency is not None
                for w in range(min(concurrency, len(specs))):
                    task = asyncio.create_task(load.worker(w // REQUESTS_PER_CLIENT))
                    load.tasks.add(task)
                    task.add_done_callback(load.tasks.discard)
            await load.drain()
        except BaseException:  # cancelled from outside, or Ctrl+C: record those in flight
            load.halt("stopped", cancel=True)
            await load.drain()
            raise
        finally:
            watcher.cancel()
    if load.error is not None:
        raise load.error
    ends = [r.end_s for r in load.results]
    return LoadRun(results=sorted(load.results, key=lambda r: r.request_id),
                   started_at_epoch_s=started_at_epoch_s,
                   duration_s=max(ends) if ends else load.now(),
                   stop_reason=load.reason or "completed",
                   peak_in_flight=load.peak_in_flight)


def run_load_sync(
    endpoint: EndpointSettings,
    specs: Sequence[RequestSpec],
    *,
    schedule: Sequence[float] | None,
    concurrency: int | None,
    duration_s: float | None = None,
    max_in_flight: int,
    breaker_failures: int = 5,
    on_result: Callable[[RequestResult], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_start: Callable[[], None] | None = None,
) -> LoadRun:
    """``run_load`` in a fresh event loop (``asyncio.run``); not from inside a running loop."""
    return asyncio.run(run_load(
        endpoint, specs, schedule=schedule, concurrency=concurrency, duration_s=duration_s,
        max_in_flight=max_in_flight, breaker_failures=breaker_failures, on_result=on_result,
        should_stop=should_stop, on_start=on_start))
