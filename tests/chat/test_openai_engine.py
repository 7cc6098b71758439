"""The `openai` engine in the fast tier: the real openai client (as installed from the lock) against an
OpenAI-compatible server on 127.0.0.1 that a tiny real Llama answers through transformers.

This is what a fresh resolve broke on 2026-12-08 (issue #26): openai moved to httpx2, which refuses
an ``httpx.Timeout``, and every request failed. The llama.cpp tests (test_engines.py, full tier) saw
it; these see it in `make test` and in `make drift`, without building llama.cpp."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from demos.chat.core import GenerationSettings
from shared import engines

pytestmark = pytest.mark.fast


class TinyOpenAIServer:
    """``POST /v1/chat/completions`` with ``stream=True``: the tiny model's greedy reply, one SSE chunk a
    token, then usage. ``fault`` breaks it as deployments break: "401", "stall" or "truncate"."""

    def __init__(self, model_dir) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.fault = "none"
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                server._answer(self)

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def reply_ids(self, messages: list[dict], max_tokens: int) -> tuple[list[int], list[int]]:
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
        with torch.no_grad():
            out = self.model.generate(torch.tensor([prompt]), max_new_tokens=max_tokens, do_sample=False)
        return list(prompt), out[0, len(prompt) :].tolist()

    def _answer(self, handler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        self.requests.append(body)
        if self.fault == "401":
            payload = b'{"error": {"message": "bad key"}}'
            handler.send_response(401)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        prompt, ids = self.reply_ids(body["messages"], body["max_tokens"])
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()

        def send(event: dict) -> None:
            handler.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            handler.wfile.flush()

        base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        for i, token in enumerate(ids):
            if self.fault == "stall" and i == 2:
                time.sleep(10)  # longer than the test's stall timeout
                return
            if self.fault == "truncate" and i == 2:
                return  # the connection closes before a finish reason
            delta = {"content": self.tokenizer.decode([token])}
            finish = "length" if i == len(ids) - 1 else None
            send({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        usage = {"prompt_tokens": len(prompt), "completion_tokens": len(ids), "total_tokens": len(prompt) + len(ids)}
        send({**base, "choices": [], "usage": usage})
        handler.wfile.write(b"data: [DONE]\n\n")

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def server(tiny_llama_dir):
    running = TinyOpenAIServer(tiny_llama_dir)
    yield running
    running.close()


@pytest.fixture
def endpoint(server):
    server.fault = "none"
    return engines.Endpoint(url=server.url, model="tiny", flavor="vllm", api_key="sk-test-secret")


MESSAGES = [{"role": "user", "content": "hello how are you ?"}]


def chat(endpoint, max_new_tokens=8) -> list[engines.Reply]:
    settings = GenerationSettings(temperature=0.0, max_new_tokens=max_new_tokens, seed=1)
    return list(engines.stream_chat(endpoint, MESSAGES, settings, threading.Event()))


def test_a_reply_streams_through_the_openai_client_as_the_model_wrote_it(server, endpoint):
    replies = chat(endpoint)
    _, ids = server.reply_ids(MESSAGES, 8)
    assert replies[-1].text == "".join(server.tokenizer.decode([token]) for token in ids)
    stats = replies[-1].stats
    assert stats.completion_tokens == 8 and stats.finish == "length" and stats.engine == "vLLM"
    sent = server.requests[-1]
    assert sent["stream"] is True and sent["max_tokens"] == 8 and sent["seed"] == 1


def test_a_refused_key_is_named_and_the_key_never_shown(server, endpoint):
    server.fault = "401"
    with pytest.raises(engines.EngineError, match=r"refused this app's API key \(401\)") as error:
        chat(endpoint)
    assert "sk-test-secret" not in str(error.value)


def test_a_stalled_stream_ends_within_the_stall_timeout(server, endpoint, monkeypatch):
    """The timeout reaches the openai client as openai's own object: an httpx.Timeout made every
    request fail with TypeError under httpx2, and a wrong one would wait the default 10 minutes."""
    monkeypatch.setattr(engines, "STALL_TIMEOUT_S", 1.0)
    server.fault = "stall"
    began = time.monotonic()
    with pytest.raises(engines.EngineError, match="sent nothing for 1 s"):
        chat(endpoint, max_new_tokens=6)
    assert time.monotonic() - began < 6


def test_a_stream_cut_short_is_reported_and_the_next_request_works(server, endpoint):
    server.fault = "truncate"
    with pytest.raises(engines.EngineError, match="closed the stream before the reply was finished"):
        chat(endpoint)
    server.fault = "none"
    assert chat(endpoint)[-1].stats.finish == "length"


def test_an_unreachable_server_is_reported_within_the_connect_timeout():
    gone = engines.Endpoint(url="http://127.0.0.1:9/v1", model="tiny")  # port 9 (discard): nothing listens
    began = time.monotonic()
    with pytest.raises(engines.EngineError, match="can't be reached"):
        chat(gone)
    assert time.monotonic() - began < engines.CONNECT_TIMEOUT_S + 2
