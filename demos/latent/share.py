"""The Latent sampling tab's share link: the settings and the pictures on screen, how a viewer sees
them, and "Open in the tab" (the settings in the controls: the same seeds make the same images)."""

from __future__ import annotations

import gradio as gr

from demos.sharing import links, snapshots
from demos.sharing.snapshots import ShareKind, dict_of, images_of, model_of, revision_of
from shared.validation import check_number, check_text

KIND = "latent"
LATENT_VIEWS = {  # image name → caption, in the order a viewer sees them
    "samples": "Samples",
    "gan": "GAN",
    "vae": "VAE",
    "lerp": "Interpolation: lerp (straight line)",
    "slerp": "Interpolation: slerp (great circle)",
    "traversal": "Traversal (rows: dimensions; columns: −range … +range)",
}
LATENT_SETTINGS = {  # name → (low, high, integer?)
    "seed": (0, 2**32 - 1, True),
    "count": (1, 64, True),
    "truncation": (0.0, 10.0, False),
    "temperature": (0.0, 10.0, False),
    "seed_a": (0, 2**32 - 1, True),
    "seed_b": (0, 2**32 - 1, True),
    "walk_steps": (2, 16, True),
    "span": (0.5, 5.0, False),
    "traversal_steps": (3, 11, True),
}
LATENT_CONTROLS = ("seed", "count", "truncation", "temperature", "seed_a", "seed_b", "walk_steps", "dims", "span",
                   "traversal_steps")  # fmt: skip
LATENT_IMAGES = ("samples", "gan", "vae", "lerp", "slerp", "traversal")


def check(payload: dict, images: dict) -> tuple[dict, dict]:
    model, revision = model_of(payload)
    settings = dict_of("settings", payload.get("settings") or {})
    checked = {}
    for name, (low, high, integer) in LATENT_SETTINGS.items():
        if settings.get(name) is not None:
            checked[name] = check_number(name, settings[name], low, high, integer=integer)
    if settings.get("dims") is not None:
        checked["dims"] = check_text("dimensions", settings["dims"], 200)
    files = images_of(images, LATENT_VIEWS)
    if not files:
        raise ValueError("There is nothing to share yet: sample, interpolate or traverse first.")
    return {"model": model, "revision": revision, "settings": checked}, files


def show(payload: dict, pictures: dict) -> list:
    return [[(pictures[name], caption) for name, caption in LATENT_VIEWS.items() if name in pictures]]


def components() -> list:
    return [gr.Gallery(label="Shared images", columns=3, object_fit="contain", format="png",
                       elem_classes="pixelated", elem_id="shared-latent-gallery")]  # fmt: skip


def snapshot(model, *values):
    settings = dict(zip(LATENT_CONTROLS, values[: len(LATENT_CONTROLS)], strict=True))
    images = dict(zip(LATENT_IMAGES, values[len(LATENT_CONTROLS) :], strict=True))
    payload = {"model": model, "revision": revision_of(model), "settings": settings}
    return payload, {k: v for k, v in images.items() if v is not None}


def open_in_tab(snapshot):
    payload, model = links.opened_payload(snapshot, "latent", "latent")
    values = [payload["settings"].get(name, gr.skip()) for name in LATENT_CONTROLS]
    status = "The shared settings are in the controls: Sample, Interpolate or Traverse make the same images again."
    return [gr.Group(visible=False), model, *values, status]


def wire(ui, row: links.ShareRow, panel: links.Panel, tokens) -> None:
    controls = [ui.seed, ui.count, ui.truncation, ui.temperature, *(ui.controls[k] for k in LATENT_CONTROLS[4:])]
    images = [ui.tabs["samples"][0], *ui.tabs["compare"][:2], *ui.tabs["interpolation"][:2], ui.tabs["traversal"][0]]
    links.wire_row(row, snapshot, [ui.model, *controls, *images], tokens)
    panel.open_in_tab.click(
        open_in_tab,
        panel.snapshot,
        [panel.group, ui.model, *controls, row.status],
        show_progress_on=[panel.status],
        api_visibility="private",
    )


snapshots.register(ShareKind(KIND, check=check, show=show, components=components))
