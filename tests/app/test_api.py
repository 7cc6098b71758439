"""The launched app driven over HTTP with gradio_client, on tiny real models in the catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import app as app_module
from shared import runtime
from tests.helpers import GOOD

pytestmark = pytest.mark.fast


def _generation_threads():
    return [t for t in threading.enumerate() if t.name == "chat-generate" and t.is_alive()]


def _wait_no_generation(seconds: float = 2.0) -> bool:
    deadline = time.time() + seconds
    while _generation_threads() and time.time() < deadline:
        time.sleep(0.02)
    return not _generation_threads()


def test_only_the_documented_endpoints_are_public(client):
    assert set(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == {
        "/chat",
        "/attention",
        "/sample_latents",
        "/interpolate",
        "/traverse",
        "/text_to_image",
        "/share",  # share links: tests/sharing/test_share_links.py
        "/shared",
        "/unshare",
    }


def test_chat_streams_a_reply(client):
    job = client.submit(**{**GOOD, "max_new_tokens": 30}, api_name="/chat")
    final = job.result(timeout=60)
    partials = job.outputs()
    assert final and len(partials) >= 3
    assert all(partials[i + 1].startswith(partials[i]) for i in range(len(partials) - 1))


def test_same_seed_same_reply_over_the_api(client):
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text", "text": "hello"}]}]
    sampled = {**GOOD, "history": history, "temperature": 1.0, "max_new_tokens": 16}
    a = client.predict(**sampled, seed=7, api_name="/chat")
    b = client.predict(**sampled, seed=7, api_name="/chat")
    c = client.predict(**sampled, seed=8, api_name="/chat")
    assert a == b and a != c


BAD = [
    (dict(message=""), "empty"),
    (dict(message="   \n "), "empty"),
    (dict(message="x" * 200_000), "200,000 characters"),
    (dict(history=[{"role": "wizard", "content": "hi"}]), "role"),
    (dict(history=[{"role": "user", "content": 12}]), "type int"),
    (dict(history=[{"role": "user", "content": ["a", {"type": "image", "url": "x"}]}]), "non-text"),
    (dict(history=[{"role": "user", "content": "hi"}] * 10_000), "10,000 messages"),
    (dict(history="nope"), "list"),
    (dict(temperature=-1), "temperature"),
    (dict(temperature="NaN"), "temperature"),
    (dict(temperature="inf"), "temperature"),
    (dict(top_p="-Infinity"), "top_p"),
    (dict(temperature="hot"), "temperature"),
    (dict(top_p=0), "top_p"),
    (dict(top_p=2), "top_p"),
    (dict(top_k=-5), "top_k"),
    (dict(top_k=1.5), "top_k"),
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(max_new_tokens=10**9), "max_new_tokens"),
    (dict(max_new_tokens="Infinity"), "max_new_tokens"),
    (dict(repetition_penalty="nan"), "repetition_penalty"),
    (dict(seed=2**70), "seed"),
    (dict(model="no-such-model"), "Unknown model"),
    (dict(model="/etc"), "Unknown model"),
    (dict(model="broken-chat"), "failed to load"),
    (dict(model="hub-chat"), "offline"),
    (dict(message=" ".join(["paris"] * 600)), "window"),
]


@pytest.mark.parametrize("bad, message", BAD, ids=[m + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_input_gets_a_clear_message_and_the_next_request_works(client, bad, message):
    with pytest.raises(AppError) as info:
        client.predict(**{**GOOD, **bad}, api_name="/chat")
    text = str(info.value)
    assert message in text
    assert "Traceback" not in text and "/tmp" not in text and "site-packages" not in text
    assert client.predict(**GOOD, api_name="/chat")


def test_cancel_mid_stream_ends_the_generation_thread(client):
    job = client.submit(**{**GOOD, "max_new_tokens": 200}, api_name="/chat")
    deadline = time.time() + 30
    while len(job.outputs()) < 3 and time.time() < deadline:
        time.sleep(0.01)
    assert _generation_threads(), "generation should be running"
    job.cancel()
    assert _wait_no_generation(2.0)
    assert client.predict(**GOOD, api_name="/chat")


CLIENT_SCRIPT = """
import sys
from gradio_client import Client
client = Client(sys.argv[1], verbose=False)
job = client.submit(**__import__("json").loads(sys.argv[2]), api_name="/chat")
for out in job:
    print("TOKEN", flush=True)
"""


def test_client_that_disconnects_mid_stream_stops_the_work(app_url, client):
    args = json.dumps({**GOOD, "max_new_tokens": 200})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, app_url, args], stdout=subprocess.PIPE, env=env)
    try:
        for _ in range(3):
            assert proc.stdout.readline().startswith(b"TOKEN")
        assert _generation_threads()
        proc.kill()  # no goodbye: the connection just drops
        proc.wait(5)
        assert _wait_no_generation(2.0)
    finally:
        proc.kill()
    assert client.predict(**GOOD, api_name="/chat")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_raw_json_nan_and_inf_are_refused(app_url, client, literal):
    """JSON clients can't send NaN, but a raw request can: the server still refuses it clearly."""
    import httpx

    body = (f'{{"data": ["hello", [], "", {literal}, 0.9, 50, 8, 1.0, 0, "tiny-chat"]}}').encode()
    with httpx.Client(base_url=app_url, timeout=30) as http:
        started = http.post("/gradio_api/call/chat", content=body, headers={"content-type": "application/json"})
        assert started.status_code == 200, started.text
        events = http.get(f"/gradio_api/call/chat/{started.json()['event_id']}").text
    assert "event: error" in events and "temperature" in events
    assert client.predict(**GOOD, api_name="/chat")


def test_status_panel_lists_loaded_models_and_unload_frees_them(client):
    client.predict(**GOOD, api_name="/chat")
    status = runtime.status_markdown()
    assert "tiny-chat" in status and "**Device** cpu" in status and "MiB" in status
    runtime.get().cache.clear()
    assert "tiny-chat" not in runtime.status_markdown()
    assert client.predict(**GOOD, api_name="/chat")  # loads again on demand


def test_device_that_is_missing_is_refused_with_a_message():
    with pytest.raises(SystemExit) as info:
        app_module.main(["--device", "mps"])  # Apple's backend never exists on Linux
    assert "mps" in str(info.value) and "not available" in str(info.value)


def test_concurrent_requests_equal_serial_runs(client, app_url):
    """Eight clients at once, sampling with their own seeds: each reply equals its serial run."""
    sampled = {**GOOD, "temperature": 1.0, "max_new_tokens": 24}
    serial = {seed: client.predict(**sampled, seed=seed, api_name="/chat") for seed in range(8)}
    clients = [Client(app_url, verbose=False) for _ in range(8)]
    jobs = {seed: c.submit(**sampled, seed=seed, api_name="/chat") for seed, c in zip(range(8), clients, strict=True)}
    assert {seed: job.result(timeout=120) for seed, job in jobs.items()} == serial
    assert len(set(serial.values())) > 1


@pytest.mark.parametrize(
    "fault, message",
    [
        (__import__("torch").OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), "Out of memory"),
        (RuntimeError("something broke deep inside"), r"Generation failed \(RuntimeError\)"),
    ],
)
def test_fault_inside_generation_reaches_the_user_quickly(client, fault, message):
    """A fault injected into the cached model's generate: a friendly message within seconds, then recovery."""
    lm = runtime.causal_lm("tiny-chat")

    def broken_generate(**kwargs):
        raise fault

    lm.model.generate = broken_generate
    try:
        start = time.time()
        with pytest.raises(AppError, match=message) as info:
            client.predict(**GOOD, api_name="/chat")
        assert time.time() - start < 10
        assert "20.00 GiB" not in str(info.value) and "deep inside" not in str(info.value)
    finally:
        del lm.model.generate  # back to the class's own generate
    if isinstance(fault, __import__("torch").OutOfMemoryError):
        assert runtime.get().cache.snapshot() == []  # models were unloaded to free memory
    assert client.predict(**GOOD, api_name="/chat")
