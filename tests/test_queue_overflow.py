"""A full queue answers 'busy' at once, while the admitted jobs finish normally."""

import threading
import time

import pytest
from gradio_client import Client
from gradio_client.utils import Status

from tests.conftest import GOOD, free_port, test_settings
from tests.tiny_models import spec


@pytest.fixture(scope="module")
def small_queue_app(tiny_llama_dir, tmp_path_factory, test_catalog):
    import app as app_module
    from shared import runtime

    test_catalog(spec(tiny_llama_dir, "tiny-chat"))
    runtime.configure(test_settings(port=free_port(), max_queue=2, cache_dir=tmp_path_factory.mktemp("c")))
    demo = app_module.build_app()
    app_module.launch(demo, runtime.get().settings, prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


def _wait_for(job, codes, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while job.status().code not in codes:
        assert time.monotonic() < deadline, job.status()
        time.sleep(0.05)


def test_queue_overflow_says_busy_and_admitted_jobs_finish(small_queue_app):
    """One long job holds the single CPU slot (a bundled text-to-image run of 8 images × 150 steps,
    several seconds); two chats fill the queue of 2; two more are refused at once."""
    clients = [Client(small_queue_app, verbose=False) for _ in range(5)]
    long_job = dict(
        prompt="a red circle",
        model="shapes-t2i",
        num_inference_steps=150,
        num_images_per_prompt=8,
        api_name="/text_to_image",
    )
    admitted = [clients[0].submit(**long_job)]
    _wait_for(admitted[0], {Status.PROCESSING, Status.PROGRESS, Status.ITERATING})
    admitted += [c.submit(**GOOD, api_name="/chat") for c in clients[1:3]]
    for job in admitted[1:]:
        _wait_for(job, {Status.IN_QUEUE})
    overflow = [c.submit(**GOOD, api_name="/chat") for c in clients[3:5]]
    errors = []
    for job in overflow:
        try:
            job.result(timeout=60)
        except Exception as exc:  # gradio_client raises for a refused join
            errors.append(str(exc))
    assert len(errors) == 2 and all("full" in e.lower() or "busy" in e.lower() for e in errors), errors
    results = [job.result(timeout=180) for job in admitted]
    assert len(results[0]["images"]) == 8 and all(results[1:])
    assert not [t for t in threading.enumerate() if t.name == "chat-generate" and t.is_alive()]
