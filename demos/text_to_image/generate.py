"""Text-to-image tab: any diffusers pipeline, with the image forming live and every step kept.

A diffusion model starts from pure noise and, step by step, removes the noise its network (a
UNet or transformer) predicts, guided by the prompt; a *scheduler* decides how big each step is.
This tab runs the stock diffusers pipeline call and watches it through two windows that cost
almost nothing: a forward hook on the denoiser records what it predicted at each step (for the
step debugger and the guidance view), and ``callback_on_step_end`` streams a preview — and ends
the run between two steps when it is stopped, or when nobody waits for it any more.

While a run goes, the model picker and every control of its recipe are locked, so the screen shows
the recipe being run; a number typed past a box is set to the nearest value the setting takes,
with a warning (the API refuses it instead, naming the range).

Reads top to bottom: one generation → model work → Gradio glue (the live stream, the Generate
button, the API) → ``build_ui``. The recipe (limits, validation, cost cap, the recipe in the PNG)
is ``demos/text_to_image/recipe.py``; the step debugger (the recorder, previews, plots and
branching) is ``demos/text_to_image/steps.py``; what the screen says (the status line, the PNGs'
names, the number boxes' rule, the lock) is ``demos/text_to_image/views.py``.

Run alone: ``python -m demos.text_to_image``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from demos.text_to_image import steps as debugger
from demos.text_to_image.core import Run, StepRecord
from demos.text_to_image.recipe import (
    Recipe,
    check_scheduler_steps,
)
from shared import compute, runtime
from shared.diffusion import make_scheduler, request_pipeline
from shared.loaders import TextToImage

TICK_S = 0.2  # a running job yields at least this often: only at a yield can Gradio close a cancelled one
PREVIEW_SHARE = 0.05  # live previews may take at most this share of a run (a tiny model's decode is a few steps)
PREVIEW_GUESS_S = 0.02  # what a preview costs until one has been drawn (a 32×32 MoVQ decode on one CPU core)


# --- one generation ------------------------------------------------------------------------------


def prompt_notices(pipe, recipe: Recipe) -> list[str]:
    """What the user should know before the run: an empty prompt, a prompt cut by the tokenizer."""
    notices = []
    if not recipe.prompt:
        notices.append("Empty prompt: generating unconditionally (what the model draws with no caption).")
    tokenizer = getattr(pipe, "tokenizer", None)
    limit = getattr(tokenizer, "model_max_length", None)
    for name, text in (("prompt", recipe.prompt), ("negative prompt", recipe.negative_prompt)):
        if not text or tokenizer is None or not limit or limit > 100_000:
            continue
        ids = tokenizer(text, truncation=False).input_ids
        if len(ids) > limit:
            kept = tokenizer.decode(ids[1 : limit - 1], skip_special_tokens=True)
            notices.append(
                f"The {name} is {len(ids)} tokens; the text encoder reads {limit}, so it was truncated after "
                f"“…{kept[-40:]}”."
            )
    return notices


class _Stopped(Exception):
    """Raised from the step callback to end a run at once: a pipeline that has no interrupt flag
    was stopped, or nobody waits for the images any more."""


def generate(
    entry: TextToImage,
    recipe: Recipe,
    *,
    on_step: Callable[[int, int, StepRecord | None], None] | None = None,
    stop: threading.Event | None = None,
    abandon: threading.Event | None = None,
) -> Run:
    """Run the stock pipeline call once for the recipe, recording each step of image 0.

    ``on_step(i, total, record)`` is called after every step (from this thread). ``stop`` ends the
    run after the current step and returns its half-finished images; ``abandon`` (a cancelled job,
    a closed tab) ends it there without decoding anything. The request gets its own scheduler and
    its own pipeline object around the shared, cached components."""
    # 1. a scheduler and pipeline object of this request's own; the recorder on its denoiser
    scheduler = make_scheduler(recipe.scheduler, entry.pipe.scheduler.config)
    check_scheduler_steps(scheduler, recipe.num_inference_steps)
    pipe = request_pipeline(entry.pipe, scheduler)
    notices = prompt_notices(pipe, recipe)
    denoiser = debugger.denoiser_of(pipe)
    prediction = getattr(scheduler.config, "prediction_type", "epsilon")
    recorder = None
    if denoiser is not None:
        recorder = debugger.StepRecorder(
            denoiser, scheduler, recipe.num_images_per_prompt, recipe.guidance_scale, prediction
        )
    stopped, done = False, 0

    def callback(p, i, t, kwargs):
        nonlocal stopped, done
        done = i + 1
        if abandon is not None and abandon.is_set():
            raise _Stopped  # nobody waits for these images: end between two steps, decode nothing
        if on_step is not None:
            on_step(i, recipe.num_inference_steps, recorder.steps[-1] if recorder and recorder.steps else None)
        if stop is not None and stop.is_set():
            stopped = True
            if not hasattr(type(p), "interrupt"):  # this pipeline never checks the flag: end it here
                raise _Stopped
            p._interrupt = True
        compute.yield_to_interactive()  # on a CPU, a chat or attention request waiting goes first
        return kwargs

    # 2. the stock call; image i of the batch gets seed + i
    generators = [torch.Generator("cpu").manual_seed(recipe.seed + i) for i in range(recipe.num_images_per_prompt)]
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            output = pipe(
                prompt=recipe.prompt,
                negative_prompt=recipe.negative_prompt or None,
                num_inference_steps=recipe.num_inference_steps,
                guidance_scale=recipe.guidance_scale,
                width=recipe.width,
                height=recipe.height,
                num_images_per_prompt=recipe.num_images_per_prompt,
                generator=generators,
                output_type="np",
                callback_on_step_end=callback,
            )
    except _Stopped:
        raise ValueError("Stopped. (This pipeline can't return a half-finished image.)") from None
    finally:
        if recorder:
            recorder.close()
    # 3. (N, H, W, 3) floats in [0, 1] → checked → PIL images
    pixels = np.asarray(output.images)
    notices += output_notices(pixels)
    if stopped:
        notices.append(
            f"Stopped after step {done} of {recipe.num_inference_steps}: the PNGs' recipe describes the full "
            "run, so it will not reproduce these unfinished images."
        )
    images = [Image.fromarray((p * 255).round().astype(np.uint8)) for p in pixels]
    steps = recorder.steps if recorder else []
    return Run(recipe, images, steps, time.perf_counter() - start, notices, stopped, done)


def output_notices(pixels: np.ndarray) -> list[str]:
    """(N, H, W, 3) in [0, 1]: a ValueError for NaN or infinite values, a notice for black images."""
    if not np.isfinite(pixels).all():
        raise ValueError(
            "The model produced NaN or infinite values, so there is no image to show (on GPUs this is "
            "often fp16 overflow in the autoencoder). Nothing was saved; the next request starts clean."
        )
    black = [i + 1 for i in range(len(pixels)) if pixels[i].max() < 1 / 255]
    if not black:
        return []
    return [
        f"Image {', '.join(map(str, black))} came out completely black (a safety checker blanks images "
        "it flags; a model can also collapse). Try another seed or prompt."
    ]


# --- model work: plain values in, CPU data out (run on a worker by shared.compute) ---------------


def work_generate_live(
    recipe: Recipe,
    events: queue.Queue,
    stop: threading.Event,
    abandon: threading.Event,
    interval_s: float,
    previews: bool = True,
) -> Run:
    """One generation that puts (step, preview) on ``events`` at most every ``interval_s`` (and at
    the last step), then None. The preview (with ``previews``) is drawn here, from that step's x̂₀,
    while drawing them (and the next) stays within PREVIEW_SHARE of the run so far: a run of under
    0.4 s (PREVIEW_GUESS_S / PREVIEW_SHARE) shows none. The last step has none either (the images follow at once)."""
    entry = runtime.text_to_image(recipe.model)
    start = last = time.perf_counter()
    drawing = cost = 0.0  # seconds spent on previews so far; the last one's

    def on_step(i: int, total: int, record: StepRecord | None) -> None:
        nonlocal last, drawing, cost
        now = time.perf_counter()
        if now - last >= interval_s or i == total - 1:
            last = now
            preview = None
            affordable = drawing + (cost or PREVIEW_GUESS_S) <= PREVIEW_SHARE * (now - start)
            if previews and record is not None and i < total - 1 and affordable:
                preview = debugger.preview_of(entry.pipe, record)
                cost = time.perf_counter() - now
                drawing += cost
            events.put((i, preview))

    try:
        return generate(entry, recipe, on_step=on_step, stop=stop, abandon=abandon)
    finally:
        events.put(None)
