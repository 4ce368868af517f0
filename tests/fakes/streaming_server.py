"""A small OpenAI-compatible streaming server with scripted delays, for tests and benches.

``ScriptedServer`` runs an asyncio HTTP/1.1 server (keep-alive, chunked SSE responses) on
loopback in a background thread, so it serves many concurrent streams from one thread::

    with ScriptedServer(ttft_s=0.05, gap_s=0.01, tokens=5) as server:
        server.base_url   # "http://127.0.0.1:<port>/v1"
        ...
        server.records    # one RequestRecord per request, in arrival order
        server.max_concurrent

Routes: ``POST /v1/completions`` and ``/v1/chat/completions`` (streamed, ``stream: true``
required), ``GET /v1/models``, ``/health`` and ``/metrics`` (Prometheus text with vLLM's
names, counted from what it served). A response follows a ``Script`` (the constructor's
keywords), or what ``script_for(record)`` returns for that request. Times are
``time.perf_counter()`` seconds (CLOCK_MONOTONIC on Linux, so comparable across processes).

Stdlib only; ``python tests/fakes/streaming_server.py --port 0 --ttft-s 0 --tokens 1`` runs it
as a process (benches) and prints ``PORT <n>`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MODEL = "fake-model"


@dataclass(frozen=True)
class Script:
    """How one request is answered.

    ``tokens`` output tokens (``None``: the request's ``max_tokens``, 16 without), in chunks
    of ``tokens_per_chunk`` (the last may be shorter); the first chunk ``ttft_s`` seconds
    after the request arrived, then one chunk every ``gap_s`` seconds. ``status`` other than
    200 answers at once with ``error_body``. ``fail_after``: drop the connection after that
    many content chunks (a stream that breaks). ``include_usage``: send the usage chunk when
    the request asks for it (``stream_options.include_usage``); ``send_done``: end with
    ``data: [DONE]``. ``ttft_per_in_flight_s``: added to the TTFT for every other stream in
    flight when the request arrives (a server that slows down under load).
    """

    ttft_s: float = 0.05
    ttft_per_in_flight_s: float = 0.0
    gap_s: float = 0.01
    tokens: int | None = 5
    tokens_per_chunk: int = 1
    include_usage: bool = True
    fail_after: int | None = None
    status: int = 200
    error_body: str = '{"error": {"message": "scripted failure", "type": "server_error"}}'
    send_done: bool = True


@dataclass
class RequestRecord:
    """One request as the server saw it (times: ``time.perf_counter()`` seconds)."""

    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    arrival_s: float
    end_s: float | None = None
    status: int | None = None
    chunks_sent: int = 0


@dataclass
class _Counters:
    prompt_tokens: int = 0
    generation_tokens: int = 0
    success: int = 0
    in_flight: int = 0


class ScriptedServer:
    """The scripted OpenAI-compatible server on ``127.0.0.1:port`` (0: a free port).

    Use as a context manager (or ``start()`` / ``stop()``); ``stop`` closes every
    connection and returns within ``stop_timeout_s``.
    """

    def __init__(self, *, port: int = 0, script_for: Callable[[RequestRecord], Script]
                 | None = None, stop_timeout_s: float = 5.0, **script: Any) -> None:
        self.script = Script(**script)
        self.script_for = script_for
        self.stop_timeout_s = stop_timeout_s
        self.records: list[RequestRecord] = []
        self.max_concurrent = 0
        self._port = port
        self._counters = _Counters()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def in_flight(self) -> int:
        """Streams being answered now."""
        return self._counters.in_flight

    def start(self) -> ScriptedServer:
        self._thread = threading.Thread(target=self._run, name="scripted-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.stop_timeout_s) or self._error is not None:
            raise RuntimeError(f"scripted server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(self.stop_timeout_s)
        self._loop = self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._connection, "127.0.0.1", self._port, backlog=4096))
            self._port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            if self._handlers:
                loop.run_until_complete(asyncio.wait(list(self._handlers), timeout=1.0))
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    # --- HTTP ------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                body = json.loads(raw) if raw else None
                keep = await self._route(method, path, headers, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:  # stop(): end quietly (asyncio logs a cancelled
            return  # connection task as an error)
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _route(self, method: str, path: str, headers: dict[str, str],
                     body: dict[str, Any] | None, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must close."""
        if method == "GET" and path == "/health":
            return await _respond(writer, 200, b"", "text/plain")
        if method == "GET" and path == "/v1/models":
            models = {"object": "list", "data": [{"id": MODEL, "object": "model",
                                                  "owned_by": "fake"}]}
            return await _respond(writer, 200, json.dumps(models).encode())
        if method == "GET" and path == "/metrics":
            return await _respond(writer, 200, self.metrics_text().encode(),
                                  "text/plain; version=0.0.4")
        if method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
            return await self._generate(path, headers, body or {}, writer)
        return await _respond(writer, 404, b'{"error": {"message": "not found"}}')

    async def _generate(self, path: str, headers: dict[str, str], body: dict[str, Any],
                        writer: asyncio.StreamWriter) -> bool:
        with self._lock:
            record = RequestRecord(index=len(self.records), method="POST", path=path,
                                   headers=headers, body=body, arrival_s=time.perf_counter())
            self.records.append(record)
        script = self.script_for(record) if self.script_for is not None else self.script
        if script.status != 200 or not body.get("stream"):
            status = script.status if script.status != 200 else 400
            text = script.error_body if script.status != 200 else \
                '{"error": {"message": "only stream: true is served"}}'
            record.status, record.end_s = status, time.perf_counter()
            return await _respond(writer, status, text.encode())
        counters = self._counters
        counters.in_flight += 1
        self.max_concurrent = max(self.max_concurrent, counters.in_flight)
        record.status = 200
        try:
            return await self._stream(record, script, body, writer)
        finally:
            if record.end_s is None:  # broken or cancelled
                counters.in_flight -= 1
                record.end_s = time.perf_counter()

    async def _stream(self, record: RequestRecord, script: Script, body: dict[str, Any],
                      writer: asyncio.StreamWriter) -> bool:
        chat = record.path.endswith("/chat/completions")
        n_tokens = script.tokens if script.tokens is not None else int(body.get("max_tokens",
                                                                                16))
        prompt = _prompt_text(body, chat)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        if chat:
            await _event(writer, _chat_chunk({"role": "assistant", "content": ""}, None))
        ttft_s = script.ttft_s + script.ttft_per_in_flight_s * (self._counters.in_flight - 1)
        if ttft_s > 0:
            await asyncio.sleep(ttft_s)
        sent = 0
        while sent < n_tokens:
            if script.fail_after is not None and record.chunks_sent >= script.fail_after:
                writer.transport.abort()
                return False
            if sent > 0 and script.gap_s > 0:
                await asyncio.sleep(script.gap_s)
            k = min(script.tokens_per_chunk, n_tokens - sent)
            text = "".join(f" t{sent + j}" for j in range(k))
            sent += k
            last = sent == n_tokens
            finish = "length" if last and not chat else None
            chunk = _chat_chunk({"content": text}, None) if chat else _text_chunk(text, finish)
            await _event(writer, chunk)
            record.chunks_sent += 1
        if chat:
            await _event(writer, _chat_chunk({}, "length"))
        prompt_tokens = len(prompt.split())
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if script.include_usage and wants_usage:
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n_tokens,
                     "total_tokens": prompt_tokens + n_tokens}
            await _event(writer, {"id": "cmpl-fake", "object": "chat.completion.chunk" if chat
                                  else "text_completion", "created": 0, "model": MODEL,
                                  "choices": [], "usage": usage})
        counters = self._counters
        counters.prompt_tokens += prompt_tokens
        counters.generation_tokens += n_tokens
        counters.success += 1
        counters.in_flight -= 1  # before [DONE]: a closed-loop client reacts to [DONE]
        record.end_s = time.perf_counter()
        if script.send_done:
            writer.write(_chunked(b"data: [DONE]\n\n"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    def metrics_text(self) -> str:
        """Prometheus text exposition with vLLM's metric names and this server's counts."""
        c = self._counters
        label = f'model_name="{MODEL}"'
        return "\n".join([
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{label}}} {float(c.prompt_tokens)}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{label}}} {float(c.generation_tokens)}",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
            f'vllm:request_success_total{{finished_reason="length",{label}}} '
            f"{float(c.success)}",
            f'vllm:request_success_total{{finished_reason="stop",{label}}} 0.0',
            "# HELP vllm:num_preemptions_total Cumulative number of preemptions.",
            "# TYPE vllm:num_preemptions_total counter",
            f"vllm:num_preemptions_total{{{label}}} 0.0",
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{label}}} {min(c.in_flight / 100.0, 1.0)}",
            "",
        ])


def _prompt_text(body: dict[str, Any], chat: bool) -> str:
    if chat:
        return " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    return str(body.get("prompt", ""))


def _text_chunk(text: str, finish: str | None) -> dict[str, Any]:
    return {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": MODEL,
            "choices": [{"index": 0, "text": text, "logprobs": None,
                         "finish_reason": finish}]}


def _chat_chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
            "model": MODEL, "choices": [{"index": 0, "delta": delta,
                                         "finish_reason": finish}]}


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _event(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
    writer.write(_chunked(b"data: " + json.dumps(obj).encode() + b"\n\n"))
    await writer.drain()


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


async def _respond(writer: asyncio.StreamWriter, status: int, data: bytes,
                   content_type: str = "application/json") -> bool:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"content-type: {content_type}\r\ncontent-length: {len(data)}\r\n\r\n")
    writer.write(head.encode() + data)
    await writer.drain()
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the server as a process until stdin closes (or Ctrl+C); with ``--forever`` until
    SIGTERM/SIGINT (as a managed server is run: its stdin is not a pipe)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--ttft-s", type=float, default=0.0)
    parser.add_argument("--gap-s", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=1)
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    parser.add_argument("--ttft-per-in-flight-s", type=float, default=0.0)
    parser.add_argument("--forever", action="store_true")
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    script = {"ttft_s": args.ttft_s, "gap_s": args.gap_s, "tokens": args.tokens,
              "tokens_per_chunk": args.tokens_per_chunk,
              "ttft_per_in_flight_s": args.ttft_per_in_flight_s}
    server = ScriptedServer(port=args.port, **script).start()
    print(f"PORT {server.port}", flush=True)
    if args.forever:
        import signal
        import threading

        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        while not done.wait(0.2):
            pass
    else:
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

