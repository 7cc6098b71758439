"""The sampling sub-tabs of the Latent sampling tab: Samples, GAN vs VAE, Interpolation, Traversal
and Live edit, each built and wired by its own builder (``demos/latent/`` calls them
from its ``build_ui``; their handlers and cores live there). Each builder returns the outputs that
show its model's work: picking another model empties them.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from demos.latent import downloads as latent_downloads
from demos.latent.core import LatentUI, heavy
from demos.latent.sampling import (
    LIVE_DIMS,
    NUM_FRAMES,
    TRAVERSAL_FRAMES,
    TRAVERSAL_RANGE,
    interpolation,
    live_edit,
    live_start,
    sample_grid,
    side_by_side,
    traversal,
    usage,
    usage_once,
)


def samples_tab(ui: LatentUI) -> list:
    with gr.Tab("Samples"):
        sample = gr.Button("Sample", variant="primary", elem_id="latent-sample")
        samples = gr.Image(label="Samples", type="pil", elem_id="latent-samples", interactive=False)
        files = gr.File(
            label=f"Download: each sample as a {latent_downloads.DOWNLOAD_PX} px PNG named model_seed_index (zip)",
            elem_id="latent-download",
        )
        shown = gr.State(None)  # the key of the grid on screen, which the download is made from
    light = dict(api_visibility="private", show_progress="hidden")
    sample.click(
        sample_grid, [ui.model, ui.seed, ui.count, ui.truncation, ui.temperature], [samples, shown], **heavy()
    ).success(latent_downloads.sample_download, shown, files, **light)
    return [samples, files]


def compare_tab(ui: LatentUI) -> list:
    with gr.Tab("GAN vs VAE"):
        gr.Markdown("The bundled GAN and VAE trained on the same data as the picked model, same seed and count.")
        compare = gr.Button("Sample both", elem_id="latent-compare")
        note = gr.Markdown(elem_id="latent-compare-note")
        with gr.Row():
            gan_grid = gr.Image(label="GAN", type="pil", format="png", interactive=False)
            vae_grid = gr.Image(label="VAE", type="pil", format="png", interactive=False)
    inputs = [ui.model, ui.seed, ui.count, ui.truncation, ui.temperature]
    compare.click(side_by_side, inputs, [gan_grid, vae_grid, note], **heavy())
    return [gan_grid, vae_grid, note]


def interpolation_tab(ui: LatentUI, image_walk: Callable) -> list:
    """Walks between two seeds and (with ``image_walk``, a handler of latent_encoding) two images."""
    with gr.Tab("Interpolation"):
        with gr.Row():
            seed_a = gr.Number(1, precision=0, label="seed A")
            seed_b = gr.Number(2, precision=0, label="seed B")
            steps = gr.Slider(2, 16, NUM_FRAMES, step=1, label="steps")
            walk_seeds = gr.Button("Interpolate", elem_id="latent-interpolate")
        with gr.Accordion("…or between two images (VAE: each encoded to its posterior mean)", open=False):
            with gr.Row():
                image_a = gr.File(label="image A", file_types=["image"], type="binary", elem_id="latent-image-a")
                image_b = gr.File(label="image B", file_types=["image"], type="binary", elem_id="latent-image-b")
            walk_images = gr.Button("Interpolate images", elem_id="latent-interpolate-images")
        lerp_image = gr.Image(
            label="lerp (straight line)", type="pil", format="png", interactive=False, elem_id="latent-lerp"
        )
        slerp_image = gr.Image(label="slerp (great circle)", type="pil", format="png", interactive=False)
        # no fixed height: Gradio 6's plots clip the legend below a plot of fixed height
        norm_plot = gr.LinePlot(
            x="t", y="norm", color="path", label="Latent norm along each path", elem_id="latent-norms"
        )
        gifs = gr.File(label="GIFs", file_count="multiple")
    outputs = [lerp_image, slerp_image, norm_plot, gifs]
    ui.controls.update(seed_a=seed_a, seed_b=seed_b, walk_steps=steps)
    walk_seeds.click(interpolation, [ui.model, seed_a, seed_b, steps], outputs, **heavy())
    walk_images.click(image_walk, [ui.model, image_a, image_b, steps], outputs, **heavy())
    return outputs


def traversal_tab(ui: LatentUI) -> list:
    with gr.Tab("Traversal") as tab:
        with gr.Row():
            dims = gr.Textbox(
                "0 1 2 3",
                label="dimensions",
                info="Which latent dimensions, e.g. 0 1 2 3. A VAE starts on its most used ones.",
                elem_id="latent-dims",
            )
            span = gr.Slider(0.5, 5, TRAVERSAL_RANGE, step=0.5, label="range (± σ)")
            steps = gr.Slider(3, 11, TRAVERSAL_FRAMES, step=1, label="steps")
            turn = gr.Button("Traverse", elem_id="latent-traverse")
        picture = gr.Image(
            label="Rows: dimensions; columns: −range … +range",
            type="pil",
            format="png",
            interactive=False,
            elem_id="latent-traversal",
        )
        table = gr.Dataframe(
            label="Dimensions by use (mean KL on the model's data; for shapes, the factor each follows)",
            interactive=False,
            elem_id="latent-usage",
        )
    ui.controls.update(dims=dims, span=span, traversal_steps=steps)
    ui.model.change(usage, ui.model, [dims, table], **heavy())  # the picked model's dimensions and table
    tab.select(usage_once, [ui.model, table], [dims, table], **heavy())
    turn.click(traversal, [ui.model, ui.seed, dims, span, steps], picture, **heavy())
    return [picture]


def live_tab(ui: LatentUI) -> list:
    with gr.Tab("Live edit"):
        gr.Markdown("Load a seed's latent, then move one dimension at a time and watch the image follow.")
        load = gr.Button("Load seed", elem_id="latent-live-load")
        with gr.Row():
            with gr.Column():
                sliders = [gr.Slider(-4, 4, 0, step=0.05, label=f"z{i}") for i in range(LIVE_DIMS)]
            image = gr.Image(label="Decoded", type="pil", format="png", interactive=False, elem_id="latent-live")
    load.click(live_start, [ui.model, ui.seed], [*sliders, image], **heavy())
    for slider in sliders:
        slider.release(live_edit, [ui.model, ui.seed, *sliders], image, **heavy())
    return [image]
