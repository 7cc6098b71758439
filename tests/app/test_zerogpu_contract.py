"""ZeroGPU's contract, run here: every GPU entry point called the way ``spaces.GPU`` calls it — in a
forked worker process, arguments and results pickled, while the parent holds live threads (the
Gradio server, our compute workers) — and each tab's main action working that way through the app's
own API. tests/zerogpu_fork.py is the stand-in for spaces (no ZeroGPU hardware is reachable here);
this is evidence for the design, not a claim that a Space runs.
"""

from __future__ import annotations

import base64
import io
import os
import pickle
import threading

import pytest
from gradio_client import Client
from PIL import Image

from demos.attention import ui as attention
from demos.chat import engine as chat_engine
from demos.latent import sampling as latent_sampling
from demos.text_to_image import recipe as text_to_image_recipe
from demos.text_to_image import ui as text_to_image_ui
from shared import compute, runtime, zerogpu
from tests import zerogpu_fork
from tests.helpers import app_settings, free_port
from tests.tiny_models import spec

pytestmark = pytest.mark.fast

ENTRY_POINTS = [
    chat_engine.reply_on_gpu,
    text_to_image_ui.generate_on_gpu,
    latent_sampling._sample,
    attention._attention_of,
]
TINY = [("chat", "tiny-chat"), ("attention", "tiny-chat"), ("text-to-image", "tiny-sd"), ("latent", "digits-gan")]


@pytest.fixture(scope="module")
def zero_app(tiny_llama_dir, tiny_sd_dir, tmp_path_factory, test_catalog):
    """The app in ZeroGPU mode with the fork stand-in: tiny real hub-style models loaded at startup on the
    main thread (and the bundled GAN sent through the worker too), then launched on loopback."""
    import app as app_module

    test_catalog(spec(tiny_llama_dir, "tiny-chat", revision="0" * 40), spec(tiny_sd_dir, "tiny-sd", "text-to-image"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zerogpu, "BUNDLED_ON_CPU", False)
        compute.use_gpu(zerogpu_fork.GPU)
        runtime.configure(app_settings(port=free_port(), cache_dir=tmp_path_factory.mktemp("c"), zero_gpu=True))
        loaded = runtime.preload_gpu_models(TINY)
        demo = app_module.build_app()
        app_module.launch(demo, runtime.get().settings, prevent_thread_lock=True, quiet=True)
        try:
            yield demo, loaded
        finally:
            demo.close()
            zerogpu_fork.shutdown()
            compute.use_gpu(zerogpu.GPU)
            zerogpu.configure(False)


@pytest.fixture(scope="module")
def zclient(zero_app):
    return Client(zero_app[0].local_url, verbose=False)


def _calls_since(n: int) -> list[dict]:
    return zerogpu_fork.calls[n:]


def test_entry_points_are_module_functions_that_pickle_by_name():
    """What spaces pickles is (function, args, kwargs): a lambda or closure would fail at the first call."""
    for fn in ENTRY_POINTS:
        assert pickle.loads(pickle.dumps(fn)) is fn
        assert callable(fn.gpu_model) and callable(fn.gpu_seconds)


def test_startup_loads_on_the_main_thread_and_parent_keeps_live_threads(zero_app):
    _, loaded = zero_app
    assert loaded == [f"{key} ({task})" for task, key in TINY]
    assert len(threading.enumerate()) > 3  # the server's and our workers' threads: fork copies none of them


def test_chat_reply_runs_in_a_forked_worker(zclient):
    before = len(zerogpu_fork.calls)
    reply = zclient.predict(message="Hi", max_new_tokens=100, temperature=0.0, model="tiny-chat", api_name="/chat")
    assert isinstance(reply, str) and reply.strip()
    [call] = _calls_since(before)
    assert call["task"] == "gpu_stream" and call["fn"] == "reply_on_gpu" and call["end"] == "end"
    assert call["pid"] != os.getpid()
    assert call["seconds"] == 10 + 100 // 20  # from the request: its max new tokens


def test_text_to_image_runs_in_a_forked_worker(zclient):
    before = len(zerogpu_fork.calls)
    result = zclient.predict(
        prompt="a red circle", model="tiny-sd", num_inference_steps=3, width=64, height=64, api_name="/text_to_image"
    )
    data = base64.b64decode(result["images"][0])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(io.BytesIO(data)).size == (64, 64)
    [call] = _calls_since(before)
    assert call["fn"] == "generate_on_gpu" and call["end"] == "end" and call["pid"] != os.getpid()
    assert call["seconds"] >= 15  # steps × images × pixels, at least the floor


def test_latent_sampling_runs_in_a_forked_worker(zclient):
    before = len(zerogpu_fork.calls)
    result = zclient.predict(model="digits-gan", seed=3, num_images=4, api_name="/sample_latents")
    assert len(result["images"]) == 4
    [call] = _calls_since(before)
    assert call["task"] == "gpu_call" and call["fn"] == "_sample" and call["end"] == "ok"


def test_attention_runs_in_a_forked_worker(zclient):
    before = len(zerogpu_fork.calls)
    result = zclient.predict(text="The cat sat.", model="tiny-chat", layer=0, head=0, api_name="/attention")
    assert result["tokens"] and len(result["attention"]) == len(result["tokens"])
    [call] = _calls_since(before)
    assert call["fn"] == "_attention_of" and call["end"] == "ok"


def test_errors_inside_the_worker_reach_the_handler_as_its_own_message(zclient):
    """A bad request fails inside the worker; the handler's message (not "ZeroGPU worker error") comes back."""
    with pytest.raises(Exception, match="tokens") as caught:
        zclient.predict(text="word " * 600, model="tiny-chat", layer=0, head=0, api_name="/attention")
    assert "ZeroGPU worker error" not in str(caught.value)
    assert zclient.predict(text="The cat sat.", model="tiny-chat", layer=0, head=0, api_name="/attention")["tokens"]


def test_a_cancelled_generation_is_closed_inside_the_worker(zero_app):
    """Gradio's cancellation (Stop's ``cancels=``, a closed tab) closes the handler's generator: that reaches
    the forked worker, which closes the run at its next yield; the worker is then free for the next call."""
    recipe = text_to_image_recipe.Recipe("tiny-sd", None, "a blue square", "", 0, 30, 3.0, "DDIM", 64, 64, 1)
    before = len(zerogpu_fork.calls)
    items = text_to_image_ui.stream(recipe, threading.Event(), previews=False)
    next(items)  # the first update has come back from the worker
    items.close()  # what Gradio does to a cancelled job's generator
    [call] = _calls_since(before)
    assert call["end"] == "closed by the caller"
    *_, (steps, _, run) = text_to_image_ui.stream(recipe, threading.Event(), previews=False)
    assert steps == 30 and len(run.images) == 1 and not run.stopped


def test_bundled_models_stay_in_process_by_default(zero_app, monkeypatch):
    """The tiny bundled models cost visitors no GPU quota: on ZeroGPU they run on the main process's CPU."""
    monkeypatch.setattr(zerogpu, "BUNDLED_ON_CPU", True)
    before = len(zerogpu_fork.calls)
    images = latent_sampling.sample_latents(model="digits-gan", seed=1, num_images=2)["images"]
    assert len(images) == 2 and not _calls_since(before)
    assert runtime.device_for(runtime.catalog.CATALOG["digits-gan"]) == "cpu"


def test_a_gpu_model_not_loaded_at_startup_is_refused_clearly(zero_app):
    with pytest.raises(Exception, match="only the models it loads at startup"):
        runtime.text_to_image("sd-turbo")
    assert "ZeroGPU" in runtime.unavailable(runtime.catalog.CATALOG["sd-turbo"])


def test_durations_are_bounded_and_follow_the_request():
    small = text_to_image_recipe.Recipe("m", None, "p", "", 0, 4, 1.0, "Euler", 512, 512, 1)
    large = text_to_image_recipe.Recipe("m", None, "p", "", 0, 150, 1.0, "Euler", 1024, 1024, 4)
    seconds = [compute.gpu_seconds(text_to_image_ui.generate_on_gpu, (r,), {}) for r in (small, large)]
    assert compute.MIN_GPU_S <= seconds[0] < seconds[1] == compute.MAX_GPU_S


def test_stop_buttons_cancel_the_running_event_on_zerogpu(zero_app):
    """Stop's own flag can't reach the forked worker, so on ZeroGPU each Stop also cancels its running event
    (Gradio registers that as a cancel function on the same trigger)."""
    demo, _ = zero_app
    targets = [{demo.fns[i].fn.__name__ for i in fn.cancels} for fn in demo.fns.values() if fn.is_cancel_function]
    assert {"respond"} in targets and {"generate_ui"} in targets
