"""The Latent sampling tab's layout: the shared row, the sub-tabs, ``build_ui``.

Run alone: ``python -m demos.latent``.
"""

from __future__ import annotations

import gradio as gr

from demos import glue, numbers
from demos.latent import encoding as latent_encoding
from demos.latent import lab as training_lab
from demos.latent import picker as latent_picker
from demos.latent import tabs as latent_sampling_tabs
from demos.latent.core import LatentUI
from demos.latent.sampling import (
    COUNT,
    HOW_IT_WORKS,
    SEED,
    TEMPERATURE,
    TRUNCATION,
    interpolate,
    sample_latents,
    traverse,
)
from shared import runtime

# --- the tab ------------------------------------------------------------------------------------


def _controls() -> LatentUI:
    default = glue.default_model("latent")
    gan, vae = latent_picker.kind_controls(default)  # then each pick of the model decides (build_ui)
    with gr.Row():
        model = gr.Dropdown(latent_picker.choices(), value=default, label="Model", scale=2, elem_id="latent-model")
        seed = gr.Number(SEED, precision=0, label="seed", info="Same seed = same latents = same images.")
        count = gr.Slider(1, 64, COUNT, step=1, label="count", elem_id="latent-count")
        truncation = gr.Slider(
            0,
            2,
            TRUNCATION,
            step=0.05,
            label="truncation (GAN)",
            info="Scale of z: below 1 = typical, above 1 = varied.",
            visible=gan,
            elem_id="latent-truncation",
        )
        temperature = gr.Slider(
            0,
            2,
            TEMPERATURE,
            step=0.05,
            label="temperature (VAE)",
            info="Scale of the prior draw, same trade.",
            visible=vae,
            elem_id="latent-temperature",
        )
    return LatentUI(model, seed, count, truncation, temperature)


def _api() -> None:
    """The tab's public endpoints, in the same queue group as its model work."""
    public = dict(concurrency_id="gpu", concurrency_limit=runtime.get().concurrency)
    gr.api(sample_latents, api_name="sample_latents", **public)
    gr.api(interpolate, api_name="interpolate", **public)
    gr.api(traverse, api_name="traverse", **public)


BOXES = {  # the shared row's sliders, as the one rule for typed numbers reads them
    "latent-count": numbers.Box("count", 1, 64),
    "latent-truncation": numbers.Box("truncation", 0, 2, None),
    "latent-temperature": numbers.Box("temperature", 0, 2, None),
}


def fit_slider(evt: gr.EventData) -> list:
    return numbers.fitted_updates(BOXES, evt)


def build_ui() -> LatentUI:
    """The shared controls, one sub-tab per view (each built and wired by its own builder), the
    training lab, the explanation, and the public API. Picking a model shows its kind's scale and
    empties the views of the model before; the lab's models join the picker once they have trained."""

    ui = _controls()
    with gr.Tabs():
        ui.tabs["samples"] = latent_sampling_tabs.samples_tab(ui)
        ui.tabs["compare"] = latent_sampling_tabs.compare_tab(ui)
        ui.tabs["interpolation"] = latent_sampling_tabs.interpolation_tab(ui, latent_encoding.image_interpolation)
        ui.tabs["traversal"] = latent_sampling_tabs.traversal_tab(ui)
        ui.tabs["live"] = latent_sampling_tabs.live_tab(ui)
        ui.tabs["anatomy"] = latent_encoding.anatomy_tab(ui)
        ui.tabs["photos"] = latent_encoding.photos_tab()
        ui.tabs["map"] = latent_encoding.map_tab(ui)
        with gr.Tab("Training lab"):
            ui.tabs["lab"] = training_lab.build_ui()
    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS)
    stale = [output for key in ("samples", "compare", "interpolation", "traversal", "live", "anatomy", "map")
             for output in ui.tabs[key]]  # fmt: skip
    _on_model_switch(ui, stale)
    scales = [ui.count, ui.truncation, ui.temperature]  # a number typed past one: the nearest, with a warning
    gr.on([s.release for s in scales], fit_slider, None, scales, show_progress="hidden", api_visibility="private")
    latent_picker.wire(ui.model, ui.tabs["lab"].timer)
    _api()
    return ui


def _on_model_switch(ui: LatentUI, stale: list) -> None:
    """Picking a model: its kind's scale shown, the other hidden, and ``stale`` (what the previous model
    showed, and any error badge a failed view left on it) emptied."""

    def model_switched(model: str):
        return latent_picker.model_switched_views(model, len(stale))

    light = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
    ui.model.change(model_switched, ui.model, [ui.truncation, ui.temperature, *stale], **light)
