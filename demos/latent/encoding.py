"""Images into the latent space: the VAE on an image you draw or upload, a walk between two
images, the latent map of a whole data set, and photos through Stable Diffusion's image
autoencoder. Parts of the Latent sampling tab (``demos/latent/`` builds them, and holds
the latent arithmetic they build on).

Each view has one core of model work (a model key and plain values in, CPU data out) run on a
model worker through ``shared.compute``, and a thin handler that pictures its result.
"""

from __future__ import annotations

import dataclasses

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from demos import glue
from demos.glue import user_error
from demos.latent import picker as latent_picker
from demos.latent.core import LatentUI, heavy
from demos.latent.sampling import (
    DISPLAY_PX,
    MAX_FRAMES,
    SEED,
    decode,
    encode,
    lerp,
    open_upload,
    slerp,
    walk,
    walk_views,
)
from shared import compute, runtime
from shared.datasets import labelled
from shared.images import grid_image
from shared.loaders import LatentModel
from shared.validation import check_int

# --- knobs ----------------------------------------------------------------------------------

CROP_MARGIN = 1.0  # a drawn digit's square crop, as a multiple of its ink's longer side
MAP_PX = 420  # the latent map's plot, square
MARKER_R = 8  # the clicked point's ring on the map, radius in pixels
PHOTO_PX = 256  # photos are resized to this square for the image autoencoder (a multiple of 8)
DIGIT_COLOURS = [  # the map's dot colour per label (matplotlib's tab10)
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


# --- views: pure functions (model in, CPU tensors out) ----------------------------------------


def to_model_input(
    image: Image.Image | np.ndarray | dict | None, size: int, channels: int = 1, max_pixels: int | None = None
) -> torch.Tensor:
    """An upload or drawing → (1, channels, size, size) in [0, 1]. For one channel: light strokes on
    dark, cropped to the ink, like the digits; for colour models the whole picture, resized.

    Handles alpha, CMYK, palettes and animations (first frame); refuses an empty sketch, a blank
    image and (given ``max_pixels``) one larger than that.
    """
    if image is None:
        raise ValueError("Draw or upload an image first.")
    if isinstance(image, dict):  # gr.Sketchpad's value: {"background", "layers", "composite"}
        image = image.get("composite")
        if image is None:
            raise ValueError("The sketch is empty: draw a digit first.")
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if max_pixels is not None and image.width * image.height > max_pixels:
        raise ValueError(f"That image is {image.width}×{image.height}; the limit is {max_pixels:,} pixels.")
    image.seek(0) if getattr(image, "is_animated", False) else None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, "white")  # transparent = paper
        image = Image.alpha_composite(background, rgba)
    if channels == 3:
        rgb = np.asarray(image.convert("RGB").resize((size, size), Image.BOX), dtype=np.float32) / 255.0
        if rgb.max() - rgb.min() < 1e-3:
            raise ValueError("The image is blank: draw or upload a shape.")
        return torch.tensor(rgb).permute(2, 0, 1)[None]
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if gray.max() - gray.min() < 1e-3:
        raise ValueError("The image is blank: draw or upload a digit.")
    if gray.mean() > 0.5:  # dark ink on light paper → light ink on dark, as the model was trained
        gray = 1.0 - gray
    # Crop to a square around the ink, centred on it, and scale like the training digits, which
    # fill the frame edge to edge along their longer side.
    ys, xs = np.nonzero(gray > 0.2 * gray.max())
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = CROP_MARGIN * max(bottom - top, right - left)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    ink = Image.fromarray((gray * 255).astype(np.uint8))
    square = ink.crop((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))  # outside → black
    small = square.resize((size, size), Image.BOX)
    tensor = torch.tensor(np.asarray(small), dtype=torch.float32)[None, None] / 255.0
    return tensor / tensor.max().clamp(min=1e-6)


@dataclasses.dataclass
class Posterior:
    mu: torch.Tensor  # (d,)
    sigma: torch.Tensor  # (d,)
    kl: torch.Tensor  # (d,) KL(N(μ, σ²) ‖ N(0, 1)) per dimension
    reconstruction: torch.Tensor  # (1, C, H, W) decoded from μ
    samples: torch.Tensor  # (n, C, H, W) decoded from z ~ N(μ, σ²)


def posterior(lm: LatentModel, image: torch.Tensor, samples: int = 8, seed: int = SEED) -> Posterior:
    """Encode one image (1, C, H, W) in [0, 1] and look at what the VAE makes of it."""
    mu, logvar = encode(lm, image)
    sigma = (0.5 * logvar).exp()
    kl = 0.5 * (mu.pow(2) + sigma.pow(2) - 1 - logvar)
    eps = torch.randn(samples, mu.shape[1], generator=torch.Generator().manual_seed(seed))
    return Posterior(mu[0], sigma[0], kl[0], decode(lm, mu), decode(lm, mu + sigma * eps))


@dataclasses.dataclass
class LatentMap:
    coords: np.ndarray  # (N, 2) each training digit's μ projected on the first two principal axes
    labels: np.ndarray  # (N,) its digit
    mean: np.ndarray  # (d,) PCA centre
    axes: np.ndarray  # (2, d) principal axes
    low: np.ndarray  # (2,) lower-left corner of the plotted area, in PCA units
    high: np.ndarray  # (2,) upper-right corner
    names: tuple[str, ...] = tuple(str(d) for d in range(10))  # legend: label → name
    palette: tuple[tuple[int, int, int], ...] | None = None  # label → dot colour (default: DIGIT_COLOURS)

    def to_latent(self, u: float, v: float) -> torch.Tensor:
        """A point of the map (each in [0, 1], v up) → a latent vector in the principal plane: (d,)."""
        point = self.low + np.array([u, v]) * (self.high - self.low)
        return torch.tensor(self.mean + point @ self.axes, dtype=torch.float32)


def latent_map(lm: LatentModel, images: torch.Tensor, labels: torch.Tensor, **legend) -> LatentMap:
    """PCA of the VAE's posterior means over a dataset: where each digit lives in latent space."""
    if lm.kind != "vae":
        raise ValueError("The map needs an encoder: pick a VAE (a GAN has no way to place an image).")
    mu = encode(lm, images)[0].numpy()
    mean = mu.mean(axis=0)
    _, _, vt = np.linalg.svd(mu - mean, full_matrices=False)
    coords = (mu - mean) @ vt[:2].T
    pad = 0.05 * (coords.max(axis=0) - coords.min(axis=0))
    return LatentMap(coords, labels.numpy(), mean, vt[:2], coords.min(axis=0) - pad, coords.max(axis=0) + pad, **legend)


def map_image(m: LatentMap, marker: tuple[float, float] | None = None) -> Image.Image:
    """The map as a scatter plot, one colour per label, with a legend on the right; with ``marker``
    (u, v in [0, 1], v up, as ``LatentMap.to_latent`` takes them) a crosshair where that point is."""
    image = Image.new("RGB", (MAP_PX + 90, MAP_PX), "white")
    draw = ImageDraw.Draw(image)
    palette = m.palette or DIGIT_COLOURS
    scaled = (m.coords - m.low) / (m.high - m.low)
    for (u, v), label in zip(scaled, m.labels, strict=True):
        x, y = u * MAP_PX, (1 - v) * MAP_PX
        draw.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=palette[int(label)])
    font = ImageFont.load_default(size=14)
    for label, name in enumerate(m.names[: int(m.labels.max()) + 1]):
        draw.rectangle((MAP_PX + 12, 12 + label * 22, MAP_PX + 24, 24 + label * 22), fill=palette[label])
        draw.text((MAP_PX + 30, 10 + label * 22), name, fill="black", font=font)
    draw.rectangle((0, 0, MAP_PX - 1, MAP_PX - 1), outline=(200, 200, 200))
    if marker is not None:
        x, y = marker[0] * MAP_PX, (1 - marker[1]) * MAP_PX
        for colour, width in (("white", 5), ("black", 2)):  # a black cross and ring, outlined in white
            draw.ellipse((x - MARKER_R, y - MARKER_R, x + MARKER_R, y + MARKER_R), outline=colour, width=width)
            draw.line((x - 2 * MARKER_R, y, x + 2 * MARKER_R, y), fill=colour, width=width)
            draw.line((x, y - 2 * MARKER_R, x, y + 2 * MARKER_R), fill=colour, width=width)
    return image


@dataclasses.dataclass
class PhotoRoundTrip:
    inputs: torch.Tensor  # (n, 3, H, W) in [0, 1], what the encoder saw
    reconstructions: torch.Tensor  # (n, 3, H, W) decoded from the posterior mean
    samples: torch.Tensor  # (k, 3, H, W) decoded from z ~ N(μ, σ²) of the first image
    lerp: torch.Tensor | None  # (steps, 3, H, W) between the two images' latents, or None for one image
    slerp: torch.Tensor | None
    latent_shape: tuple[int, ...]  # (channels, H/8, W/8)


@torch.no_grad()
def photo_round_trip(
    lm: LatentModel, photos: list[Image.Image], steps: int = 6, samples: int = 3, seed: int = SEED, px: int = PHOTO_PX
) -> PhotoRoundTrip:
    """Photos → latents (an AutoencoderKL's posterior) → reconstructions, samples, interpolations."""
    if lm.kind != "autoencoder-kl":
        raise ValueError("Pick an image autoencoder (AutoencoderKL) for photos.")
    if not photos:
        raise ValueError("Upload one or two photos first.")
    device, dtype = next(lm.model.parameters()).device, next(lm.model.parameters()).dtype
    x = torch.stack(
        [
            torch.tensor(np.asarray(ImageOps.fit(p.convert("RGB"), (px, px)), dtype=np.float32)).permute(2, 0, 1)
            / 255.0
            for p in photos
        ]
    )
    posterior_ = lm.model.encode((x * 2 - 1).to(device, dtype)).latent_dist  # the model works in [−1, 1]
    mu, std = posterior_.mean, posterior_.std  # (n, c, H/8, W/8)

    def to_image(latents: torch.Tensor) -> torch.Tensor:
        out = lm.model.decode(latents).sample.float().cpu()
        if not torch.isfinite(out).all():
            raise ValueError("The autoencoder produced non-finite pixels.")
        return ((out + 1) / 2).clamp(0, 1)

    eps = torch.randn((samples, *mu.shape[1:]), generator=torch.Generator().manual_seed(seed)).to(device, dtype)
    straight = curved = None
    if len(photos) > 1:
        t = torch.linspace(0, 1, steps)
        a, b = mu[0].flatten().float().cpu(), mu[1].flatten().float().cpu()
        straight = to_image(lerp(a, b, t).view(steps, *mu.shape[1:]).to(device, dtype))
        curved = to_image(slerp(a, b, t).view(steps, *mu.shape[1:]).to(device, dtype))
    return PhotoRoundTrip(x, to_image(mu), to_image(mu[:1] + std[:1] * eps), straight, curved, tuple(mu.shape[1:]))


# --- model work: plain inputs → CPU data, run through compute.run ------------------------------


def _image_walk(model: str | LatentModel, first: bytes | None, second: bytes | None, steps: object):
    """Two uploads → a VAE's posterior means μ (d,) → the lerp and slerp walks between them (``walk``)."""
    lm = latent_picker.latent(model)
    if lm.kind != "vae":
        raise ValueError("Only a VAE can place an image in its latent space: pick a VAE, or walk between seeds.")
    if not first or not second:
        raise ValueError("Upload two images to walk between.")
    steps = check_int("steps", steps, 2, MAX_FRAMES)
    size, channels = lm.model.size, lm.model.channels
    a, b = (encode(lm, to_model_input(open_upload(f), size, channels))[0][0] for f in (first, second))
    return walk(model, a, b, steps, frames_as="steps")


def _anatomy(model: str | LatentModel, sketch: object, upload: bytes | None) -> tuple[torch.Tensor, Posterior]:
    """The VAE on a drawing or an upload: (its input (1, C, H, W), the posterior)."""
    lm = latent_picker.latent(model)
    image = open_upload(upload) if upload else sketch
    if lm.kind != "vae":
        raise ValueError("Only a VAE has an encoder: pick a VAE model for this view.")
    x = to_model_input(image, lm.model.size, lm.model.channels, max_pixels=runtime.get().settings.max_image_pixels)
    return x, posterior(lm, x)


def _map(model: str | LatentModel) -> LatentMap:
    """The map over the model's own data set, as the catalog declares it."""
    lm = latent_picker.latent(model)
    if lm.kind != "vae":
        raise ValueError("The map needs an encoder: pick a VAE (a GAN has no way to place an image).")
    images, labels, _, legend = labelled(lm.dataset)
    return latent_map(lm, images, labels, **legend)


def _map_point(model: str | LatentModel, u: float, v: float) -> tuple[LatentMap, torch.Tensor]:
    """The map, and the latent under a point of it (u, v in [0, 1], v up) decoded: (1, C, H, W)."""
    m = _map(model)
    return m, decode(latent_picker.latent(model), m.to_latent(u, v)[None])


def _photos(model: str, paths: list[str | None], steps: object) -> PhotoRoundTrip:
    lm = runtime.latent_model(model)
    steps = check_int("steps", steps, 2, 16)
    return photo_round_trip(lm, [open_upload(path) for path in paths if path], steps)


# --- Gradio glue ----------------------------------------------------------------------------


def image_interpolation(
    model: str, first: bytes | None, second: bytes | None, steps: int, request: gr.Request | None = None
):
    """The same walk between two images: a VAE encodes each to its posterior mean μ, the path runs
    between the two means. (Their norms sit below √d: a mean is the centre of a posterior, and the
    plot shows how far inside the prior's shell that is.)"""
    try:
        walks = compute.run(_image_walk, latent_picker.resolve(model, request), first, second, steps)
    except Exception as exc:
        raise user_error(exc, "Interpolation") from None
    return walk_views(walks, f"{latent_picker.name_of(model)}_images")


def vae_anatomy(model: str, sketch, upload: bytes | None, request: gr.Request | None = None):
    """Posterior μ, σ, samples, reconstruction and per-dimension KL for a drawing or an upload."""
    try:
        x, post = compute.run(_anatomy, latent_picker.resolve(model, request), sketch, upload)
    except Exception as exc:
        raise user_error(exc, "Encoding") from None
    dims = [f"z{i}" for i in range(len(post.mu))]
    kl = pd.DataFrame({"dimension": dims, "KL (nats)": post.kl.numpy()})
    stats = pd.DataFrame(
        {"dimension": dims, "μ": post.mu.double().numpy().round(3), "σ": post.sigma.double().numpy().round(3)}
    )
    return (
        grid_image(torch.cat([x, post.reconstruction]), columns=2, px=96),
        grid_image(post.samples, columns=8, px=DISPLAY_PX),
        kl,
        stats,
    )


def show_map(model: str, request: gr.Request | None = None) -> Image.Image:
    try:
        m = compute.run(_map, latent_picker.resolve(model, request))
    except Exception as exc:
        raise user_error(exc, "The latent map") from None
    return map_image(m)


def decode_map_point(model: str, evt: gr.SelectData, request: gr.Request | None = None):
    """A click on the map decodes the latent under the cursor, and the map marks where that was."""
    x, y = (int(v) for v in evt.index)
    if not (0 <= x < MAP_PX and 0 <= y < MAP_PX):
        return gr.skip(), gr.skip()
    u, v = x / MAP_PX, 1 - y / MAP_PX
    try:
        m, image = compute.run(_map_point, latent_picker.resolve(model, request), u, v)
    except Exception as exc:
        raise user_error(exc, "Decoding") from None
    return map_image(m, marker=(u, v)), grid_image(image, columns=1, px=160)


def photos(model: str, first: str | None, second: str | None, steps: int):
    """The image-autoencoder section: upload one or two photos."""
    try:
        result = compute.run(_photos, model, [first, second], steps)
    except Exception as exc:
        raise user_error(exc, "The photo round trip") from None
    px, shape = 160, result.latent_shape
    pairs = grid_image(torch.cat([result.inputs, result.reconstructions]), columns=len(result.inputs), px=px)
    note = (
        f"Latent: {' × '.join(map(str, shape))} numbers per image "
        f"({PHOTO_PX}×{PHOTO_PX}×3 pixels → {np.prod(shape):,} latents, "
        f"{PHOTO_PX * PHOTO_PX * 3 / np.prod(shape):.0f}× smaller)."
    )
    walks = [grid_image(w, columns=len(w), px=px) if w is not None else None for w in (result.lerp, result.slerp)]
    return pairs, grid_image(result.samples, columns=len(result.samples), px=px), *walks, note


# --- the sub-tabs ------------------------------------------------------------------------------


# Gradio 6.31's Sketchpad starts on its image tool, covered by "select the draw tool to start", so a
# first stroke drew nothing: whenever that prompt (``.empty.wrap``) shows — on first view, after the
# canvas is cleared — the brush is picked for the visitor (its label is "Brush" in every locale
# today; the toolbar's first button otherwise).
PICK_BRUSH_JS = """
const scope = element.closest('.tabitem') || document.body;
const pick = () => {
  const sketch = document.getElementById('latent-sketch');
  if (!sketch || !sketch.querySelector('.empty.wrap')) return;
  const brush = sketch.querySelector('button[aria-label="Brush"]') || sketch.querySelector('.toolbar-wrap button');
  if (brush) brush.click();
};
new MutationObserver(pick).observe(scope, {childList: true, subtree: true});
pick();
"""


def anatomy_tab(ui: LatentUI) -> list:
    with gr.Tab("VAE anatomy"):
        gr.Markdown("Draw a digit (light on dark or dark on light) or upload an image; pick a VAE model.")
        gr.HTML("", js_on_load=PICK_BRUSH_JS, elem_id="latent-sketch-brush", visible="hidden")
        with gr.Row():
            sketch = gr.Sketchpad(
                label="Draw here",
                type="pil",
                canvas_size=(192, 192),
                brush=gr.Brush(default_size=16, colors=["#000000"]),
                elem_id="latent-sketch",
            )
            upload = gr.File(label="…or upload an image", file_types=["image"], type="binary")
        inspect = gr.Button("Encode", elem_id="latent-encode")
        with gr.Row():
            recon = gr.Image(
                label="Input → reconstruction from μ", type="pil", interactive=False, elem_id="latent-reconstruction"
            )
            samples = gr.Image(
                label="Samples z ~ N(μ, σ²)", type="pil", interactive=False, elem_id="latent-posterior-samples"
            )
        with gr.Row():
            kl_plot = gr.BarPlot(
                x="dimension",
                y="KL (nats)",
                label="KL per dimension: which are in use",
                height=240,
                elem_id="latent-kl",
            )
            stats = gr.Dataframe(label="Posterior", interactive=False, elem_id="latent-posterior")
    outputs = [recon, samples, kl_plot, stats]
    inspect.click(vae_anatomy, [ui.model, sketch, upload], outputs, **heavy())
    return outputs


def map_tab(ui: LatentUI) -> tuple[gr.Image, gr.Image]:
    with gr.Tab("Latent map"):
        gr.Markdown(
            "Every digit of the dataset placed by the VAE's encoder (first two principal axes of μ). "
            "Click anywhere to decode that point: a crosshair marks it."
        )
        draw = gr.Button("Show the map (VAE)", elem_id="latent-map-button")
        with gr.Row():
            # PNG, not Gradio's lossy WebP: the dots and the click's marker stay exact
            view = gr.Image(label="Latent map", type="pil", interactive=False, elem_id="latent-map", format="png")
            decoded = gr.Image(
                label="Decoded at the click", type="pil", interactive=False, elem_id="latent-map-decoded"
            )
    draw.click(show_map, ui.model, view, **heavy())
    view.select(decode_map_point, ui.model, [view, decoded], **heavy())
    return view, decoded


def photos_tab() -> list:
    with gr.Tab("Real images (AutoencoderKL)"):
        gr.Markdown(
            "Stable Diffusion's image autoencoder squeezes a photo into a small latent image and back. "
            "Upload one photo (reconstruction and posterior samples) or two (interpolation between them). "
            "Needs the model from the Hugging Face Hub."
        )
        with gr.Row():
            model = gr.Dropdown(
                glue.model_choices("latent", bundled=False),
                value="sd-vae-ft-mse",
                label="Autoencoder",
                allow_custom_value=runtime.get().settings.allow_any_model,
            )
            first = gr.Image(label="Photo A", type="filepath", height=200)
            second = gr.Image(label="Photo B (optional)", type="filepath", height=200)
            steps = gr.Slider(2, 10, 6, step=1, label="interpolation steps")
        run = gr.Button("Encode → decode", elem_id="latent-photos")
        note = gr.Markdown()
        with gr.Row():
            pairs = gr.Image(label="Inputs (top) and reconstructions (bottom)", type="pil", interactive=False)
            samples = gr.Image(label="Posterior samples of photo A", type="pil", interactive=False)
        lerp_image = gr.Image(label="lerp A → B", type="pil", interactive=False)
        slerp_image = gr.Image(label="slerp A → B", type="pil", interactive=False)
    outputs = [pairs, samples, lerp_image, slerp_image, note]
    run.click(photos, [model, first, second, steps], outputs, **heavy())
    return outputs
