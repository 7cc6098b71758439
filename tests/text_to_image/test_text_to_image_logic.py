"""Text-to-image logic on a tiny real Stable-Diffusion-architecture pipeline, loaded by path
through the same loader as hub ids. No browser, no server."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import struct
import threading
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from demos import numbers as glue
from demos.text_to_image import core as t2i_core
from demos.text_to_image import generate as t2i_generate
from demos.text_to_image import recipe as t2i_recipe
from demos.text_to_image import steps as t2i_steps
from demos.text_to_image import ui as t2i_ui
from demos.text_to_image import views as t2i_views
from shared import scratch
from shared.diffusion import SCHEDULERS
from shared.images import enlarge
from shared.loaders import ModelLoadError, load_text_to_image
from shared.results import ResultStore
from shared.validation import MAX_SEED
from tests.tiny_models import build_tiny_kandinsky, build_tiny_sd_pipeline, spec

pytestmark = pytest.mark.fast


def _spec(path, key="tiny-sd"):
    return spec(path, key, "text-to-image")


@pytest.fixture(scope="module")
def entry(tiny_sd_dir, tmp_path_factory):
    return load_text_to_image(
        _spec(tiny_sd_dir), device="cpu", dtype=torch.float32, cache_dir=tmp_path_factory.mktemp("c")
    )


def recipe(**overrides) -> t2i_recipe.Recipe:
    raw = dict(
        model="tiny-sd",
        revision=None,
        prompt="a red circle",
        negative_prompt="",
        seed=3,
        num_inference_steps=4,
        guidance_scale=3.0,
        scheduler="DDIM",
        width=32,
        height=32,
        num_images_per_prompt=2,
    )
    raw.update(overrides)
    return t2i_recipe.check_recipe(**raw)


def pixels(run: t2i_core.Run) -> np.ndarray:
    return np.stack([np.asarray(im) for im in run.images])


# --- loading ---------------------------------------------------------------------------------------


def test_loader_loads_a_saved_pipeline_by_path(entry):
    from diffusers import StableDiffusionPipeline

    assert isinstance(entry.pipe, StableDiffusionPipeline)
    assert {"unet", "vae", "text_encoder", "tokenizer", "scheduler"} <= set(entry.pipe.components)


def test_loader_refuses_pickles_and_non_pipelines(tmp_path, tiny_sd_dir):
    import shutil

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_sd_dir, pickled)
    for f in pickled.rglob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(ModelLoadError, match="pickle"):
        load_text_to_image(_spec(pickled), device="cpu", dtype=torch.float32, cache_dir=tmp_path)
    lone = tmp_path / "lone"
    shutil.copytree(tiny_sd_dir / "vae", lone)
    with pytest.raises(ModelLoadError, match="not a diffusers pipeline"):
        load_text_to_image(_spec(lone), device="cpu", dtype=torch.float32, cache_dir=tmp_path)


# --- generation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_every_scheduler_runs_with_one_preview_and_one_frame_per_step(entry, scheduler):
    calls = []
    run = t2i_generate.generate(
        entry, recipe(scheduler=scheduler, num_inference_steps=5), on_step=lambda i, n, r: calls.append((i, n, r))
    )
    assert [c[0] for c in calls] == list(range(5)) and all(c[1] == 5 for c in calls)
    assert len(run.images) == 2 and run.images[0].size == (32, 32)
    assert len(run.steps) == 5  # the debugger has one frame per step…
    for _, _, record in calls:  # …and every preview can be drawn
        assert t2i_steps.preview_of(entry.pipe, record).shape == (32, 32, 3)
    for k in range(1, 6):
        view = t2i_steps.step_view(entry.pipe, run, k)
        assert view.x0 is not None and len(view.guidance) == 4
    assert all(r.x0 is not None and torch.isfinite(r.x0).all() for r in run.steps)


def test_same_seed_gives_identical_pixels_and_another_seed_does_not(entry):
    a, b = t2i_generate.generate(entry, recipe()), t2i_generate.generate(entry, recipe())
    c = t2i_generate.generate(entry, recipe(seed=4))
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(c))
    # image i of a batch uses seed + i: the second image of seed 3 is the first of seed 4
    assert np.abs(pixels(a)[1].astype(int) - pixels(c)[0].astype(int)).max() <= 1


def test_recorder_sees_the_guidance_it_reports(entry):
    """ε used = ε_uncond + w·(ε_cond − ε_uncond), and x̂₀ follows from x_t and ε by the schedule."""
    run = t2i_generate.generate(entry, recipe(guidance_scale=5.0, num_images_per_prompt=1))
    for r in run.steps:
        assert torch.allclose(r.eps, r.eps_uncond + 5.0 * (r.eps_cond - r.eps_uncond), atol=1e-5)
        a = r.alpha_bar
        assert torch.allclose(np.sqrt(a) * r.x0 + np.sqrt(1 - a) * r.eps, r.x_t, atol=1e-4)
    no_cfg = t2i_generate.generate(entry, recipe(guidance_scale=1.0, num_images_per_prompt=1))
    assert all(r.eps_cond is None for r in no_cfg.steps)  # w ≤ 1: one pass per step
    assert t2i_steps.guidance_frame(no_cfg).empty and len(t2i_steps.guidance_frame(run)) == 4


def test_branch_from_the_first_step_with_the_same_settings_retraces_the_path(entry):
    run = t2i_generate.generate(entry, recipe(num_images_per_prompt=1, scheduler="DDIM"))
    same = np.asarray(t2i_steps.branch(entry, run, 1, "DDIM", 3.0))
    original = np.asarray(enlarge(np.asarray(run.images[0]), t2i_steps.PREVIEW_PX))
    assert np.abs(same.astype(int) - original.astype(int)).max() <= 2
    other = np.asarray(t2i_steps.branch(entry, run, 2, "Euler", 9.0))
    assert other.shape == original.shape and not np.array_equal(other, original)


def test_schedule_frame_covers_every_scheduler(entry):
    frame = t2i_steps.schedule_frame(entry.pipe.scheduler.config, 10)
    assert set(frame["scheduler"]) == set(SCHEDULERS)
    for _, rows in frame.groupby("scheduler"):
        values = rows["alpha_bar"].to_numpy()
        assert len(values) == 10 and np.all(np.diff(values) >= 0)  # signal grows as noise is removed


def test_anatomy_lists_every_part_with_its_size(entry):
    text = t2i_steps.anatomy_markdown(entry)
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "UNet2DConditionModel", "CLIPTextModel"):
        assert part in text


def test_stop_ends_the_run_early(entry):
    stop = threading.Event()
    seen = []

    def on_step(i, n, r):
        seen.append(i)
        if i == 1:
            stop.set()

    run = t2i_generate.generate(
        entry, recipe(num_inference_steps=20, num_images_per_prompt=1), on_step=on_step, stop=stop
    )
    assert run.stopped and len(seen) == 2 and run.steps_done == 2 == len(run.steps)
    assert any("Stopped after step 2 of 20" in n for n in run.notices)  # its PNGs won't reproduce it: said so
    assert t2i_generate.generate(entry, recipe(num_inference_steps=3)).steps_done == 3  # a whole run: every step


def test_an_abandoned_run_ends_after_the_step_in_flight_without_decoding(entry):
    """Nobody waits for the images (a cancelled job, a closed tab): the run ends between two steps
    and the autoencoder never runs."""
    abandon = threading.Event()
    seen, decoded = [], []
    hook = entry.pipe.vae.decoder.register_forward_pre_hook(lambda *_: decoded.append(1))  # a real torch hook

    def on_step(i, n, r):
        seen.append(i)
        if i == 1:
            abandon.set()

    try:
        with pytest.raises(ValueError, match="Stopped"):
            t2i_generate.generate(entry, recipe(num_inference_steps=20), on_step=on_step, abandon=abandon)
        assert decoded == []
        assert len(t2i_generate.generate(entry, recipe()).images) == 2 and decoded  # the next run is whole, decoded
    finally:
        hook.remove()
    assert seen == [0, 1]


def test_requests_in_parallel_equal_serial_runs(entry):
    """Each request has its own scheduler and pipeline object; the recorder only hears its own thread."""
    recipes = [
        recipe(seed=s, scheduler=name) for s, name in zip(range(4), ["DDIM", "Euler", "DPM++ 2M", "DDPM"], strict=True)
    ]
    serial = [t2i_generate.generate(entry, r) for r in recipes]
    results: list = [None] * 4

    def work(i):
        try:
            results[i] = t2i_generate.generate(entry, recipes[i])
        except BaseException as exc:  # a thread's exception would otherwise vanish
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()  # pytest-timeout bounds the whole test
    for r in results:
        if isinstance(r, BaseException):
            raise r
    for s, p in zip(serial, results, strict=True):
        assert np.abs(pixels(s).astype(int) - pixels(p).astype(int)).max() <= 1
        assert len(p.steps) == len(s.steps)


# --- notices and bad output ----------------------------------------------------------------------


def test_empty_prompt_runs_unconditionally_with_a_notice(entry):
    run = t2i_generate.generate(entry, recipe(prompt="   "))
    assert len(run.images) == 2 and any("unconditionally" in n for n in run.notices)


def test_prompt_past_the_token_limit_is_truncated_with_a_notice(entry):
    notices = t2i_generate.prompt_notices(entry.pipe, recipe(prompt="a red circle " * 30))
    assert any("truncated" in n and "16" in n for n in notices)
    assert not t2i_generate.prompt_notices(entry.pipe, recipe())


@pytest.mark.parametrize("output, message", [("nan", "NaN"), ("black", "black")])
def test_nan_or_black_output_is_detected(tmp_path, output, message):
    path = build_tiny_sd_pipeline(tmp_path / output, output=output)
    broken = load_text_to_image(_spec(path, output), device="cpu", dtype=torch.float32, cache_dir=tmp_path)
    if output == "nan":
        with pytest.raises(ValueError, match=message):
            t2i_generate.generate(broken, recipe())
    else:
        assert any(message in n for n in t2i_generate.generate(broken, recipe()).notices)


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("width", 0, "width"),
        ("width", -8, "width"),
        ("height", 33, "multiple of 8"),
        ("width", 4096, "width"),
        ("num_inference_steps", 0, "steps"),
        ("num_inference_steps", -1, "steps"),
        ("num_inference_steps", 10**6, "steps"),
        ("guidance_scale", float("nan"), "guidance"),
        ("guidance_scale", float("inf"), "guidance"),
        ("guidance_scale", -1, "guidance"),
        ("seed", -1, "seed"),
        ("seed", 2**70, "seed"),
        ("seed", "abc", "seed"),
        ("num_images_per_prompt", 1000, "number of images"),
        ("scheduler", "Heun 9000", "scheduler"),
        ("scheduler", ["DDIM"], "scheduler"),
        ("prompt", 42, "text"),
        ("prompt", "x" * 5000, "characters"),
    ],
)
def test_bad_settings_get_a_clear_message(field, value, message):
    with pytest.raises(ValueError, match=message):
        recipe(**{field: value})


def test_pixel_cap():
    with pytest.raises(ValueError, match="pixel cap"):
        t2i_recipe.check_recipe(
            model="sdxl-turbo", revision=None, prompt="x", negative_prompt="", seed=0, num_inference_steps=1,
            guidance_scale=0, scheduler="Euler", width=1024, height=1024, num_images_per_prompt=1,
            max_pixels=t2i_recipe.CPU_MAX_PIXELS,
        )  # fmt: skip


def test_cost_cap_says_what_to_lower_and_counts_images_steps_and_pixels():
    """images × steps × pixels per request, under a cap that is tighter on a CPU."""
    assert t2i_recipe.CPU_MAX_COST == 8 * 150 * 32 * 32 < t2i_recipe.MAX_COST
    at_cap = recipe(
        num_images_per_prompt=8, num_inference_steps=37, width=64, height=64, max_cost=t2i_recipe.CPU_MAX_COST
    )
    assert t2i_recipe.cost(at_cap) == 8 * 37 * 64 * 64 <= t2i_recipe.CPU_MAX_COST
    assert recipe(
        num_images_per_prompt=8, num_inference_steps=150, max_cost=t2i_recipe.CPU_MAX_COST
    )  # any count at 32²
    with pytest.raises(ValueError) as info:
        recipe(num_images_per_prompt=8, num_inference_steps=150, width=64, height=64, max_cost=t2i_recipe.CPU_MAX_COST)
    message = str(info.value)
    assert "8 images × 150 steps × 64×64 pixels = 4,915,200" in message and "1,228,800" in message
    assert "Lower num_images_per_prompt, num_inference_steps or the size" in message and "at most 37 steps" in message
    with pytest.raises(ValueError, match="Lower count, steps or the size"):  # the names the client sent
        t2i_recipe.check_recipe(
            model="tiny-sd", revision=None, prompt="x", negative_prompt="", seed=0, num_inference_steps=150,
            guidance_scale=3, scheduler="DDIM", width=64, height=64, num_images_per_prompt=8,
            max_cost=t2i_recipe.CPU_MAX_COST, sent_as={"num_inference_steps": "steps", "num_images_per_prompt": "count"},
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"cap of 100 per request\. Lower .* the size\.$"):  # not even one step fits
        recipe(num_images_per_prompt=1, num_inference_steps=1, max_cost=100)
    assert recipe(num_images_per_prompt=8, num_inference_steps=150, width=64, height=64, max_cost=None)


def test_lcm_past_its_distillation_grid_is_refused_with_our_message(entry):
    """LCM takes its steps from the 50 it was distilled on (original_inference_steps): past that,
    our message names the limit and the parameter, never diffusers' `strength`."""
    assert len(
        t2i_generate.generate(entry, recipe(scheduler="LCM", num_inference_steps=50, num_images_per_prompt=1)).steps
    )
    with pytest.raises(ValueError) as info:
        t2i_generate.generate(entry, recipe(scheduler="LCM", num_inference_steps=51))
    message = str(info.value)
    assert "at most 50 steps" in message and "num_inference_steps" in message and "strength" not in message
    run = t2i_generate.generate(entry, recipe(scheduler="DDIM", num_inference_steps=60, num_images_per_prompt=1))
    with pytest.raises(ValueError, match="at most 50 steps.*the run's steps") as info:
        t2i_steps.branch(entry, run, 3, "LCM", 1.0)
    assert "strength" not in str(info.value)


# --- the recipe in the PNG -----------------------------------------------------------------------


def test_png_recipe_round_trips_and_reproduces_the_pixels(entry):
    run = t2i_generate.generate(entry, recipe(negative_prompt="blue", scheduler="Euler ancestral"))
    paths = t2i_views.save_pngs(run).originals
    assert all(Path(p).parent.parent == scratch.root() for p in paths)  # the swept scratch folder
    restored = t2i_recipe.recipe_from_png(paths[1])
    assert restored == run.recipe
    with Image.open(paths[1]) as image:
        assert "Seed: 4" in image.info["parameters"]  # AUTOMATIC1111's format, image 2 = seed + 1
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(run.images[1]))
    again = t2i_generate.generate(entry, restored)
    assert np.array_equal(pixels(again), pixels(run))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims to be width×height (the pixels are never there: nothing to decompress)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def test_restore_refuses_bad_files():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    plain_png = buffer.getvalue()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
    cases = {
        b"\x89PNG\r\n\x1a\n garbage": "not a readable PNG",
        b"hello": "not a readable PNG",
        _png_header_only(20000, 20000): "too large|past the cap",
        plain_png: "no GenAI Playground recipe",
        buffer.getvalue(): "takes a PNG",
    }
    for data, message in cases.items():
        with pytest.raises(ValueError, match=message):
            t2i_recipe.recipe_from_png(data)


def test_restore_validates_the_recipe_it_reads():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(t2i_recipe.RECIPE_KEY, '{"model": "tiny-sd", "prompt": "x", "negative_prompt": "", "seed": -5, '
                  '"steps": 4, "guidance_scale": 3, "scheduler": "DDIM", "width": 32, "height": 32, "count": 1}')  # fmt: skip
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    with pytest.raises(ValueError, match="seed"):
        t2i_recipe.recipe_from_png(buffer.getvalue())


def test_older_pngs_that_say_steps_and_count_still_restore():
    """PNGs made before the diffusers names carry `steps` and `count`; a bad value is named as stored."""
    from PIL import PngImagePlugin

    def png(**changes) -> bytes:
        data = dataclasses.asdict(recipe())
        data["steps"], data["count"] = data.pop("num_inference_steps"), data.pop("num_images_per_prompt")
        info = PngImagePlugin.PngInfo()
        info.add_text(t2i_recipe.RECIPE_KEY, json.dumps({**data, **changes}))
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
        return buffer.getvalue()

    assert t2i_recipe.recipe_from_png(png()) == recipe()
    with pytest.raises(ValueError, match="^steps must be between"):
        t2i_recipe.recipe_from_png(png(steps=0))
    with pytest.raises(ValueError, match="^count .*number of images"):
        t2i_recipe.recipe_from_png(png(count=99))


# --- a pipeline with a prior (Kandinsky 2.2's anatomy) ------------------------------------------


def test_a_pipeline_with_a_prior_loads_from_two_folders_and_is_watched(tmp_path):
    """Prior and decoder come from separate folders (the hub's two repos), are combined, and the
    tab watches the decoder's UNet; its learned-variance output is split off."""
    decoder_dir, prior_dir = build_tiny_kandinsky(tmp_path)
    kandinsky = spec(decoder_dir, "tiny-kandinsky", "text-to-image", recipe={"prior": (str(prior_dir), None)})
    entry = load_text_to_image(kandinsky, device="cpu", dtype=torch.float32, cache_dir=tmp_path)
    assert {"prior_prior", "prior_text_encoder", "unet", "movq"} <= set(entry.pipe.components)
    assert "→ prior" in t2i_steps.anatomy_markdown(entry) and "PriorTransformer" in t2i_steps.anatomy_markdown(entry)
    frames = []
    run = t2i_generate.generate(
        entry, recipe(model="tiny-kandinsky", num_inference_steps=3), on_step=lambda i, n, r: frames.append(r)
    )
    assert len(run.images) == 2 and run.images[0].size == (32, 32)
    assert len(run.steps) == 3 and len(frames) == 3 and run.steps[0].eps_cond is not None
    assert t2i_steps.step_view(entry.pipe, run, 2).x0 is not None
    again = t2i_generate.generate(entry, recipe(model="tiny-kandinsky", num_inference_steps=3))
    assert np.array_equal(pixels(run), pixels(again))
    # per-request schedulers reach the sub-pipelines too: two threads, two schedulers, serial results
    recipes = [
        recipe(model="tiny-kandinsky", num_inference_steps=3, seed=s, scheduler=n)
        for s, n in ((1, "DDPM"), (2, "Euler"))
    ]
    serial = [pixels(t2i_generate.generate(entry, r)) for r in recipes]
    results = [None, None]
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, pixels(t2i_generate.generate(entry, recipes[i]))))
        for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s, p in zip(serial, results, strict=True):
        assert np.abs(s.astype(int) - p.astype(int)).max() <= 1
    # Kandinsky's pipeline has no interrupt flag: Stop still ends it, with a message
    stop = threading.Event()
    stop.set()
    with pytest.raises(ValueError, match="Stopped"):
        t2i_generate.generate(entry, recipe(model="tiny-kandinsky", num_inference_steps=3), stop=stop)


# --- the last run, kept by key ------------------------------------------------------------------


def test_a_run_is_kept_by_key_and_a_dropped_one_says_run_it_again(entry, monkeypatch):
    """The session's gr.State holds a key; the store keeps runs under a byte budget, and a dropped
    run gives the debugger and Branch a clear message."""
    run = t2i_generate.generate(entry, recipe(num_inference_steps=5, num_images_per_prompt=1))
    nbytes = t2i_steps.run_nbytes(run)
    record = run.steps[0]
    assert nbytes >= 5 * sum(t.nbytes for t in (record.x_t, record.eps, record.x0, record.eps_uncond, record.eps_cond))
    store = ResultStore(max_bytes=nbytes)  # room for one run
    monkeypatch.setattr(t2i_steps, "RUNS", store)
    first = store.put(run, nbytes)
    assert isinstance(first, str) and t2i_steps.kept_run(first) is run
    second = store.put(run, nbytes)
    assert t2i_steps.kept_run(second) is run and store.used_bytes() <= store.max_bytes
    # the debugger says so in its step text, Branch in a warning; neither raises (no error badge left on them)
    for key, message in [
        (first, "no longer kept on the server.*run it again"),
        ("a key nobody was given", "no longer kept"),
        (None, "Generate an image first"),
    ]:
        for view in (t2i_steps.show_step, t2i_steps.scrub_step):
            assert view(key, 1)[:4] == (gr.skip(),) * 4 and re.search(message, view(key, 1)[4])
        with pytest.warns(UserWarning, match=message):  # gr.Warning outside a request is a Python warning
            assert t2i_steps.branch_ui(key, 1, "DDIM", 3.0) == gr.skip()


# --- what the screen says: the status line, numbers typed into a box, downloads, the schedule plot ---


def test_a_stopped_run_says_where_it_stopped_and_counts_only_the_steps_it_took(entry):
    stop = threading.Event()
    run = t2i_generate.generate(
        entry, recipe(num_inference_steps=40), on_step=lambda i, n, r: i == 2 and stop.set(), stop=stop
    )
    status = t2i_views.run_status(run)
    assert status.startswith("Stopped at step 3 of 40 after ") and "Done" not in status
    speed = float(re.search(r"after [\d.]+ s \(([\d.]+) steps/s\)", status).group(1))
    assert speed == pytest.approx(3 / run.seconds, rel=0.02, abs=0.051)  # the 3 steps it took, not 40
    assert "the image step 3 was heading for (x̂₀)" in status  # what the preview then shows
    assert "2 image(s) below are the half-denoised latents at step 3" in status
    assert "not the images 40 steps would make" in status and "Stopped after step 3 of 40" in status  # + the notice
    done = t2i_generate.generate(entry, recipe(num_inference_steps=4))
    assert re.fullmatch(r"Done: 2 image\(s\), 4 steps in [\d.]+ s \([\d.]+ steps/s\)\.", t2i_views.run_status(done))


@pytest.mark.parametrize(
    "box, typed, value, message",
    [
        ("t2i-steps", 100000, 150, "Steps: 100,000 is above the maximum, 150; set to 150."),
        # 64 is shapes-t2i's largest side (its catalog max_side), not the minimum (8)
        ("t2i-width", 10000, 64, "Width: 10,000 is above shapes-t2i's largest side, 64; set to 64."),
        (
            "t2i-width",
            60,
            64,
            "Width: 60 is not a multiple of 8; set to 64.",
        ),  # the slider keeps 60: Generate refused it
        ("t2i-width", 3, 8, "Width: 3 is below the minimum, 8; set to 8."),
        ("t2i-height", None, 8, "Height: the box was left empty; set to the minimum, 8."),
        ("t2i-images", 2.5, 3, "Images: 2.5 is not a whole number; set to 3."),
        ("t2i-guidance", 31.5, 30, "Guidance scale: 31.5 is above the maximum, 30; set to 30."),
        ("t2i-guidance", 3.3, 3.3, None),  # any guidance in range is taken as it is
        ("t2i-steps", 20, 20, None),
        ("t2i-steps", 20.0, 20, None),
        ("t2i-steps", "abc", None, None),  # no number: nothing to fit (the server refuses it at Generate)
        ("t2i-steps", float("nan"), None, None),
        ("t2i-steps", True, None, None),
    ],
)
def test_a_number_typed_into_a_settings_box_is_set_to_the_nearest_value_it_takes_with_a_message(
    box, typed, value, message
):
    assert glue.fit_number(t2i_views.setting_boxes("shapes-t2i")[box], typed) == (value, message)


def test_a_typed_seed_follows_the_same_rule():
    assert glue.fit_number(t2i_views.SEED_BOX, -5) == (0, "Seed: -5 is below the minimum, 0; set to 0.")
    big, said = glue.fit_number(t2i_views.SEED_BOX, 10**400)  # exact: never turned into a float
    assert (
        big == MAX_SEED
        and said == "Seed: a 401-digit number is above the maximum, 4,294,967,295; set to 4,294,967,295."
    )
    assert glue.fit_number(t2i_views.SEED_BOX, 1234) == (1234, None)
    assert t2i_views.setting_boxes("sdxl-turbo")["t2i-width"].high == 1024  # each model's own largest side


def test_pngs_are_named_after_prompt_seed_and_steps_and_small_ones_come_enlarged(entry):
    run = t2i_generate.generate(entry, recipe(prompt="A red circle, top-left!", seed=7, num_inference_steps=3))
    pngs = t2i_views.save_pngs(run)
    assert [Path(p).name for p in pngs.originals] == ["a-red-circle-top-left_seed7_3steps.png",
                                                      "a-red-circle-top-left_seed8_3steps.png"]  # fmt: skip
    assert [Path(p).name for p in pngs.shown] == ["a-red-circle-top-left_seed7_3steps_256x256.png",
                                                  "a-red-circle-top-left_seed8_3steps_256x256.png"]  # fmt: skip
    assert pngs.downloads == [pngs.originals[0], pngs.shown[0], pngs.originals[1], pngs.shown[1]]
    assert pngs.captions == ["seed 7", "seed 8"]
    with Image.open(pngs.shown[1]) as big, Image.open(pngs.originals[1]) as small:
        assert big.size == (256, 256) and small.size == (32, 32)
        original = np.asarray(small.convert("RGB"))
        assert np.array_equal(np.asarray(big.convert("RGB")), original.repeat(8, 0).repeat(8, 1))  # nearest neighbour
        assert "8× nearest neighbour of the 32×32 image" in big.info["enlarged"]
    assert t2i_recipe.recipe_from_png(pngs.shown[1]) == t2i_recipe.recipe_from_png(pngs.originals[1]) == run.recipe
    stop = threading.Event()
    stopped = t2i_generate.generate(
        entry, recipe(prompt="", num_inference_steps=9), on_step=lambda *_: stop.set(), stop=stop
    )
    names = [Path(p).name for p in t2i_views.save_pngs(stopped).originals]
    assert names[0] == "no-prompt_seed3_step1of9-unfinished.png"
    assert t2i_views.save_pngs(stopped).captions[0] == "seed 3 · unfinished"
    assert (
        t2i_views.slug("一只红色的猫 / on a mat") == "一只红色的猫-on-a-mat" and len(t2i_views.slug("word " * 40)) <= 40
    )


def test_big_images_are_offered_as_they_are(entry):
    run = t2i_generate.generate(entry, recipe(width=256, height=256, num_images_per_prompt=1, num_inference_steps=1))
    pngs = t2i_views.save_pngs(run)
    assert pngs.shown == pngs.originals and pngs.downloads == pngs.originals  # no copy of a 256-px image


def test_the_schedule_plot_gives_every_scheduler_its_own_row_of_steps(entry):
    """The six ᾱ_t curves nearly overlap (and two pairs coincide exactly); as rows of dots at each
    step's log-SNR no scheduler can hide another, and the debugger's step is marked on each row."""
    run = t2i_generate.generate(entry, recipe(num_inference_steps=10, num_images_per_prompt=1))
    frame = t2i_steps.schedule_plot_frame(entry.pipe, run, 10, 4)
    assert list(frame["scheduler"].unique()) == list(SCHEDULERS)  # one row (a y category) each
    for _, rows in frame.groupby("scheduler"):
        snr = rows["log_snr"].to_numpy()
        assert len(snr) == 10 and np.isfinite(snr).all() and np.all(np.diff(snr) > 0)  # noise → signal
        assert list(rows.loc[rows["dot"] == t2i_steps.STEP_SHOWN, "step"]) == [4]
        assert np.allclose(snr, np.log(rows["alpha_bar"] / (1 - rows["alpha_bar"])))
    assert t2i_steps.log_snr(np.array([0.0, 0.5, 1.0])).tolist() == pytest.approx([-13.8155, 0.0, 13.8155], abs=1e-3)
    unmarked = t2i_steps.schedule_plot_frame(entry.pipe, None, 10)
    assert set(unmarked["dot"]) == {"a step"}


# --- the glue: locking, the one rule for typed numbers, no error badges ---------------------------


def test_generate_locks_the_model_and_recipe_controls_and_unlocks_them_however_it_ends():
    locked, unlocked = t2i_views.lock_controls(), t2i_views.unlock_controls()
    assert (
        len(locked) == len(unlocked) == len(t2i_views.LOCKED) + 1
        and "model" in t2i_views.LOCKED
        and "restore" in t2i_views.LOCKED
    )
    assert all(u == gr.update(interactive=False) for u in locked[:-1]) and locked[-1] == gr.update(interactive=True)
    assert all(u == gr.update(interactive=True) for u in unlocked[:-1]) and unlocked[-1] == gr.update(interactive=False)


def test_fit_setting_reads_the_typed_number_from_the_event_and_sets_only_its_box():
    width = gr.Slider(8, 64, elem_id="t2i-width", render=False)
    with pytest.warns(UserWarning, match="Width: 10,000 is above shapes-t2i's largest side, 64; set to 64."):
        updates = t2i_views.fit_setting("shapes-t2i", gr.EventData(width, 10000))
    assert updates == [gr.skip(), gr.skip(), 64, gr.skip(), gr.skip()]  # steps, guidance, width, height, images
    assert t2i_views.fit_setting("shapes-t2i", gr.EventData(width, 32)) == [gr.skip()] * 5  # in range: nothing to say
    with pytest.warns(UserWarning, match="Seed: -5 is below the minimum, 0"):
        assert t2i_views.fit_seed(-5) == 0
    assert t2i_views.fit_seed(42) == gr.skip()


def test_picking_a_model_loads_its_settings_and_replaces_the_last_status():
    *settings, note, status = t2i_ui.model_defaults("shapes-t2i")
    assert settings[0] == 20 and "Recommended: 20 steps" in note
    assert status == "Settings set to shapes-t2i's recommended ones. Press Generate."  # clears an old error badge


def test_the_tab_is_wired_so_its_boxes_follow_one_rule_and_its_controls_lock_while_it_runs():
    """The events as Gradio will run them: which triggers, which inputs (an input that is a slider
    would be refused by Gradio's own bounds, with an error badge, before the handler could fit it)."""
    from demos import server
    from shared import runtime
    from tests.helpers import app_settings

    runtime.configure(app_settings())
    demo = server.standalone(t2i_ui.build_ui, "Text to image")
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    fns = {}
    for fn in demo.fns.values():
        fns.setdefault(fn.name, []).append(fn)

    def triggers(fn):
        return {(demo.blocks[i].elem_id, event) for i, event in fn.targets}

    boxes = t2i_views.setting_boxes("shapes-t2i")
    for elem_id, box in boxes.items():  # the rule's ranges are the sliders' own
        assert (by_id[elem_id].minimum, by_id[elem_id].maximum) == (box.low, box.high)
    [fit] = fns["fit_setting"]
    assert triggers(fit) == {(name, "release") for name in boxes}
    assert [o.elem_id for o in fit.outputs] == list(boxes) and fit.show_progress == "hidden"
    [seed] = fns["fit_seed"]
    assert triggers(seed) == {("t2i-seed", "blur"), ("t2i-seed", "submit")} and not seed.preprocess
    assert by_id["t2i-seed"].minimum is None and by_id["t2i-seed"].maximum is None  # Gradio refuses nothing itself
    [lock] = fns["lock_controls"]
    assert triggers(lock) == {("t2i-generate", "click"), ("t2i-prompt", "submit")}
    assert by_id["t2i-model"] in lock.outputs and len(lock.outputs) == len(t2i_views.LOCKED) + 1
    assert lock.outputs[-1] is by_id["t2i-stop"] and by_id["t2i-stop"].interactive is False  # Stop: quiet when idle
    [run] = fns["generate_ui"]
    assert run.trigger_after == lock._id
    unlocks = fns["unlock_controls"]
    assert {(u.trigger_after, u.trigger_only_on_failure) for u in unlocks} == {(run._id, False), (run._id, True)}
    [scrub] = fns["scrub_step"]
    assert triggers(scrub) == {("t2i-step", "change")} and "#t2i-step input[type=number]" in scrub.js
    assert scrub.trigger_mode == "always_last" and None not in fns  # no page-only (js-only) event
    assert not any(isinstance(i, gr.Slider) for i in scrub.inputs)
