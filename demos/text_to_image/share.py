"""The Text-to-image tab's share link: the recipe and its images (each PNG carries the recipe), how a
viewer sees them, and "Open in the tab" (the recipe in the controls: Generate makes the same images)."""

from __future__ import annotations

import json

import gradio as gr
from PIL import Image

from demos.sharing import links, snapshots
from demos.sharing.snapshots import ShareKind, decode_image, dict_of
from demos.text_to_image.recipe import MAX_IMAGES, Recipe, check_recipe, png_bytes, recommended
from demos.text_to_image.steps import RUNS
from demos.text_to_image.views import DOWNLOAD_PX
from shared.images import enlarge
from shared.validation import check_text

KIND = "text-to-image"
MAX_MODEL_CHARS = 300  # a model key or hub id


def check(payload: dict, images: dict) -> tuple[dict, dict]:
    raw = dict_of("recipe", payload.get("recipe"))
    model = check_text("model", raw.get("model"), MAX_MODEL_CHARS, required=True)
    fields = ("prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale", "scheduler", "width",
              "height", "num_images_per_prompt")  # fmt: skip
    revision = raw.get("revision")
    recipe = check_recipe(
        model=model,
        revision=None if revision is None else check_text("revision", revision, 100),
        max_cost=None,
        **{name: raw.get(name) for name in fields},
    )
    names = [str(i) for i in range(MAX_IMAGES)]
    if not images:
        raise ValueError("There are no images to share yet: press Generate first.")
    pictures = {name: img if isinstance(img, Image.Image) else decode_image(name, img) for name, img in images.items()}
    if set(pictures) - set(names):
        raise ValueError(f"A shared image's name is its index, 0 to {MAX_IMAGES - 1}.")
    files = {name: png_bytes(pictures[name], recipe, int(name)) for name in names if name in pictures}
    return {"recipe": recipe_dict(recipe)}, files


def recipe_dict(recipe: Recipe) -> dict:
    return {name: getattr(recipe, name) for name in Recipe.__dataclass_fields__}


def show(payload: dict, pictures: dict) -> list:
    """The gallery (as the tab shows them: small ones enlarged, whole pixels) and the recipe."""
    seed = payload["recipe"]["seed"]
    images = [
        (enlarge(pictures[str(i)], DOWNLOAD_PX), f"seed {seed + i}") for i in range(MAX_IMAGES) if str(i) in pictures
    ]
    return [images, json.dumps(payload["recipe"], indent=2, ensure_ascii=False)]


def components() -> list:
    return [
        gr.Gallery(
            label="Shared images", columns=4, object_fit="contain", fit_columns=False, format="png",
            elem_classes="pixelated", elem_id="shared-t2i-gallery",
        ),
        gr.Code(label="Their recipe", language="json", elem_id="shared-t2i-recipe", interactive=False),
    ]  # fmt: skip


def snapshot(run_key):
    if run_key is None:
        raise ValueError("There are no images to share yet: press Generate first.")
    run = RUNS.get(run_key, "That generation")
    if run.stopped:
        raise ValueError("That run was stopped before its images were made: generate them to share them.")
    recipe = recipe_dict(run.recipe)
    return {"recipe": recipe}, {str(i): image for i, image in enumerate(run.images)}


def open_in_tab(snapshot):
    """The recipe into the live controls: Generate then makes the same images (same seed, same steps)."""
    payload, model = links.opened_payload(snapshot, "text-to-image", "text-to-image")
    recipe = payload["recipe"]
    max_side = recommended(model)["max_side"]
    status = f"The shared recipe is in the controls (seed {recipe['seed']}): press Generate to make the same images."
    return [
        gr.Group(visible=False),
        model,
        recipe["prompt"],
        recipe["negative_prompt"],
        recipe["seed"],
        recipe["num_inference_steps"],
        recipe["guidance_scale"],
        recipe["scheduler"],
        gr.Slider(value=recipe["width"], maximum=max_side),
        gr.Slider(value=recipe["height"], maximum=max_side),
        recipe["num_images_per_prompt"],
        status,
    ]


def wire(ui, row: links.ShareRow, panel: links.Panel, tokens) -> None:
    links.wire_row(row, snapshot, [ui.run], tokens)
    panel.open_in_tab.click(
        open_in_tab,
        panel.snapshot,
        [panel.group, *ui.settings, ui.status],
        show_progress_on=[panel.status],
        api_visibility="private",
    )


snapshots.register(ShareKind(KIND, check=check, show=show, components=components))
