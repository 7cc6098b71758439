"""A full queue answers 'busy' at once, while the admitted jobs finish normally."""

import threading
import time

import pytest
from gradio_client import Client
from gradio_client.utils import Status

from tests.helpers import GOOD, app_settings, free_port
from tests.tiny_models import spec

pytestmark = pytest.mark.full  # minutes: queues filled, hosting presets, soaks


@pytest.fixture(scope="module")
def small_queue_app(tiny_llama_dir, tmp_path_factory, test_catalog):
    import app as app_module
    from shared import runtime

    test_catalog(spec(tiny_llama_dir, "tiny-chat"))
    runtime.configure(app_settings(port=free_port(), max_queue=2, cache_dir=tmp_path_factory.mktemp("c")))
    demo = app_module.build_app()
    app_module.launch(demo, runtime.get().settings, prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


def _wait_for(job, codes, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while job.status().code not in codes:
        assert time.monotonic() < deadline, job.status()
        time.sleep(0.05)


LONG_JOB = dict(prompt="a red circle", model="shapes-t2i", num_inference_steps=150, num_images_per_prompt=8)
SHORT_JOB = dict(prompt="a red circle", model="shapes-t2i", num_inference_steps=2, num_images_per_prompt=1)


def test_queue_overflow_says_busy_and_admitted_jobs_finish(small_queue_app):
    """One long job holds the single CPU slot of image work (a bundled text-to-image run of 8 images ×
    150 steps, several seconds); two more image jobs fill the queue of 2; a chat and an image job more
    are refused at once."""
    clients = [Client(small_queue_app, verbose=False) for _ in range(5)]
    admitted = [clients[0].submit(**LONG_JOB, api_name="/text_to_image")]
    _wait_for(admitted[0], {Status.PROCESSING, Status.PROGRESS, Status.ITERATING})
    admitted += [c.submit(**SHORT_JOB, api_name="/text_to_image") for c in clients[1:3]]
    for job in admitted[1:]:
        _wait_for(job, {Status.IN_QUEUE})
    overflow = [clients[3].submit(**GOOD, api_name="/chat"), clients[4].submit(**SHORT_JOB, api_name="/text_to_image")]
    errors = []
    for job in overflow:
        try:
            job.result(timeout=60)
        except Exception as exc:  # gradio_client raises for a refused join
            errors.append(str(exc))
    assert len(errors) == 2 and all("full" in e.lower() or "busy" in e.lower() for e in errors), errors
    results = [job.result(timeout=180) for job in admitted]
    assert len(results[0]["images"]) == 8 and all(len(r["images"]) == 1 for r in results[1:])
    assert not [t for t in threading.enumerate() if t.name == "chat-generate" and t.is_alive()]


def test_a_chat_sent_during_a_long_image_job_is_answered_before_it_ends(small_queue_app):
    """Chat has its own queue group and model worker, and on a CPU the image job steps aside between
    its denoising steps: the reply comes while the image job is still running."""
    image, chat = Client(small_queue_app, verbose=False), Client(small_queue_app, verbose=False)
    long_job = image.submit(**LONG_JOB, api_name="/text_to_image")
    _wait_for(long_job, {Status.PROCESSING, Status.PROGRESS, Status.ITERATING})
    assert chat.predict(**GOOD, api_name="/chat")
    assert not long_job.done()
    assert len(long_job.result(timeout=180)["images"]) == 8
