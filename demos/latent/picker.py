"""The Latent sampling tab's model picker: the catalog's bundled GANs and VAEs, and the models this
browser tab trained in the Training lab ("lab: VAE (this session)").

A lab choice (``lab:vae``, ``lab:gan``) reads the same in every session and means each session's
own model: handlers turn it into that session's weights with ``resolve`` (``training_lab.lab_model``),
so no visitor can decode with another's, and Gradio refuses it in a session whose picker never
offered it. The public API takes catalog keys only: a lab choice there is an unknown model.

The cores of ``demos/latent/`` and ``demos/latent/encoding.py`` take either a catalog
key or the LatentModel ``resolve`` gave, and load through ``latent``.
"""

from __future__ import annotations

import gradio as gr

from demos import glue
from demos.glue import user_error
from demos.latent import lab as training_lab
from shared import catalog, runtime
from shared.loaders import LatentModel
from shared.validation import check_choice

LAB_PREFIX = "lab:"


def is_lab(model: object) -> bool:
    return isinstance(model, str) and model.startswith(LAB_PREFIX)


def lab_kind(model: str) -> str:
    """The kind a lab choice names ("lab:vae" → "vae"); ValueError for any other lab choice."""
    return check_choice("model", model.removeprefix(LAB_PREFIX), training_lab.LAB_KINDS)


def declared(model: str) -> catalog.ModelSpec:
    """What a choice is (its kind and data set) without loading it: the catalog's word, or a lab model's."""
    if is_lab(model):
        return catalog.ModelSpec.unlisted(
            model,
            "latent",
            "lab",
            "trained in this browser tab's Training lab",
            license="yours",
            kind=lab_kind(model),
            dataset=training_lab.DATASET,
        )
    return catalog.resolve(model, "latent", allow_any_model=runtime.get().settings.allow_any_model)


def resolve(model: str, request: gr.Request | None) -> str | LatentModel:
    """A choice as the cores take it: a catalog key as it is, a lab choice as this session's model."""
    return training_lab.lab_model(request, lab_kind(model)) if is_lab(model) else model


def latent(model: str | LatentModel) -> LatentModel:
    """The cores' loader: a model ``resolve`` gave as it is, a catalog key from the runtime's cache."""
    return model if isinstance(model, LatentModel) else runtime.latent_model(model)


def name_of(model: str | LatentModel) -> str:
    """A choice as a file name's first part: "digits-gan", "lab-vae"."""
    key = model.key if isinstance(model, LatentModel) else str(model)
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in key)


def choices(lab_kinds: tuple[str, ...] | list[str] = ()) -> list[tuple[str, str]]:
    """The picker's (label, value) pairs: the bundled GANs and VAEs, then this session's lab models."""
    lab = [(f"lab: {kind.upper()} (this session)", f"{LAB_PREFIX}{kind}") for kind in lab_kinds]
    return glue.model_choices("latent", bundled=True) + lab


def kind_controls(model: str) -> tuple[bool, bool]:
    """Which scale the picked model has: (truncation shown, temperature shown) — a GAN's truncation,
    a VAE's temperature; neither for a model that samples no latent vectors."""
    kind = declared(model).kind
    return kind == "gan", kind == "vae"


# --- Gradio glue ---------------------------------------------------------------------------------


def offer_lab_models(model: str, offered: list | None, request: gr.Request):
    """The lab's 2 s timer: the picker lists this session's lab models once they have trained a step
    (an update only when that list changed). A picked lab model that is gone gives way to the default."""
    kinds = list(training_lab.lab_kinds(request))
    if kinds == list(offered or []):
        return gr.skip(), gr.skip()
    if is_lab(model) and model.removeprefix(LAB_PREFIX) not in kinds:
        model = glue.default_model("latent")
    return gr.Dropdown(choices=choices(kinds), value=model), kinds


def wire(picker: gr.Dropdown, timer: gr.Timer) -> None:
    """Offer the session's lab models in ``picker`` on every tick of the lab's ``timer``."""
    offered = gr.State([])
    light = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
    timer.tick(offer_lab_models, [picker, offered], [picker, offered], **light)


def model_switched_views(model: str, stale: int) -> tuple:
    """On picking a model: truncation shown for a GAN only, temperature for a VAE only, and ``stale``
    outputs of the previous model emptied (their pictures, and any error badge a failed view left)."""
    try:
        gan, vae = kind_controls(model)
    except Exception as exc:
        raise user_error(exc, "Picking the model") from None
    return gr.Slider(visible=gan), gr.Slider(visible=vae), *([None] * stale)
