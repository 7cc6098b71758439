"""A full queue answers 'busy' at once, while the admitted jobs finish normally."""

import threading
import time

import pytest
from gradio_client import Client

from tests.conftest import GOOD, free_port


@pytest.fixture(scope="module")
def small_queue_app(tiny_llama_dir, tmp_path_factory):
    import app as app_module
    from shared import catalog, runtime
    from shared.settings import Settings
    from tests.conftest import _spec

    catalog.CATALOG["tiny-chat"] = _spec("tiny-chat", str(tiny_llama_dir))
    runtime.configure(Settings(port=free_port(), preload=False, max_queue=2, cache_dir=tmp_path_factory.mktemp("c")))
    demo = app_module.build_app()
    app_module.launch(demo, runtime.get().settings, prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()
    catalog.CATALOG.pop("tiny-chat")


def test_queue_overflow_says_busy_and_admitted_jobs_finish(small_queue_app):
    clients = [Client(small_queue_app, verbose=False) for _ in range(5)]
    long_job = {**GOOD, "max_new_tokens": 200}
    admitted = [clients[0].submit(**long_job, api_name="/chat")]
    time.sleep(0.5)  # the first is running; the next two fill the queue of 2
    admitted += [c.submit(**long_job, api_name="/chat") for c in clients[1:3]]
    time.sleep(0.5)
    overflow = [c.submit(**GOOD, api_name="/chat") for c in clients[3:5]]
    errors = []
    for job in overflow:
        try:
            job.result(timeout=60)
        except Exception as exc:  # gradio_client raises for a refused join
            errors.append(str(exc))
    assert errors and all("full" in e.lower() or "busy" in e.lower() for e in errors), errors
    results = [job.result(timeout=120) for job in admitted]
    assert all(results)
    assert not [t for t in threading.enumerate() if t.name == "chat-generate" and t.is_alive()]
