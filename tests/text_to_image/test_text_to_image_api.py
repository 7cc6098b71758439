"""The /text_to_image endpoint of the launched app over gradio_client, on a tiny real SD pipeline."""

from __future__ import annotations

import base64
import io
import queue
import threading
import time
import timeit
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from demos.text_to_image import core as t2i_core
from demos.text_to_image import generate as t2i_generate
from demos.text_to_image import recipe as t2i_recipe
from demos.text_to_image import steps as t2i_steps
from demos.text_to_image import ui as t2i_ui
from shared import compute, runtime
from shared import images as t2i_images

pytestmark = pytest.mark.fast

GOOD = dict(
    prompt="a red circle",
    model="tiny-sd",
    seed=5,
    num_inference_steps=4,
    guidance_scale=3.0,
    scheduler="DDIM",
    num_images_per_prompt=2,
)


def decode(out: dict) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in out["images"]])


def test_text_to_image_returns_pngs_that_carry_their_recipe(client):
    out = client.predict(**GOOD, api_name="/text_to_image")
    assert decode(out).shape == (2, 32, 32, 3)  # the model's recommended size, as no size was given
    recipe = t2i_recipe.recipe_from_png(base64.b64decode(out["images"][0]))
    assert recipe.prompt == "a red circle" and recipe.seed == 5 and recipe.scheduler == "DDIM"
    assert out["recipe"]["width"] == 32 and out["notices"] == []
    again = client.predict(**GOOD, api_name="/text_to_image")
    assert np.array_equal(decode(out), decode(again))


def test_empty_prompt_runs_unconditionally_with_a_notice(client):
    out = client.predict(**{**GOOD, "prompt": ""}, api_name="/text_to_image")
    assert len(out["images"]) == 2 and "unconditionally" in out["notices"][0]


def test_long_prompt_is_truncated_with_a_notice(client):
    out = client.predict(**{**GOOD, "prompt": "a red circle " * 40}, api_name="/text_to_image")
    assert any("truncated" in n for n in out["notices"])


BAD = [
    (dict(width=0), "width"),
    (dict(width=-64), "width"),
    (dict(height=36), "multiple of 8"),
    (dict(width=4096), "width"),
    (dict(num_inference_steps=0), "steps"),
    (dict(num_inference_steps=-1), "steps"),
    (dict(num_inference_steps=10**6), "steps"),
    (dict(guidance_scale="NaN"), "guidance"),  # JSON has no NaN: clients send it as text
    (dict(guidance_scale="inf"), "guidance"),
    (dict(guidance_scale=-1), "guidance"),
    (dict(seed=-1), "seed"),
    (dict(seed=2**70), "seed"),
    (dict(seed="abc"), "seed"),
    (dict(num_images_per_prompt=1000), "number of images"),
    (dict(scheduler="Heun 9000"), "scheduler"),
    (dict(model="no-such-model"), "Unknown model"),
    (dict(model="smollm2-135m-instruct"), "not a text-to-image model"),
    (dict(model="nan-sd"), "NaN"),
    # past the CPU's cost cap (images × steps × pixels): the message says what to lower
    (dict(num_images_per_prompt=8, num_inference_steps=150, width=64, height=64), "too large.*at most 37 steps"),
    (dict(scheduler="LCM", num_inference_steps=51), "LCM scheduler takes at most 50 steps"),  # not `strength`
]


@pytest.mark.parametrize("bad, message", BAD, ids=[f"{list(b)[0]}-{m}" for b, m in BAD])
def test_bad_input_gets_a_clear_message_and_the_next_request_works(client, bad, message):
    with pytest.raises(AppError, match=message) as info:
        client.predict(**{**GOOD, **bad}, api_name="/text_to_image")
    assert "Traceback" not in str(info.value) and "/tmp/" not in str(info.value)
    assert len(client.predict(**{**GOOD, "num_images_per_prompt": 1}, api_name="/text_to_image")["images"]) == 1


def test_black_output_is_reported(client):
    out = client.predict(**{**GOOD, "model": "black-sd"}, api_name="/text_to_image")
    assert "completely black" in out["notices"][0]


def test_concurrent_clients_get_what_serial_runs_give(client, app_url):
    """Schedulers hold state: each request gets its own, so parallel runs equal serial ones."""
    jobs = [
        dict(GOOD, seed=s, scheduler=name, num_images_per_prompt=1)
        for s, name in enumerate(["DDIM", "Euler", "DPM++ 2M", "DDPM"])
    ]
    serial = [decode(client.predict(**job, api_name="/text_to_image")) for job in jobs]
    clients = [Client(app_url, verbose=False) for _ in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        parallel = list(
            pool.map(
                lambda pair: decode(pair[0].predict(**pair[1], api_name="/text_to_image")),
                zip(clients, jobs, strict=True),
            )
        )
    for s, p in zip(serial, parallel, strict=True):
        assert np.array_equal(s, p)


def test_the_old_names_steps_and_count_still_work_with_a_deprecation_notice(client):
    old = {k: v for k, v in GOOD.items() if k not in ("num_inference_steps", "num_images_per_prompt")}
    out = client.predict(**old, steps=4, count=2, api_name="/text_to_image")
    new = client.predict(**GOOD, api_name="/text_to_image")
    assert np.array_equal(decode(out), decode(new)) and out["recipe"] == new["recipe"]
    assert out["recipe"]["num_inference_steps"] == 4 and "steps" not in out["recipe"]
    assert out["notices"][:2] == [
        "`steps` is deprecated: use `num_inference_steps`.",
        "`count` is deprecated: use `num_images_per_prompt`.",
    ]
    # messages name the parameter the client sent; sending both names is refused, not guessed between
    for bad, message in [
        (dict(steps=0), "steps must"),
        (dict(count=1000), "count .*number of images"),
        (dict(steps=4, num_inference_steps=5), "not both"),
    ]:
        with pytest.raises(AppError, match=message):
            client.predict(**{**old, **bad}, api_name="/text_to_image")


def test_a_consumer_that_leaves_stops_the_generation(launched_app):
    """The live stream (what the Generate button reads) sets the stop flag when its reader goes away."""
    recipe = t2i_recipe.check_recipe(
        model="tiny-sd", revision=None, prompt="a red circle", negative_prompt="", seed=0, num_inference_steps=150,
        guidance_scale=3.0, scheduler="DDIM", width=32, height=32, num_images_per_prompt=1,
    )  # fmt: skip
    stop = threading.Event()
    live = t2i_ui.stream(recipe, stop)
    step, _, run = next(live)
    assert run is None and step < 149
    live.close()
    assert stop.is_set()
    assert compute.run(lambda: "free") == "free"  # the worker is released (the run ended early)


def test_progress_streams_while_it_works_and_predict_returns_the_result(client):
    """A generator endpoint: {"step", "num_inference_steps"} while it works, then the result."""
    job = client.submit(**GOOD, api_name="/text_to_image")
    result = job.result(timeout=60)
    *progress, last = job.outputs()
    assert last == result and len(result["images"]) == 2 and "step" not in result
    assert progress and all(p.keys() == {"step", "num_inference_steps"} for p in progress)
    assert [p["step"] for p in progress] == sorted(p["step"] for p in progress) and progress[-1]["step"] <= 4


def test_a_run_waiting_on_a_busy_worker_still_yields_so_it_can_be_cancelled(launched_app):
    """While no step comes (the worker is busy, a step is slow), the live stream still yields every
    TICK_S: only at a yield can Gradio close a cancelled job's generator."""
    recipe = t2i_recipe.check_recipe(
        model="tiny-sd", revision=None, prompt="a red circle", negative_prompt="", seed=0, num_inference_steps=4,
        guidance_scale=3.0, scheduler="DDIM", width=32, height=32, num_images_per_prompt=1,
    )  # fmt: skip
    busy = compute.submit(time.sleep, 1.0)
    items = list(t2i_ui.stream(recipe, threading.Event(), previews=False))
    busy.result()
    ticks = [step for step, preview, run in items if step == -1 and preview is None and run is None]
    assert len(ticks) >= 3, items  # ~1 s of waiting at one tick per 0.2 s
    steps = [step for step, _, _ in items[len(ticks) : -1]]  # then each step (a slow one ticks again)
    assert sorted(set(steps)) == [0, 1, 2, 3] and steps == sorted(steps)
    assert items[-1][0] == 4 and len(items[-1][2].images) == 1


def test_live_previews_keep_to_their_share_of_the_run_and_skip_the_last_step(launched_app, monkeypatch):
    """Every step is reported (the tests stream at interval 0), the last with no preview (the images
    follow at once). Previews drawn take at most PREVIEW_SHARE of the run; with a share of 1 they
    are drawn from the first step on, each that step's x̂₀."""
    recipe = t2i_recipe.check_recipe(
        model="tiny-sd", revision=None, prompt="a red circle", negative_prompt="", seed=0, num_inference_steps=12,
        guidance_scale=3.0, scheduler="DDIM", width=32, height=32, num_images_per_prompt=1,
    )  # fmt: skip
    entry = runtime.text_to_image("tiny-sd")

    def streamed() -> tuple[list, t2i_core.Run, float]:
        events: queue.Queue = queue.Queue()
        start = time.perf_counter()
        run = t2i_generate.work_generate_live(recipe, events, threading.Event(), threading.Event(), 0.0, True)
        return list(iter(events.get, None)), run, time.perf_counter() - start

    items, run, seconds = streamed()
    assert [step for step, _ in items] == list(range(12)) and items[-1][1] is None
    drawn = [step for step, preview in items if preview is not None]
    one = min(timeit.repeat(lambda: t2i_steps.preview_of(entry.pipe, run.steps[5]), number=1, repeat=3))
    assert len(drawn) <= t2i_generate.PREVIEW_SHARE * seconds / one * 2  # (×2: a preview's cost varies)

    monkeypatch.setattr(t2i_generate, "PREVIEW_SHARE", 1.0)
    items, run, _ = streamed()
    drawn = [step for step, preview in items if preview is not None]
    assert drawn[0] == 0 and 11 not in drawn
    for step, preview in items:
        if preview is not None:
            assert np.array_equal(preview, t2i_steps.preview_of(entry.pipe, run.steps[step]))


def test_the_generate_button_leaves_only_a_key_in_the_session(launched_app, monkeypatch):
    """generate_ui's run goes to the debugger's store under a byte budget; the session's gr.State
    gets its key, and a dropped run tells the debugger to run it again."""
    from shared.results import ResultStore

    def generate_once() -> str:
        *_, final = t2i_ui.generate_ui(
            "tiny-sd", "a red circle", "", 0, 4, 3.0, "DDIM", 32, 32, 2, request=None, progress=lambda *a, **k: None
        )
        return final[4]

    first = generate_once()
    assert isinstance(first, str) and isinstance(t2i_steps.kept_run(first), t2i_core.Run)
    assert t2i_steps.show_step(first, 2)[4].startswith("**Step 2 of 4**")
    store = ResultStore(max_bytes=3 * t2i_steps.run_nbytes(t2i_steps.kept_run(first)))  # room for three runs
    monkeypatch.setattr(t2i_steps, "RUNS", store)
    keys = [generate_once() for _ in range(6)]  # six sessions' runs
    assert len(store) == 3 and store.used_bytes() <= store.max_bytes
    assert t2i_steps.show_step(keys[-1], 1)[4].startswith("**Step 1 of 4**")
    for key in (keys[0], first):  # said in the step's text (no error badge over the frames)
        assert "run it again" in t2i_steps.show_step(key, 1)[4]


def test_a_stopped_generate_button_run_says_where_it_stopped_and_shows_what_it_made(launched_app):
    """Stop mid-run: the status names the step it stopped at and the speed of the steps it took; the
    preview (labelled "the image it is heading for") is that step's x̂₀, the gallery the unfinished
    images, named and captioned so; the old branch comparison is emptied with the old run."""

    updates = t2i_ui.generate_ui(
        "tiny-sd", "a red circle", "", 0, 150, 3.0, "DDIM", 32, 32, 2, request=None, progress=lambda *a, **k: None
    )
    for update in updates:
        if isinstance(update[1], str) and update[1].startswith("Step "):  # the first streamed step
            assert "the settings are locked until it ends" in update[1]
            t2i_ui.stop_generation(None)
            break
    *_, final = updates
    assert len(final) == t2i_ui.GENERATE_OUTPUTS and final[-1] == []
    preview, status, gallery, recipe_json, key = final[:5]
    run = t2i_steps.kept_run(key)
    assert run.stopped and 1 <= run.steps_done < 150
    assert status.startswith(f"Stopped at step {run.steps_done} of 150 after ")
    assert "Done" not in status and f"{150 / run.seconds:.1f} steps/s" not in status
    entry = compute.run(runtime.text_to_image, "tiny-sd")
    heading_for = t2i_steps.preview_of(entry.pipe, run.steps[-1])
    assert np.array_equal(np.asarray(preview), np.asarray(t2i_images.enlarge(heading_for, t2i_steps.PREVIEW_PX)))
    assert [caption for _, caption in gallery] == ["seed 0 · unfinished", "seed 1 · unfinished"]
    names = [p.rsplit("/", 1)[-1] for p in final[9]]
    assert names[:2] == [f"a-red-circle_seed0_step{run.steps_done}of150-unfinished.png",
                         f"a-red-circle_seed0_step{run.steps_done}of150-unfinished_256x256.png"]  # fmt: skip
    with Image.open(gallery[0][0]) as shown:
        assert shown.size == (256, 256)  # what the gallery offers: big enough to see
