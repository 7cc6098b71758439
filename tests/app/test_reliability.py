"""Load and isolation against the launched app: loopback only, every loop bounded in count and time."""

import threading
import time

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tests.helpers import GOOD

pytestmark = pytest.mark.full  # minutes: queues filled, hosting presets, soaks

TEXT = "the cat sat on the mat ."


def _requests():
    """(endpoint, kwargs) for a mix of every tab's work, each reproducible from its seed."""
    chat = [("/chat", {**GOOD, "temperature": 1.0, "max_new_tokens": 12, "seed": s}) for s in range(6)]
    attention = [
        ("/attention", {"text": TEXT, "model": m, "layer": 1, "head": h})
        for m in ("tiny-chat", "tiny-bert")
        for h in (0, 3)
    ]
    latent = [("/sample_latents", {"model": "digits-vae", "seed": s, "num_images": 4}) for s in range(4)]
    image = [
        (
            "/text_to_image",
            {"prompt": "a red circle", "model": "tiny-sd", "seed": s, "scheduler": name, "num_images_per_prompt": 2},
        )
        for s, name in enumerate(["DDIM", "Euler ancestral", "DPM++ 2M", "DDPM", "Euler", "LCM"])
    ]
    return chat + attention + latent + image


def _outputs(result):
    """A result without its timing (text-to-image reports how long it took)."""
    return {k: v for k, v in result.items() if k != "seconds"} if isinstance(result, dict) else result


def test_mixed_concurrent_requests_equal_serial_runs(client, app_url):
    serial = [_outputs(client.predict(**kw, api_name=endpoint)) for endpoint, kw in _requests()]
    assert len(serial) == 20
    clients = [Client(app_url, verbose=False) for _ in range(len(serial))]
    jobs = [c.submit(**kw, api_name=endpoint) for c, (endpoint, kw) in zip(clients, _requests(), strict=True)]
    assert [_outputs(job.result(timeout=120)) for job in jobs] == serial


INVALID = [
    ("/chat", {**GOOD, "message": "   "}, "empty"),
    ("/attention", {"text": TEXT, "model": "tiny-chat", "layer": 9, "head": 0}, "out of range"),
    ("/sample_latents", {"model": "digits-vae", "num_images": 0}, "num_images"),
    ("/sample_latents", {"model": "digits-vae", "count": 0}, "count"),  # the deprecated name names itself
    ("/text_to_image", {"prompt": "x", "model": "tiny-sd", "width": 36}, "multiple of 8"),
    ("/chat", {**GOOD, "temperature": "NaN"}, "temperature"),
]


def test_flood_of_valid_and_invalid_requests_keeps_the_app_healthy(app_url):
    """48 requests, a quarter invalid, 8 at a time: no unexpected error, /config answers throughout."""
    valid = _requests()
    plan = [
        (*INVALID[i // 4 % len(INVALID)], True) if i % 4 == 3 else (*valid[i % len(valid)], None, False)
        for i in range(48)
    ]
    unexpected, health = [], []
    stop = threading.Event()

    def probe():
        with httpx.Client(base_url=app_url, timeout=10) as http:
            while not stop.is_set() and len(health) < 200:
                health.append(http.get("/config").status_code)
                time.sleep(0.2)

    prober = threading.Thread(target=probe)
    prober.start()
    deadline = time.time() + 240
    try:
        clients = [Client(app_url, verbose=False) for _ in range(8)]
        for wave in range(0, len(plan), 8):
            jobs = [
                (c.submit(**kw, api_name=endpoint), expected, bad)
                for c, (endpoint, kw, expected, bad) in zip(clients, plan[wave : wave + 8], strict=False)
            ]
            for job, expected, bad in jobs:
                try:
                    result = job.result(timeout=max(1, deadline - time.time()))
                    if bad or not result:
                        unexpected.append(("no error", expected))
                except AppError as exc:
                    if not bad or expected not in str(exc):
                        unexpected.append((str(exc)[:200], expected))
    finally:
        stop.set()
        prober.join(15)
    assert unexpected == []
    assert health and set(health) == {200}


def test_stop_in_one_session_does_not_stop_another(launched_app):
    """Stop flags are per session: B pressing Stop leaves A's reply running to the end."""
    import gradio as gr

    from demos.chat import ui as chat

    settings = dict(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=120, repetition_penalty=1.0, seed=0)
    messages = [{"role": "user", "content": "hello"}]
    a = chat._generate("tiny-chat", "", messages, settings, gr.Request(session_hash="session-a"))
    next(a)
    chat.stop_generation(gr.Request(session_hash="session-b"))
    final = list(a)[-1]
    assert final.stats.finish == "length" and final.stats.completion_tokens == 120
    b = chat._generate("tiny-chat", "", messages, settings, gr.Request(session_hash="session-b"))
    next(b)
    chat.stop_generation(gr.Request(session_hash="session-b"))
    assert list(b)[-1].stats.finish == "stopped"
