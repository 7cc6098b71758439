"""The text-to-image recipe: everything needed to make the same images again, checked, capped, and
carried in each PNG.

A recipe arrives untrusted from the UI, the API or a PNG's text chunk; ``check_recipe`` turns it
into a ``Recipe`` or a clear ValueError, under a per-image pixel cap and a per-request cost cap
(images × steps × pixels), both tighter on a CPU. The PNG side writes the recipe as JSON (and as
AUTOMATIC1111's "parameters" text) and reads it back without decoding a single pixel.

Reads top to bottom: limits → the recipe and its validation → the recipe in the PNG.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping

from PIL import Image, PngImagePlugin

from shared import catalog
from shared.diffusion import SCHEDULERS
from shared.validation import check_choice, check_float, check_int, check_seed, check_text

MAX_STEPS = 150  # num_inference_steps per request
MAX_IMAGES = 8  # num_images_per_prompt per request
MAX_SIDE = 2048
MAX_PIXELS = 1024 * 1024  # per image on a GPU: a 1024² SDXL image is the largest anyone needs here
CPU_MAX_PIXELS = 768 * 768  # on a CPU, past this one image takes minutes
MAX_PROMPT_CHARS = 4000
MAX_RESTORE_PIXELS = 4096 * 4096  # a PNG given to "restore settings" is refused past this
RECIPE_KEY = "genai-playground"  # PNG text chunk holding the recipe as JSON
DEPRECATED = {"steps": "num_inference_steps", "count": "num_images_per_prompt"}  # old API names → diffusers'
MAX_GUIDANCE = 30.0  # the top of guidance_scale, for a generation and for a branch
# Cost = images × steps × pixels per image: how long one request holds a model slot. The bundled
# model costs ~5 µs per unit on 2 idle CPU cores (~14 µs on the box that took 69 s for 8 × 64² × 150).
CPU_MAX_COST = MAX_IMAGES * MAX_STEPS * 32 * 32  # 1,228,800 (~6 s): any count at 32², 8 × 64² to 37 steps
MAX_COST = MAX_IMAGES * 32 * 1024 * 1024  # 268,435,456 on a GPU: 8 × 1024² × 32 steps (not yet measured)


# --- the recipe and its validation ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything needed to make the same image again; stored in each PNG."""

    model: str
    revision: str | None
    prompt: str
    negative_prompt: str
    seed: int
    num_inference_steps: int
    guidance_scale: float
    scheduler: str
    width: int
    height: int
    num_images_per_prompt: int = 1


def recommended(model: str) -> dict:
    """The chosen model's catalog settings (steps, guidance, size, scheduler), with fallbacks."""
    spec = catalog.CATALOG.get(model)
    recipe = dict((spec.recipe or {}) if spec else {})
    return {
        "num_inference_steps": recipe.get("steps", 25),  # the catalog's word for it
        "guidance_scale": recipe.get("guidance_scale", 7.0),
        "width": recipe.get("width", 512),
        "height": recipe.get("height", 512),
        "scheduler": recipe.get("scheduler", "DPM++ 2M"),
        "max_side": recipe.get("max_side", 1024),
    }


def check_side(name: str, value: object, max_side: int) -> int:
    side = check_int(name, value, 8, min(max_side, MAX_SIDE))
    if side % 8:
        raise ValueError(f"{name} must be a multiple of 8 (the autoencoder shrinks images 8× or 4×), got {side}.")
    return side


def check_recipe(
    *,
    model: str,
    revision: str | None,
    prompt: object,
    negative_prompt: object,
    seed: object,
    num_inference_steps: object,
    guidance_scale: object,
    scheduler: object,
    width: object,
    height: object,
    num_images_per_prompt: object,
    max_pixels: int = MAX_PIXELS,
    max_cost: int | None = MAX_COST,
    sent_as: Mapping[str, str] | None = None,
) -> Recipe:
    """Untrusted settings (from the UI, the API or a PNG) → a Recipe, or a clear ValueError.

    ``max_pixels`` caps each image and ``max_cost`` the whole request (``cost``; None: no cap).
    ``sent_as`` names the settings that arrived under a deprecated name (``{"num_inference_steps":
    "steps"}``), so a message names the word the client used."""
    said = {name: name for name in ("num_inference_steps", "num_images_per_prompt")} | dict(sent_as or {})
    prompt = check_text("prompt", prompt, MAX_PROMPT_CHARS)
    negative_prompt = check_text("negative prompt", negative_prompt, MAX_PROMPT_CHARS)
    check_choice("scheduler", scheduler, SCHEDULERS)
    max_side = recommended(model)["max_side"]
    width, height = check_side("width", width, max_side), check_side("height", height, max_side)
    if width * height > max_pixels:
        raise ValueError(f"{width}×{height} is past the {max_pixels:,}-pixel cap per image on this device.")
    recipe = Recipe(
        model=model,
        revision=revision,
        prompt=prompt.strip(),
        negative_prompt=negative_prompt.strip(),
        seed=check_seed(seed),
        num_inference_steps=check_int(said["num_inference_steps"], num_inference_steps, 1, MAX_STEPS),
        guidance_scale=check_float("guidance_scale", guidance_scale, 0.0, MAX_GUIDANCE),
        scheduler=scheduler,
        width=width,
        height=height,
        num_images_per_prompt=check_int(
            f"{said['num_images_per_prompt']} (the number of images)", num_images_per_prompt, 1, MAX_IMAGES
        ),
    )
    if max_cost is not None:
        check_cost(recipe, max_cost, said)
    return recipe


def cost(recipe: Recipe) -> int:
    """images × steps × pixels per image: what one request costs, in the same unit on any model."""
    return recipe.num_images_per_prompt * recipe.num_inference_steps * recipe.width * recipe.height


def check_cost(recipe: Recipe, max_cost: int, said: Mapping[str, str]) -> None:
    """A ValueError that says what to lower when the request is past this device's cost cap."""
    if cost(recipe) <= max_cost:
        return
    per_step = recipe.num_images_per_prompt * recipe.width * recipe.height
    room = f"at most {max_cost // per_step} steps for this many images of this size" if max_cost >= per_step else ""
    raise ValueError(
        f"That request is too large for one go here: {recipe.num_images_per_prompt} images × "
        f"{recipe.num_inference_steps} steps × {recipe.width}×{recipe.height} pixels = {cost(recipe):,}, past "
        f"this device's cap of {max_cost:,} per request. Lower {said['num_images_per_prompt']}, "
        f"{said['num_inference_steps']} or the size{f' ({room})' if room else ''}."
    )


def check_scheduler_steps(scheduler, num_inference_steps: int, name: str = "num_inference_steps") -> None:
    """Refuse more steps than a scheduler can take (LCM picks its steps from the grid it was
    distilled on, ``original_inference_steps`` in its config) with our message, not the library's
    (which talks of ``strength``). ``name`` is what to lower."""
    limit = getattr(scheduler.config, "original_inference_steps", None)
    if isinstance(limit, int) and num_inference_steps > limit:
        raise ValueError(
            f"The {type(scheduler).__name__.removesuffix('Scheduler')} scheduler takes at most {limit} steps "
            f"(original_inference_steps in this model's scheduler config), not {num_inference_steps}: lower "
            f"{name} or pick another scheduler."
        )


def from_deprecated_names(settings: dict, old: dict) -> tuple[dict, dict[str, str], list[str]]:
    """Settings sent under an old name (``DEPRECATED``) moved to the new one.

    ``settings`` holds the new names with the endpoint's defaults; returns (settings, sent_as for
    check_recipe, notices). Both names with different values is refused, not guessed between."""
    settings, sent_as, notices = dict(settings), {}, []
    defaults = {"num_inference_steps": None, "num_images_per_prompt": 1}
    for name, value in old.items():
        if value is None:
            continue
        new = DEPRECATED[name]
        if settings[new] != defaults[new] and settings[new] != value:
            raise ValueError(f"`{name}` is the deprecated name of `{new}`: send one of them, not both.")
        settings[new], sent_as[new] = value, name
        notices.append(f"`{name}` is deprecated: use `{new}`.")
    return settings, sent_as, notices


# --- reproducibility: the recipe rides in the PNG ------------------------------------------------


def a1111_parameters(recipe: Recipe, index: int) -> str:
    """The recipe in AUTOMATIC1111's "parameters" text, so other tools read it too."""
    negative = f"\nNegative prompt: {recipe.negative_prompt}" if recipe.negative_prompt else ""
    return (
        f"{recipe.prompt}{negative}\nSteps: {recipe.num_inference_steps}, Sampler: {recipe.scheduler}, CFG scale: "
        f"{recipe.guidance_scale:g}, Seed: {recipe.seed + index}, Size: {recipe.width}x{recipe.height}, "
        f"Model: {recipe.model}"
    )


def png_bytes(image: Image.Image, recipe: Recipe, index: int, notes: Mapping[str, str] | None = None) -> bytes:
    """Image ``index`` of a request as a PNG carrying its recipe (and any ``notes`` as text chunks)."""
    info = PngImagePlugin.PngInfo()
    info.add_text(RECIPE_KEY, json.dumps({**dataclasses.asdict(recipe), "index": index}, ensure_ascii=False))
    info.add_text("parameters", a1111_parameters(recipe, index))
    for key, text in (notes or {}).items():
        info.add_text(key, text)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def read_recipe(source: str | bytes) -> dict:
    """The recipe stored in a PNG made here (text chunks only: the pixels are never decoded, so a
    decompression bomb costs nothing). Raises a clear ValueError for anything else."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            if image.format != "PNG":
                raise ValueError("Restore settings takes a PNG made by this app.")
            if image.width * image.height > MAX_RESTORE_PIXELS:
                raise ValueError(f"That PNG is {image.width}×{image.height}, past the cap; it was not read.")
            text = image.info.get(RECIPE_KEY)
    except ValueError:
        raise
    except Image.DecompressionBombError:
        raise ValueError("That image is far too large (a decompression bomb?); it was not read.") from None
    except Exception:
        raise ValueError("That file is not a readable PNG.") from None
    if not text:
        raise ValueError("That PNG carries no GenAI Playground recipe (made elsewhere, or its metadata was stripped).")
    try:
        data = json.loads(text)
        assert isinstance(data, dict)
    except Exception:
        raise ValueError("The recipe in that PNG is damaged.") from None
    return data


def recipe_from_png(source: str | bytes) -> Recipe:
    """The validated recipe of a PNG made here; older PNGs name two settings ``steps`` and ``count``."""
    data = read_recipe(source)
    model = data.get("model")
    if not isinstance(model, str):
        raise ValueError("The recipe in that PNG names no model.")
    sent_as = {new: old for old, new in DEPRECATED.items() if old in data and new not in data}
    data = {**data, **{new: data[old] for new, old in sent_as.items()}}
    fields = {f.name for f in dataclasses.fields(Recipe)} - {"model", "revision"}
    missing = fields - data.keys()
    if missing:
        raise ValueError(f"The recipe in that PNG lacks {', '.join(sorted(missing))}.")
    return check_recipe(model=model, revision=data.get("revision"), sent_as=sent_as, **{k: data[k] for k in fields})
