"""What the text-to-image tab tells the user about a run and its settings, as plain functions.

- the status line at the end of a run: what was made, or where a stopped run stopped and what
  the pictures on screen then are;
- a number typed into one of the tab's boxes: set to the nearest value the setting takes, with a
  message saying so (the one rule for every number box here; the API refuses instead);
- the downloads: PNGs named after the prompt, seed and steps, with an enlarged copy of small
  images (the bundled model makes 32×32 ones) next to each original.

Reads top to bottom: the status line → numbers typed into a box → the PNGs → the Gradio glue of
the lock on the controls while a run goes, and of the number boxes.
"""

from __future__ import annotations

import dataclasses
import re

import gradio as gr

from demos.numbers import Box, fit_number, fitted_updates
from demos.text_to_image.core import Run
from demos.text_to_image.recipe import MAX_GUIDANCE, MAX_IMAGES, MAX_SIDE, MAX_STEPS, png_bytes, recommended
from shared import scratch
from shared.images import enlarge
from shared.validation import MAX_SEED

DOWNLOAD_PX = 256  # small images are offered enlarged (nearest neighbour) to at least this many pixels a side
SLUG_CHARS = 40  # of the prompt, in a file name


# --- the status line -----------------------------------------------------------------------------


def run_status(run: Run) -> str:
    """The line under the preview once a run has ended: what it made and how fast, counting only
    the steps it really took; for a stopped run, where it stopped and what the pictures are."""
    total, done, n = run.recipe.num_inference_steps, run.steps_done, len(run.images)
    speed = done / max(run.seconds, 1e-9)
    notes = "".join(f"\n\n⚠️ {note}" for note in run.notices)
    if not run.stopped:
        return f"Done: {n} image(s), {total} steps in {run.seconds:.2f} s ({speed:.1f} steps/s).{notes}"
    preview = (
        f"The preview shows the image step {done} was heading for (x̂₀); the" if run.steps else "The preview and the"
    )
    return (
        f"Stopped at step {done} of {total} after {run.seconds:.1f} s ({speed:.1f} steps/s). {preview} "
        f"{n} image(s) below are the half-denoised latents at step {done}, decoded: unfinished, not the "
        f"images {total} steps would make.{notes}"
    )


# --- numbers typed into a box -----------------------------------------------------------------------


def setting_boxes(model: str) -> dict[str, Box]:
    """The settings sliders, by elem_id, in the order the tab lists them as outputs."""
    side = min(recommended(model)["max_side"], MAX_SIDE)
    biggest = f"{model}'s largest side"
    return {
        "t2i-steps": Box("Steps", 1, MAX_STEPS),
        "t2i-guidance": Box("Guidance scale", 0, MAX_GUIDANCE, None),
        "t2i-width": Box("Width", 8, side, 8, biggest),
        "t2i-height": Box("Height", 8, side, 8, biggest),
        "t2i-images": Box("Images", 1, MAX_IMAGES),
    }


SEED_BOX = Box("Seed", 0, MAX_SEED)


# --- the PNGs ------------------------------------------------------------------------------------


def slug(prompt: str) -> str:
    """The prompt as the start of a file name: words joined by dashes, at most SLUG_CHARS."""
    words = re.sub(r"[^\w]+", "-", prompt.lower()).strip("-_")
    return words[:SLUG_CHARS].rstrip("-_") or "no-prompt"


def png_name(run: Run, index: int) -> str:
    """What image ``index`` of a run is called: prompt, seed (image i has seed + i) and steps, and
    for a stopped run the step it stopped at."""
    recipe = run.recipe
    made = (
        f"step{run.steps_done}of{recipe.num_inference_steps}-unfinished"
        if run.stopped
        else f"{recipe.num_inference_steps}steps"
    )
    return f"{slug(recipe.prompt)}_seed{recipe.seed + index}_{made}"


@dataclasses.dataclass
class Pngs:
    originals: list[str]  # each image as made, carrying its recipe
    shown: list[str]  # what the gallery shows: the enlarged copy of a small image, else the original
    captions: list[str]

    @property
    def downloads(self) -> list[str]:
        """Every file, each original next to its enlarged copy (if it has one)."""
        return [p for pair in zip(self.originals, self.shown, strict=True) for p in dict.fromkeys(pair)]


def save_pngs(run: Run) -> Pngs:
    """The run's images as PNGs carrying their recipe, in a fresh folder of the swept scratch
    folder; images smaller than DOWNLOAD_PX get an enlarged copy (nearest neighbour, whole pixels)."""
    folder = scratch.folder("t2i")
    pngs = Pngs([], [], [])
    for i, image in enumerate(run.images):
        name = png_name(run, i)
        original = folder / f"{name}.png"
        original.write_bytes(png_bytes(image, run.recipe, i))
        pngs.originals.append(str(original))
        big = enlarge(image, DOWNLOAD_PX)
        shown, caption = original, f"seed {run.recipe.seed + i}"
        if big.size != image.size:
            shown = folder / f"{name}_{big.width}x{big.height}.png"
            note = f"{big.width // image.width}× nearest neighbour of the {image.width}×{image.height} image"
            shown.write_bytes(png_bytes(big, run.recipe, i, {"enlarged": note}))
        pngs.shown.append(str(shown))
        pngs.captions.append(caption + (" · unfinished" if run.stopped else ""))
    return pngs


# --- Gradio glue: the lock while a run goes, and the boxes' one rule ------------------------------


LOCKED = ("model", "scheduler", "prompt", "negative prompt", "seed", "dice", "steps", "guidance scale", "width",
          "height", "images", "restore", "generate")  # fmt: skip


def lock_controls():
    """Generate pressed: the model picker and every control of the recipe are locked (greyed) until
    the run ends, so what they show is the recipe being run; Stop (greyed while nothing runs) wakes."""
    return [*[gr.update(interactive=False)] * len(LOCKED), gr.update(interactive=True)]


def unlock_controls():
    """The run ended, however it ended (done, stopped, refused, failed): the controls are free again,
    and Stop goes quiet."""
    return [*[gr.update(interactive=True)] * len(LOCKED), gr.update(interactive=False)]


def fit_setting(model: str, evt: gr.EventData):
    """A settings slider let go or left (the box typed in): the value fitted to what the setting takes
    (for this model: its largest side), with a warning that says what changed."""
    return fitted_updates(setting_boxes(model), evt)


def fit_seed(seed: object):
    """The seed box left or submitted: a seed out of range (or not whole) is set to the nearest one, with
    a warning — what the sliders do. (Gradio's own bounds on the box would refuse it with an error.)"""
    value, message = fit_number(SEED_BOX, seed)
    if message is None:
        return gr.skip()
    gr.Warning(message)
    return value
