"""A public demo's queue, seen by a waiting visitor: its position while another job runs, and a clear
refusal past the per-visitor job limit (the page shows the same position on the job's status line)."""

from __future__ import annotations

import time

import pytest
from gradio_client import Client
from gradio_client.utils import Status

from shared import runtime
from tests.helpers import app_settings, free_port

pytestmark = pytest.mark.full  # minutes: queues filled, hosting presets, soaks

SLOW = dict(
    prompt="a red circle",
    model="shapes-t2i",
    num_inference_steps=150,
    num_images_per_prompt=8,
    width=32,
    height=32,
    api_name="/text_to_image",
)  # fmt: skip  ~ seconds on 2 cores


@pytest.fixture(scope="module")
def public_app(tmp_path_factory):
    import app as app_module

    settings = app_settings(
        port=free_port(), cache_dir=tmp_path_factory.mktemp("c"), public_demo=True, gpu_concurrency=1
    )
    runtime.configure(settings)
    demo = app_module.build_app()
    app_module.launch(demo, settings, prevent_thread_lock=True, quiet=True)
    yield demo
    demo.close()


def test_a_waiting_visitor_is_told_its_position(public_app):
    first, second = (Client(public_app.local_url, verbose=False) for _ in range(2))
    running = first.submit(**SLOW)
    deadline = time.time() + 60
    while running.status().code != Status.PROCESSING and time.time() < deadline:
        time.sleep(0.05)
    waiting = second.submit(**{**SLOW, "num_inference_steps": 2, "num_images_per_prompt": 1})
    seen = None
    while time.time() < deadline and not running.done():
        status = waiting.status()
        if status.code == Status.IN_QUEUE and status.rank is not None:
            seen = (status.rank, status.queue_size)
            break
        time.sleep(0.05)
    assert seen is not None and seen[0] == 0 and seen[1] >= 1  # first in line (rank 0 = position 1)
    assert running.result(timeout=120)["images"] and waiting.result(timeout=120)["images"]


def test_past_the_per_visitor_limit_a_job_is_refused_with_a_message(public_app):
    client = Client(public_app.local_url, verbose=False)
    jobs = [
        client.submit(**{**SLOW, "num_inference_steps": 40}) for _ in range(runtime.get().settings.jobs_per_visitor)
    ]
    time.sleep(0.5)
    with pytest.raises(Exception, match="limit is 2 per visitor"):
        client.predict(**SLOW)
    for job in jobs:
        job.result(timeout=180)
