"""The Text-to-image tab's Gradio glue and layout: the live stream, the Generate button, the API, ``build_ui``.

Run alone: ``python -m demos.text_to_image``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import queue
import threading
import time
from collections.abc import Iterator

import gradio as gr
import numpy as np

from demos import glue
from demos.glue import user_error
from demos.text_to_image import clip_panel, unclip_panel, views
from demos.text_to_image import steps as debugger
from demos.text_to_image.generate import TICK_S, Run, work_generate_live
from demos.text_to_image.recipe import (
    CPU_MAX_COST,
    CPU_MAX_PIXELS,
    MAX_COST,
    MAX_GUIDANCE,
    MAX_IMAGES,
    MAX_PIXELS,
    MAX_PROMPT_CHARS,
    MAX_STEPS,
    Recipe,
    check_recipe,
    cost,
    from_deprecated_names,
    png_bytes,
    recipe_from_png,
    recommended,
)
from demos.text_to_image.steps import PREVIEW_PX
from demos.text_to_image.views import save_pngs
from shared import catalog, compute, runtime
from shared.diffusion import SCHEDULER_NOTES, SCHEDULERS
from shared.images import enlarge
from shared.loaders import TextToImage
from shared.validation import MAX_SEED

# --- Gradio glue ---------------------------------------------------------------------------------

_stops = glue.StopFlags()


def max_cost() -> int:
    """This device's cap on images × steps × pixels per request."""
    return runtime.capped(MAX_COST if runtime.get().device != "cpu" else CPU_MAX_COST, "image_cost")


def _recipe(entry: TextToImage, **raw) -> Recipe:
    """The raw settings checked, under this device's pixel and cost caps."""
    cap = MAX_PIXELS if runtime.get().device != "cpu" else CPU_MAX_PIXELS
    return check_recipe(model=entry.key, revision=entry.revision, max_pixels=cap, max_cost=max_cost(), **raw)


def stream(
    recipe: Recipe, stop: threading.Event, *, previews: bool = True
) -> Iterator[tuple[int, np.ndarray | None, Run | None]]:
    """Generate on a worker; yield (step, preview, None) at most every stream_interval seconds, the
    last step again (−1 before the first) with no preview whenever TICK_S passes without one, then
    (num_inference_steps, None, run) at the end.

    Gradio closes a cancelled or disconnected job's generator only at a yield, hence the ticks. A
    consumer that leaves early ends the run after the step in flight, without decoding its images."""
    if compute.on_gpu(generate_on_gpu, (recipe,), {}):  # ZeroGPU: the whole run in its worker
        yield from compute.stream(generate_on_gpu, recipe, previews)
        return
    events: queue.Queue = queue.Queue()
    abandon = threading.Event()
    interval_s = runtime.get().settings.stream_interval
    future = compute.submit(work_generate_live, recipe, events, stop, abandon, interval_s, previews)
    step, finished = -1, False
    try:
        while not finished:
            try:
                item = events.get(timeout=TICK_S)
            except queue.Empty:
                yield step, None, None  # a tick: nothing new, but a point where a cancelled job is closed
                continue
            if not (finished := item is None):
                step = item[0]
                yield item[0], item[1], None
    finally:
        if not finished:  # the consumer left early (a closed tab, a cancelled job): end the work too
            abandon.set()
            stop.set()
    yield recipe.num_inference_steps, None, future.result()


@compute.gpu_entry(
    model=lambda recipe, previews=True: recipe.model,
    seconds=lambda recipe, previews=True: 15 + cost(recipe) / (512 * 512) * 0.15,  # ~0.15 s per 512² step
)
def generate_on_gpu(recipe: Recipe, previews: bool = True) -> Iterator[tuple[int, np.ndarray | None, Run | None]]:
    """``stream`` from plain values, for ZeroGPU's forked worker: the generation thread and its flags
    start in here, and Stop arrives as Gradio's cancellation (the worker closes this at its next yield)."""
    yield from stream(recipe, threading.Event(), previews=previews)


def generate_ui(
    model,
    prompt,
    negative_prompt,
    seed,
    num_inference_steps,
    guidance_scale,
    scheduler,
    width,
    height,
    num_images_per_prompt,
    request: gr.Request,
    progress=gr.Progress(),
):
    """The Generate button: live previews and a status line, then the images and every panel."""
    stop = _stops.start(request)
    try:
        entry = compute.run(runtime.text_to_image, model)
        recipe = _recipe(
            entry,
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            scheduler=scheduler,
            width=width,
            height=height,
            num_images_per_prompt=num_images_per_prompt,
        )
        yield from _updates(recipe, stop, progress)
    except Exception as exc:
        raise user_error(exc, "Generation") from None
    finally:
        _stops.finish(request, stop)


# generate_ui's outputs: preview, status, gallery, recipe, run key, step slider, schedule, pull, anatomy,
# downloads, the branch comparison
GENERATE_OUTPUTS = 11


def _updates(recipe: Recipe, stop: threading.Event, progress) -> Iterator[tuple]:
    """generate_ui's outputs: (preview, status, skipped…) per streamed step, nothing new per tick,
    then all of them (the fifth, for the session's gr.State, is the run's key in the debugger's store)."""
    start, shown, run = time.perf_counter(), -1, None
    total = recipe.num_inference_steps
    skipped = (gr.skip(),) * (GENERATE_OUTPUTS - 2)
    with contextlib.closing(stream(recipe, stop)) as live:  # closed with this generator: the run ends too
        for i, picture, run in live:
            if run is not None:
                break
            if i == shown:  # a tick: nothing to update
                yield (gr.skip(), gr.skip(), *skipped)
                continue
            shown, done = i, i + 1
            per_step = (time.perf_counter() - start) / done
            progress((done, total), desc="denoising")
            status = (
                f"Step {done}/{total} · {per_step:.2f} s/step · ETA {per_step * (total - done):.1f} s · "
                "the settings are locked until it ends"
            )
            yield enlarge(picture, PREVIEW_PX) if picture is not None else gr.skip(), status, *skipped
    pngs = save_pngs(run)
    last = len(run.steps) or 1
    middle = (last + 1) // 2  # the debugger opens halfway: noise and picture both visible
    panels = compute.run(debugger.work_run_panels, run, middle)
    yield (
        enlarge(panels.preview, PREVIEW_PX),
        views.run_status(run),
        list(zip(pngs.shown, pngs.captions, strict=True)),
        json.dumps(dataclasses.asdict(recipe), indent=1, ensure_ascii=False),
        debugger.RUNS.put(run, debugger.run_nbytes(run)),  # the session keeps only this key
        gr.Slider(minimum=1, maximum=max(last, 2), value=middle, step=1, interactive=bool(run.steps)),
        panels.schedule,
        panels.pull,
        panels.anatomy,
        pngs.downloads,
        [],  # a branch of the last run compared with that run: gone with it
    )


def stop_generation(request: gr.Request) -> None:
    _stops.stop(request)


def restore(path: str | None):
    """Settings from a PNG made here: model, prompt, seed, steps, guidance, scheduler, size, count."""
    if not path:
        return [gr.skip()] * 10 + [""]
    try:
        recipe = recipe_from_png(path)
        catalog.resolve(recipe.model, "text-to-image", allow_any_model=runtime.get().settings.allow_any_model)
    except Exception as exc:
        raise user_error(exc, "Restoring settings") from None
    max_side = recommended(recipe.model)["max_side"]
    return (
        recipe.model,
        recipe.prompt,
        recipe.negative_prompt,
        recipe.seed,
        recipe.num_inference_steps,
        recipe.guidance_scale,
        recipe.scheduler,
        gr.Slider(value=recipe.width, maximum=max_side),
        gr.Slider(value=recipe.height, maximum=max_side),
        recipe.num_images_per_prompt,
        f"Settings restored from the PNG (seed {recipe.seed}, {recipe.num_inference_steps} steps, "
        f"{recipe.scheduler}). Press Generate.",
    )


def model_note(model: str) -> str:
    r = recommended(model)
    spec = catalog.CATALOG.get(model)
    return (
        f"{spec.description if spec else ''} Recommended: {r['num_inference_steps']} steps, guidance "
        f"{r['guidance_scale']:g}, {r['width']}×{r['height']}, {r['scheduler']}."
    )


def model_defaults(model: str):
    """Picking a model loads its recommended settings (and says so where the last request's
    status, or its error, was)."""
    r = recommended(model)
    return (
        r["num_inference_steps"],
        r["guidance_scale"],
        r["scheduler"],
        gr.Slider(value=r["width"], maximum=r["max_side"]),
        gr.Slider(value=r["height"], maximum=r["max_side"]),
        model_note(model),
        f"Settings set to {model}'s recommended ones. Press Generate.",
    )


def text_to_image(
    prompt: str,
    negative_prompt: str = "",
    model: str = "",
    seed: int = 0,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    scheduler: str = "",
    width: int | None = None,
    height: int | None = None,
    num_images_per_prompt: int = 1,
    steps: int | None = None,
    count: int | None = None,
) -> Iterator[dict]:
    """Generate `num_images_per_prompt` images for `prompt`. Unset settings take the model's
    recommended values. Streams {"step": k, "num_inference_steps": n} while it works, then the
    result, which `client.predict` returns: {"images": [base64 PNG, each carrying its recipe],
    "recipe": {...}, "notices": [...], "seconds": float}. Cancelling the job or hanging up ends the
    work after the step in flight. An empty prompt runs unconditionally (with a notice). At most
    images × steps × width × height per request (1,228,800 on a CPU, 268,435,456 on a GPU).
    `steps` and `count` are the deprecated names of `num_inference_steps` and
    `num_images_per_prompt`: they still work, with a notice."""
    try:
        settings, sent_as, notices = from_deprecated_names(
            {"num_inference_steps": num_inference_steps, "num_images_per_prompt": num_images_per_prompt},
            {"steps": steps, "count": count},
        )
        entry = compute.run(runtime.text_to_image, model or glue.default_model("text-to-image"))
        unset = {**recommended(entry.key), "num_images_per_prompt": 1}  # what None (or "" scheduler) means
        settings |= dict(guidance_scale=guidance_scale, scheduler=scheduler or None, width=width, height=height)
        settings = {name: unset[name] if value is None else value for name, value in settings.items()}
        recipe = _recipe(entry, sent_as=sent_as, prompt=prompt, negative_prompt=negative_prompt, seed=seed, **settings)
        with contextlib.closing(stream(recipe, threading.Event(), previews=False)) as live:
            for step, _, run in live:  # a GeneratorExit at a yield (Gradio closing the job) ends the run
                if run is None:
                    yield {"step": step + 1, "num_inference_steps": recipe.num_inference_steps}
        images = [base64.b64encode(png_bytes(image, recipe, i)).decode() for i, image in enumerate(run.images)]
    except Exception as exc:
        raise user_error(exc, "Generation") from None
    yield {
        "images": images,
        "recipe": dataclasses.asdict(recipe),
        "notices": notices + run.notices,
        "seconds": round(run.seconds, 3),
    }


# --- the tab -------------------------------------------------------------------------------------


@dataclasses.dataclass
class TextToImageUI:
    """The tab's components that other code may link to."""

    model: gr.Dropdown
    settings: list  # what generate_ui takes: model, prompt, …, num_images_per_prompt
    generate: gr.Button
    stop: gr.Button
    preview: gr.Image
    status: gr.Markdown
    gallery: gr.Gallery
    run: gr.State  # the key of the session's last Run in the step debugger's store (RUNS)


def _model_row(default: str, r: dict) -> tuple[gr.Dropdown, gr.Dropdown, gr.Markdown, gr.Markdown]:
    """Model and scheduler pickers, with a note on each."""
    with gr.Row():
        model = gr.Dropdown(
            glue.model_choices("text-to-image"),
            value=default,
            label="Model",
            elem_id="t2i-model",
            scale=2,
            allow_custom_value=runtime.get().settings.allow_any_model,  # a hub id or path, when allowed
        )
        scheduler = gr.Dropdown(list(SCHEDULERS), value=r["scheduler"], label="Scheduler", scale=1)
    note = gr.Markdown(model_note(default))
    scheduler_note = gr.Markdown(SCHEDULER_NOTES.get(r["scheduler"], ""))
    return model, scheduler, note, scheduler_note


def _settings_column(r: dict) -> tuple[list, gr.Button, gr.Button, gr.Button]:
    """The settings column: [prompt, negative prompt, seed, steps, guidance scale, width, height,
    images], then the dice, Generate and Stop. A number typed past a box's range is set to its end
    (the sliders do it themselves; fit_setting and fit_seed say so)."""
    prompt = gr.Textbox(
        elem_id="t2i-prompt",
        label="Prompt",
        value="a large red circle at the top",
        lines=2,
        max_length=MAX_PROMPT_CHARS,
    )
    negative = gr.Textbox(label="Negative prompt", placeholder="what to steer away from", max_length=MAX_PROMPT_CHARS)
    with gr.Row():
        seed = gr.Number(elem_id="t2i-seed", label=f"Seed (0 to {MAX_SEED:,})", value=0, precision=0)
        dice = gr.Button("🎲", scale=0, min_width=48)
        images = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Images", elem_id="t2i-images")
    with gr.Row():
        steps = gr.Slider(
            1,
            MAX_STEPS,
            elem_id="t2i-steps",
            value=r["num_inference_steps"],
            step=1,
            label="Steps",
            info=f"Images × steps × width × height: at most {max_cost():,} per request here.",
        )
        guidance = gr.Slider(
            0, MAX_GUIDANCE, value=r["guidance_scale"], step=0.5, label="Guidance scale (w)", elem_id="t2i-guidance"
        )
    with gr.Row():
        width = gr.Slider(8, r["max_side"], value=r["width"], step=8, label="Width", elem_id="t2i-width")
        height = gr.Slider(8, r["max_side"], value=r["height"], step=8, label="Height", elem_id="t2i-height")
    with gr.Row():
        go = gr.Button("Generate", variant="primary", elem_id="t2i-generate")
        stop = gr.Button("Stop", elem_id="t2i-stop", interactive=False)  # active while a run goes
    return [prompt, negative, seed, steps, guidance, width, height, images], dice, go, stop


def _result_column() -> tuple[gr.Image, gr.Markdown, gr.File]:
    """Next to the settings (under Generate on a phone): the live preview, the status line, and the
    restore-from-PNG upload below them."""
    preview = gr.Image(
        elem_id="t2i-preview",
        label="Live: the image it is heading for (x̂₀)",
        format="png",
        elem_classes="pixelated",
    )
    status = gr.Markdown(elem_id="t2i-status")
    restore_file = gr.File(
        elem_id="t2i-restore",
        label="Restore settings from a PNG made here",
        file_types=[".png"],
        type="filepath",
        height=120,
    )
    return preview, status, restore_file


# Gradio gives a gallery without a numeric height a minimum of 450 px on wide screens (an empty band
# under one row of thumbnails) and a maximum of 55 % of the window: here each is as tall as its rows.
# Its columns are at least 100 px wide, so on a phone four of them run off the side: two there.
GALLERIES = "#t2i-gallery, #t2i-cfg, #t2i-branched"
STYLE = (
    "<style>:is(" + GALLERIES + ") .grid-wrap.fixed-height { min-height: 0; max-height: none; }"
    "@media (max-width: 640px) { :is(" + GALLERIES + ") .grid-container { --grid-cols: 2 !important; } }</style>"
)


def _outputs_below() -> tuple[gr.Gallery, gr.File, gr.Code]:
    """Under the settings: the images (enlarged when small), every PNG to download, the recipe."""
    gallery = gr.Gallery(
        label="Images (PNGs with their recipe inside)",
        elem_id="t2i-gallery",
        columns=4,
        object_fit="contain",  # a 64×32 image is shown whole, not cropped to a square
        fit_columns=False,  # one image keeps a quarter of the width instead of filling the whole row
        format="png",
        elem_classes="pixelated",
    )
    with gr.Accordion("Download every PNG: each image as made, and its enlarged copy", open=False):
        downloads = gr.File(label="PNGs", elem_id="t2i-downloads", file_count="multiple", interactive=False)
    recipe_box = gr.Code(label="Recipe of the images above", language="json", elem_id="t2i-recipe")
    return gallery, downloads, recipe_box


def build_ui() -> TextToImageUI:
    """The Text-to-image tab."""
    rt = runtime.get()
    heavy = dict(concurrency_id="gpu", concurrency_limit=rt.concurrency, api_visibility="private")
    light = dict(api_visibility="private")
    default = glue.default_model("text-to-image")
    r = recommended(default)

    gr.Markdown(
        "Type a prompt and watch the picture form out of noise. The bundled model was trained by this project on "
        "32×32 scenes of coloured shapes (try *a large red circle at the top*); hub models such as sd-turbo work "
        "the same way when online."
    )
    model, scheduler, note, scheduler_note = _model_row(default, r)
    with gr.Row():
        with gr.Column(scale=3):
            fields, dice, go, stop = _settings_column(r)
        with gr.Column(scale=2):
            preview, status, restore_file = _result_column()
    gallery, downloads, recipe_box = _outputs_below()
    run_state = gr.State(None)
    steps_ui = debugger.build_debugger(run_state)
    clip_panel.build_panel()  # the text encoder's training, visible (DALL-E 2's CLIP)
    unclip_panel.build_panel()  # DALL-E 2's three stages, on the bundled unCLIP
    gr.HTML(STYLE, container=False, padding=False, js_on_load=None)

    prompt, negative, seed, steps, guidance, width, height, images = fields
    settings = [model, prompt, negative, seed, steps, guidance, scheduler, width, height, images]
    controls = [model, scheduler, *fields[:3], dice, *fields[3:], restore_file, go]  # views.LOCKED names them
    model.input(model_defaults, model, [steps, guidance, scheduler, width, height, note, status], **light)
    scheduler.change(lambda name: SCHEDULER_NOTES.get(name, ""), scheduler, scheduler_note, **light)
    dice.click(lambda: int(np.random.default_rng().integers(0, MAX_SEED)), None, seed, **light)
    numbers = [steps, guidance, width, height, images]  # the order of views.setting_boxes
    gr.on([n.release for n in numbers], views.fit_setting, model, numbers, show_progress="hidden", **light)
    gr.on([seed.blur, seed.submit], views.fit_seed, seed, seed, preprocess=False, show_progress="hidden", **light)
    results = [gallery, recipe_box, run_state, steps_ui.step, steps_ui.schedule, steps_ui.pull, steps_ui.anatomy]
    switches = [*controls, stop]  # locked while a run goes; Stop the other way round
    run = gr.on([go.click, prompt.submit], views.lock_controls, None, switches, show_progress="hidden", **light).then(
        generate_ui,
        settings,
        [preview, status, *results, downloads, steps_ui.branched],
        show_progress_on=[status],  # the bar (with its ETA) sits on the status line; the preview stays in view
        **heavy,
    )
    run.success(debugger.show_step, [run_state, steps_ui.step], steps_ui.step_outputs, **heavy)
    # however the run ended: Gradio's page follows a failed event with its .failure listeners only
    run.then(views.unlock_controls, None, switches, show_progress="hidden", **light)
    run.failure(views.unlock_controls, None, switches, show_progress="hidden", **light)
    stop.click(stop_generation, None, None, cancels=[run] if rt.settings.zero_gpu else None, **light)  # ZeroGPU
    restore_file.upload(restore, restore_file, [*settings, status], show_progress_on=[status], **light).then(
        lambda: None, None, restore_file, **light
    )  # emptied again, ready for the next PNG (also after an error)
    gr.api(text_to_image, api_name="text_to_image", concurrency_id="gpu", concurrency_limit=rt.concurrency)
    return TextToImageUI(model, settings, go, stop, preview, status, gallery, run_state)
