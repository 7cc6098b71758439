"""GANs and VAEs: touch the latent space.

A GAN's generator turns a random vector z ~ N(0, I) into an image; it learned by trying to fool a
discriminator that was learning to tell its images from real ones. A VAE's encoder turns an image
into a Gaussian over latent vectors (mean μ, spread σ), and its decoder turns a latent vector back
into an image; training asks for good reconstructions while keeping each Gaussian close to
N(0, I), so that decoding *any* draw from N(0, I) gives a plausible image.

This tab samples both, walks between latent points (straight line vs great circle), turns one
latent dimension at a time, and opens up the VAE on an image you draw or upload.

Run alone: ``python -m demos.latent_sampling``.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import tempfile
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps

from shared import catalog, runtime
from shared.loaders import LatentModel, ModelLoadError
from shared.validation import check_float, check_int

# --- knobs ----------------------------------------------------------------------------------

SEED = 0
COUNT = 16  # images in a sample grid
MAX_COUNT = 256  # …at most (the API too)
TRUNCATION = 1.0  # GAN: scale of z; < 1 trades variety for typical-looking images
TEMPERATURE = 1.0  # VAE: scale of the prior draw, same trade
STEPS = 8  # interpolation frames
MAX_STEPS = 64
TRAVERSAL_RANGE = 3.0  # ± this many standard deviations
MAX_ABS_LATENT = 100.0  # latent values beyond this are refused (N(0, I) is almost never past 6)
MAX_UPLOAD_PIXELS = 4096 * 4096  # decompression-bomb cap for uploads
DISPLAY_PX = 64  # each generated image is shown at this size
CROP_MARGIN = 1.0  # a drawn digit's square crop, as a multiple of its ink's longer side

# Pillow refuses to decode images over twice this many pixels (and warns above it), before any
# pixel is decompressed. Process-wide on purpose: every upload path in the app gets the cap.
Image.MAX_IMAGE_PIXELS = MAX_UPLOAD_PIXELS

HOW_IT_WORKS = """
**GAN: generator against discriminator.** The generator maps a random vector z to an image. The
discriminator sees real images and generated ones and learns to tell them apart; the generator
learns from the discriminator's gradients to make images it calls real. Neither sees a
"correct" output — the generator only ever learns what fools its opponent. Training is a
balance: if one side wins outright, learning stops.

**VAE: encoder, latent vector, decoder.** The encoder maps an image to a Gaussian over latent
vectors: a mean μ and a spread σ per dimension. A latent z is drawn from it — written
z = μ + σ·ε with ε ~ N(0, I), the *reparameterisation trick*, so gradients can flow through μ and
σ — and the decoder maps z back to an image. The loss is reconstruction error plus a KL term that
pulls each Gaussian towards N(0, I) (β weighs that term). Dimensions the model doesn't need
collapse to the prior (KL ≈ 0): the KL bar chart shows which dimensions are in use.

**Why a dimension can mean something.** Nothing forces one latent dimension to carry one
property of the image; any rotation of the latent space fits the data as well. Penalties break
the tie. A β-VAE weighs the whole KL term more (β > 1), squeezing the code until only the
cheapest description survives. The shapes VAE uses β-TCVAE instead: it splits the KL into three
parts and weighs only the *total correlation* — how much knowing one dimension tells you about
the others. Independent dimensions are what make a traversal read as "this one moves the shape
sideways, this one changes its colour". The Traversal tab's table shows, for the shapes, which
known factor each dimension follows.

**Truncation and temperature.** Both scale the random vector before decoding. Below 1, samples
stay near the centre of the latent space, where training data was dense: more typical, less
varied. Above 1, more varied and more often broken.

**Lerp vs slerp.** A random z in d dimensions has length close to √d: Gaussian mass lives on a
thin shell, not at the centre. A straight line (lerp) between two such points cuts through the
inside of the shell, where the model saw almost nothing, so midpoints look washed out. A great
circle (slerp) stays on the shell. The norm plot shows the dip.
"""


# --- latent arithmetic: pure functions on tensors -------------------------------------------


def check_latents(z: object, dim: int) -> torch.Tensor:
    """Untrusted latents (lists or tensors) as an (N, dim) float tensor, or a clear ValueError."""
    try:
        tensor = torch.as_tensor(z, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError("Latents must be numbers: a list of vectors.") from None
    if tensor.ndim == 1:
        tensor = tensor[None]
    if tensor.ndim != 2 or tensor.shape[1] != dim:
        raise ValueError(f"Each latent vector must have {dim} numbers; got shape {tuple(tensor.shape)}.")
    if not torch.isfinite(tensor).all():
        raise ValueError("Latents contain NaN or infinity.")
    if tensor.abs().max() > MAX_ABS_LATENT:
        raise ValueError(
            f"Latent values must lie within ±{MAX_ABS_LATENT:g} (a Gaussian latent is almost never past 6)."
        )
    return tensor


def sample_z(dim: int, count: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """count latents ~ N(0, scale²·I), the same for the same seed on any machine (CPU generator)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, dim, generator=generator) * scale


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line: (steps, d)."""
    return a + (b - a) * t[:, None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Great-circle interpolation (Shoemake): (steps, d). Falls back to lerp for (anti)parallel ends."""
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-4 or (math.pi - omega).abs() < 1e-4:
        return lerp(a, b, t)
    s = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / s)[:, None] * a + (torch.sin(t * omega) / s)[:, None] * b


def traversal_z(z0: torch.Tensor, dims: list[int], span: float, steps: int) -> torch.Tensor:
    """Rows = dimensions, columns = values from −span to +span: (len(dims)·steps, d)."""
    values = torch.linspace(-span, span, steps)
    rows = []
    for dim in dims:
        grid = z0.repeat(steps, 1)
        grid[:, dim] = values
        rows.append(grid)
    return torch.cat(rows)


@torch.no_grad()
def decode(lm: LatentModel, z: torch.Tensor) -> torch.Tensor:
    """Latents → images (N, C, H, W) in [0, 1]."""
    device = next(lm.model.parameters()).device
    if lm.kind == "gan":
        images = lm.model(z.to(device))
    elif lm.kind == "vae":
        images = lm.model.decode(z.to(device))
    else:
        raise ValueError("This model decodes latent images, not vectors: use the real-image section.")
    if not torch.isfinite(images).all():
        raise ValueError("The model produced non-finite pixels for these latents.")
    return images.float().cpu()


@dataclasses.dataclass
class Posterior:
    mu: torch.Tensor  # (d,)
    sigma: torch.Tensor  # (d,)
    kl: torch.Tensor  # (d,) KL(N(μ, σ²) ‖ N(0, 1)) per dimension
    reconstruction: torch.Tensor  # (1, C, H, W) decoded from μ
    samples: torch.Tensor  # (n, C, H, W) decoded from z ~ N(μ, σ²)


@torch.no_grad()
def posterior(lm: LatentModel, image: torch.Tensor, samples: int = 8, seed: int = SEED) -> Posterior:
    """Encode one image (1, C, H, W) in [0, 1] and look at what the VAE makes of it."""
    if lm.kind != "vae":
        raise ValueError("Only a VAE has an encoder: pick a VAE model for this view.")
    mu, logvar = lm.model.encode(image)
    sigma = (0.5 * logvar).exp()
    kl = 0.5 * (mu.pow(2) + sigma.pow(2) - 1 - logvar)
    eps = torch.randn(samples, mu.shape[1], generator=torch.Generator().manual_seed(seed))
    return Posterior(mu[0], sigma[0], kl[0], lm.model.decode(mu), lm.model.decode(mu + sigma * eps))


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


@torch.no_grad()
def latent_map(lm: LatentModel, images: torch.Tensor, labels: torch.Tensor, **legend) -> LatentMap:
    """PCA of the VAE's posterior means over a dataset: where each digit lives in latent space."""
    if lm.kind != "vae":
        raise ValueError("The map needs an encoder: pick a VAE (a GAN has no way to place an image).")
    mu = lm.model.encode(images)[0].numpy()
    mean = mu.mean(axis=0)
    _, _, vt = np.linalg.svd(mu - mean, full_matrices=False)
    coords = (mu - mean) @ vt[:2].T
    pad = 0.05 * (coords.max(axis=0) - coords.min(axis=0))
    return LatentMap(coords, labels.numpy(), mean, vt[:2], coords.min(axis=0) - pad, coords.max(axis=0) + pad, **legend)


UNUSED_KL = 0.05  # nats: a dimension this close to the prior carries nothing


@torch.no_grad()
def dimension_usage(lm: LatentModel, images: torch.Tensor, factors: torch.Tensor | None = None) -> pd.DataFrame:
    """Which latent dimensions a VAE uses, most used first: each one's mean KL over a dataset and,
    where the data's factors are known (the shapes), the factor it follows most and how closely
    (|correlation| or correlation ratio, 0–1) — so a traversal of the top rows reads as
    "this one moves the shape up and down"."""
    if lm.kind != "vae":
        raise ValueError("Only a VAE has an encoder to measure this: a GAN's dimensions are all used alike.")
    mu, logvar = lm.model.encode(images)
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).mean(dim=0)
    order = kl.argsort(descending=True).tolist()
    table = pd.DataFrame({"dimension": order, "KL (nats)": kl[order].double().numpy().round(3)})
    if factors is not None:
        from training.datasets import FACTORS
        from training.evaluate import factor_scores

        scores = factor_scores(mu.numpy(), factors.numpy())[order]
        rows = [(row, np.argsort(-row)) for row in scores]
        used = kl[order].numpy() >= UNUSED_KL  # an unused dimension's μ barely moves: its scores mean nothing
        table["follows"] = [FACTORS[o[0]] if u else "— (unused)" for (_, o), u in zip(rows, used, strict=True)]
        table["score"] = [f"{r[o[0]]:.2f}" if u else "" for (r, o), u in zip(rows, used, strict=True)]
        table["runner-up"] = [
            f"{FACTORS[o[1]]} {r[o[1]]:.2f}" if u else "" for (r, o), u in zip(rows, used, strict=True)
        ]
    return table


MAP_PX = 420
DIGIT_COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def map_image(m: LatentMap) -> Image.Image:
    """The map as a scatter plot, one colour per label, with a legend on the right."""
    from PIL import ImageDraw, ImageFont

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
    return image


PHOTO_PX = 256  # photos are resized to this square for the image autoencoder (a multiple of 8)


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


# --- images in and out ----------------------------------------------------------------------


def to_model_input(image: Image.Image | np.ndarray | None, size: int, channels: int = 1) -> torch.Tensor:
    """An upload or drawing → (1, channels, size, size) in [0, 1]. For one channel: light strokes on
    dark, cropped to the ink, like the digits; for colour models the whole picture, resized.

    Handles alpha, CMYK, palettes and animations (first frame); refuses what is not an image or is
    too large to open safely.
    """
    if image is None:
        raise ValueError("Draw or upload an image first.")
    if isinstance(image, dict):  # gr.Sketchpad's value: {"background", "layers", "composite"}
        image = image.get("composite")
        if image is None:
            raise ValueError("The sketch is empty: draw a digit first.")
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.width * image.height > MAX_UPLOAD_PIXELS:
        raise ValueError(f"That image is {image.width}×{image.height}; the limit is {MAX_UPLOAD_PIXELS:,} pixels.")
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


def open_upload(path_or_bytes: str | bytes) -> Image.Image:
    """Open an uploaded file with Pillow's decompression-bomb guard; ValueError if it's no image."""
    try:
        image = Image.open(io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes)
        image.load()
        return image
    except Image.DecompressionBombError:
        raise ValueError(f"That image is too large to open safely (limit {MAX_UPLOAD_PIXELS:,} pixels).") from None
    except (OSError, SyntaxError, ValueError):
        raise ValueError("That file is not an image Pillow can read (corrupt or unsupported).") from None


def grid_image(images: torch.Tensor, columns: int, px: int = DISPLAY_PX, gap: int = 2) -> Image.Image:
    """(N, C, H, W) in [0, 1] → one picture, `columns` per row, each image scaled to px."""
    n = len(images)
    rows = max(1, math.ceil(n / columns))
    canvas = Image.new("RGB", (columns * (px + gap) + gap, rows * (px + gap) + gap), (40, 40, 40))
    for i, image in enumerate(images):
        array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        tile = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).resize((px, px), Image.NEAREST)
        canvas.paste(tile, (gap + (i % columns) * (px + gap), gap + (i // columns) * (px + gap)))
    return canvas


def gif_bytes(images: torch.Tensor, px: int = 128, ms: int = 120) -> bytes:
    frames = [grid_image(image[None], 1, px, 0) for image in images]
    frames += frames[-2:0:-1]  # there and back
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=ms, loop=0)
    return buffer.getvalue()


# --- the live training lab ------------------------------------------------------------------

LAB_BATCH = 64
LAB_MAX_RUNS = 2  # training runs at once in the whole app (each takes a CPU core)
LAB_MAX_STEPS = 20_000  # a run stops itself here


class TrainingRun:
    """A small GAN or VAE learning the digits, one step at a time; fixed latents show progress.

    ``step()`` is the whole training step and is what the tests drive; ``start()``/``pause()``
    run it in a background thread, and ``stop()`` ends that thread.
    """

    def __init__(self, kind: str, seed: int = SEED) -> None:
        from shared.latent_models import ConvVAE, Discriminator, Generator
        from training.datasets import digits

        if kind not in ("gan", "vae"):
            raise ValueError("kind must be 'gan' or 'vae'.")
        self.kind = kind
        torch.manual_seed(seed)
        self.rng = torch.Generator().manual_seed(seed)
        self.data = digits()["x_train"]
        if kind == "gan":
            self.model, self.critic = Generator(latent_dim=32, width=32), Discriminator(width=32)
            self.opt = torch.optim.Adam(self.model.parameters(), 2e-4, betas=(0.5, 0.999))
            self.opt_d = torch.optim.Adam(self.critic.parameters(), 2e-4, betas=(0.5, 0.999))
        else:
            self.model = ConvVAE(latent_dim=8)
            self.opt = torch.optim.Adam(self.model.parameters(), 1e-3)
        self.fixed_z = torch.randn(16, self.model.latent_dim, generator=self.rng)  # the same points, improving
        self.steps = 0
        self.history: list[dict] = []
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> dict:
        from shared.latent_models import gan_step, vae_loss

        with self._lock:
            self.model.train()
            real = self.data[torch.randint(len(self.data), (LAB_BATCH,), generator=self.rng)]
            if self.kind == "gan":
                z = torch.randn(LAB_BATCH, self.model.latent_dim, generator=self.rng)
                d_loss, g_loss = gan_step(self.model, self.critic, self.opt, self.opt_d, real, z)
                losses = {"discriminator": d_loss, "generator": g_loss}
            else:
                loss, recon, kl = vae_loss(self.model, real)
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                losses = {"loss": loss.item(), "reconstruction": recon.item(), "KL": kl.item()}
            self.steps += 1
            self.history.append({"step": self.steps, **losses})
            return losses

    @torch.no_grad()
    def samples(self) -> torch.Tensor:
        with self._lock:
            self.model.eval()
            return (self.model(self.fixed_z) if self.kind == "gan" else self.model.decode(self.fixed_z)).clone()

    def loss_frame(self, every: int = 10) -> pd.DataFrame:
        rows = [
            {"step": h["step"], "loss": value, "curve": name}
            for h in self.history[::every]
            for name, value in h.items()
            if name != "step"
        ]
        return pd.DataFrame(rows, columns=["step", "loss", "curve"])

    @property
    def running(self) -> bool:
        return self._running.is_set()

    def start(self) -> None:
        self._running.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="training-lab", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        self._running.clear()

    def stop(self) -> None:
        self._stopped.set()
        self._running.set()  # wake the loop so it can see the stop
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            if not self._running.wait(timeout=0.5):
                continue
            if self._stopped.is_set() or self.steps >= LAB_MAX_STEPS:
                break
            self.step()
        self._running.clear()


# --- Gradio glue ----------------------------------------------------------------------------


def _model(choice: str) -> LatentModel:
    try:
        return runtime.latent_model(choice)
    except (ValueError, ModelLoadError) as exc:
        raise gr.Error(str(exc)) from None


def _scale(lm: LatentModel, truncation: float, temperature: float) -> float:
    return (
        check_float("truncation", truncation, 0.0, 3.0)
        if lm.kind == "gan"
        else check_float("temperature", temperature, 0.0, 3.0)
    )


def sample_grid(model: str, seed: int, count: int, truncation: float, temperature: float) -> Image.Image:
    lm = _model(model)
    try:
        seed = check_int("seed", seed, 0, 2**32 - 1)
        count = check_int("count", count, 1, MAX_COUNT)
        images = decode(lm, sample_z(lm.latent_dim, count, seed, _scale(lm, truncation, temperature)))
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    return grid_image(images, columns=min(8, count))


def sample_latents(
    model: str = "", seed: int = SEED, count: int = COUNT, scale: float = 1.0, latents: list | None = None
) -> dict:
    """Decode `latents` (a list of vectors), or `count` random ones from `seed` scaled by `scale`
    (truncation for a GAN, temperature for a VAE). Returns the latents and the images as nested
    lists (count × channels × height × width, values in [0, 1])."""
    lm = _model(model or catalog.default_model("latent", runtime.get().settings.models))
    try:
        if latents is not None:
            z = check_latents(latents, lm.latent_dim)
            if len(z) > MAX_COUNT:
                raise ValueError(f"At most {MAX_COUNT} latents at once.")
        else:
            seed, count = check_int("seed", seed, 0, 2**32 - 1), check_int("count", count, 1, MAX_COUNT)
            z = sample_z(lm.latent_dim, count, seed, check_float("scale", scale, 0.0, 3.0))
        images = decode(lm, z)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    return {"model": lm.key, "latents": z.tolist(), "images": images.round(decimals=4).tolist()}


def interpolation(model: str, seed_a: int, seed_b: int, steps: int):
    """Lerp and slerp between two seeds' latents, side by side, with the latent norm along each."""
    lm = _model(model)
    try:
        steps = check_int("steps", steps, 2, MAX_STEPS)
        a = sample_z(lm.latent_dim, 1, check_int("seed A", seed_a, 0, 2**32 - 1))[0]
        b = sample_z(lm.latent_dim, 1, check_int("seed B", seed_b, 0, 2**32 - 1))[0]
        return _walk(lm, a, b, steps)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def image_interpolation(model: str, first: bytes | None, second: bytes | None, steps: int):
    """The same walk between two images: a VAE encodes each to its posterior mean μ, the path runs
    between the two means. (Their norms sit below √d: a mean is the centre of a posterior, and the
    plot shows how far inside the prior's shell that is.)"""
    lm = _model(model)
    try:
        if lm.kind != "vae":
            raise ValueError("Only a VAE can place an image in its latent space: pick a VAE, or walk between seeds.")
        if not first or not second:
            raise ValueError("Upload two images to walk between.")
        steps = check_int("steps", steps, 2, MAX_STEPS)
        size, channels = lm.model.size, lm.model.channels
        with torch.no_grad():
            a, b = (lm.model.encode(to_model_input(open_upload(f), size, channels))[0][0] for f in (first, second))
        return _walk(lm, a, b, steps)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def _walk(lm: LatentModel, a: torch.Tensor, b: torch.Tensor, steps: int):
    """Both paths decoded, the norm plot, and both walks as GIFs."""
    t = torch.linspace(0, 1, steps)
    straight, curved = lerp(a, b, t), slerp(a, b, t)
    straight_images, curved_images = decode(lm, straight), decode(lm, curved)
    norms = pd.DataFrame(
        {
            "t": np.concatenate([t.numpy()] * 3),
            "norm": np.concatenate(
                [straight.norm(dim=1).numpy(), curved.norm(dim=1).numpy(), np.full(steps, math.sqrt(lm.latent_dim))]
            ),
            "path": ["lerp"] * steps + ["slerp"] * steps + ["√d (typical norm)"] * steps,
        }
    )
    folder = Path(tempfile.mkdtemp(prefix="interpolation-"))
    (folder / "lerp.gif").write_bytes(gif_bytes(straight_images))
    (folder / "slerp.gif").write_bytes(gif_bytes(curved_images))
    return (
        grid_image(straight_images, columns=steps),
        grid_image(curved_images, columns=steps),
        norms,
        [str(folder / "lerp.gif"), str(folder / "slerp.gif")],
    )


def interpolate(
    model: str = "", a: list | None = None, b: list | None = None, steps: int = STEPS, kind: str = "slerp"
) -> dict:
    """Interpolate between latent vectors `a` and `b` (kind "lerp" or "slerp") and decode each step."""
    lm = _model(model or catalog.default_model("latent", runtime.get().settings.models))
    try:
        if kind not in ("lerp", "slerp"):
            raise ValueError("kind must be 'lerp' or 'slerp'.")
        steps = check_int("steps", steps, 2, MAX_STEPS)
        if a is None or b is None:
            raise ValueError("Give both latent vectors a and b.")
        za, zb = check_latents(a, lm.latent_dim)[0], check_latents(b, lm.latent_dim)[0]
        path = (lerp if kind == "lerp" else slerp)(za, zb, torch.linspace(0, 1, steps))
        images = decode(lm, path)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    return {"latents": path.tolist(), "norms": path.norm(dim=1).tolist(), "images": images.round(decimals=4).tolist()}


def _dims(lm: LatentModel, dims: object) -> list[int]:
    if isinstance(dims, str):
        dims = [d for d in dims.replace(",", " ").split() if d]
    if not isinstance(dims, (list, tuple)) or not dims:
        raise ValueError("Choose at least one latent dimension.")
    try:
        chosen = [int(d) for d in dims]
    except (TypeError, ValueError):
        raise ValueError("Dimensions must be whole numbers.") from None
    if len(chosen) > 32:
        raise ValueError("At most 32 dimensions at once.")
    for d in chosen:
        if not 0 <= d < lm.latent_dim:
            raise ValueError(
                f"Dimension {d} is out of range: this model has {lm.latent_dim} (0 to {lm.latent_dim - 1})."
            )
    return chosen


LIVE_DIMS = 10  # sliders in the live editor: the first dimensions of the latent


def live_start(model: str, seed: int):
    """Put the seed's latent on the sliders (its first LIVE_DIMS dimensions) and decode it."""
    lm = _model(model)
    try:
        z = sample_z(lm.latent_dim, 1, check_int("seed", seed, 0, 2**32 - 1))[0]
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    values = [round(float(v), 2) for v in z[:LIVE_DIMS]]
    visible = [gr.Slider(value=v, visible=True) for v in values] + [
        gr.Slider(visible=False) for _ in range(LIVE_DIMS - len(values))
    ]
    return *visible, grid_image(decode(lm, z[None]), columns=1, px=192)


def live_edit(model: str, seed: int, *values: float) -> Image.Image:
    """The seed's latent with its first dimensions set by the sliders, decoded."""
    lm = _model(model)
    try:
        z = sample_z(lm.latent_dim, 1, check_int("seed", seed, 0, 2**32 - 1))[0]
        n = min(LIVE_DIMS, lm.latent_dim)
        z[:n] = check_latents(
            [check_float(f"z{i}", v, -MAX_ABS_LATENT, MAX_ABS_LATENT) for i, v in enumerate(values[:n])], n
        )[0]
        return grid_image(decode(lm, z[None]), columns=1, px=192)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def traversal(model: str, seed: int, dims: object, span: float, steps: int) -> Image.Image:
    lm = _model(model)
    try:
        chosen = _dims(lm, dims)
        steps = check_int("steps", steps, 2, 16)
        z0 = sample_z(lm.latent_dim, 1, check_int("seed", seed, 0, 2**32 - 1))[0]
        images = decode(lm, traversal_z(z0, chosen, check_float("range", span, 0.1, 10.0), steps))
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    return grid_image(images, columns=steps)


def traverse(
    model: str = "", seed: int = SEED, dims: list[int] | None = None, span: float = TRAVERSAL_RANGE, steps: int = 7
) -> dict:
    """Vary each of `dims` from −span to +span around the latent of `seed`; images are dims × steps."""
    lm = _model(model or catalog.default_model("latent", runtime.get().settings.models))
    try:
        chosen = _dims(lm, dims if dims is not None else [0])
        steps = check_int("steps", steps, 2, 16)
        z0 = sample_z(lm.latent_dim, 1, check_int("seed", seed, 0, 2**32 - 1))[0]
        images = decode(lm, traversal_z(z0, chosen, check_float("span", span, 0.1, 10.0), steps))
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    return {"dims": chosen, "images": images.round(decimals=4).tolist()}


def vae_anatomy(model: str, sketch, upload):
    """Posterior μ, σ, samples, reconstruction and per-dimension KL for a drawing or an upload."""
    lm = _model(model)
    try:
        image = open_upload(upload) if upload else sketch
        if lm.kind != "vae":
            raise ValueError("Only a VAE has an encoder: pick a VAE model for this view.")
        x = to_model_input(image, lm.model.size, lm.model.channels)
        post = posterior(lm, x)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    dims = [f"z{i}" for i in range(len(post.mu))]
    kl = pd.DataFrame({"dimension": dims, "KL (nats)": post.kl.numpy()})
    stats = pd.DataFrame(
        {"dimension": dims, "μ": post.mu.double().numpy().round(3), "σ": post.sigma.double().numpy().round(3)}
    )
    return (
        grid_image(torch.cat([x, post.reconstruction]), columns=2, px=96),
        grid_image(post.samples, columns=8),
        kl,
        stats,
    )


def _dataset(lm: LatentModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, dict]:
    """The model's own data: (images, labels, known factors or None, legend for the map)."""
    return _data(lm.model.channels, lm.model.size)


@functools.lru_cache(maxsize=2)
def _data(channels: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, dict]:
    """Digits are labelled by digit; shapes by which third of the colour range they are in, a
    factor the shapes VAE encodes (it does not encode shape), each dot drawn in its third's middle
    colour. Made once: rendering the shapes takes a moment."""
    from training.datasets import digits, hue_rgb, shapes
    from training.evaluate import COLOUR_BANDS

    if channels == 3:
        data = shapes(count=2000, seed=1)  # not the training draw
        bands = (data["factors"][:, 1] * 3).long().clamp(max=2)
        legend = {"names": COLOUR_BANDS, "palette": tuple(hue_rgb((b + 0.5) / 3) for b in range(3))}
        return data["x_train"], bands, data["factors"], legend
    data = digits(size=size)
    images, labels = torch.cat([data["x_train"], data["x_test"]]), torch.cat([data["y_train"], data["y_test"]])
    return images, labels, None, {}


def _map(model: str) -> tuple[LatentModel, LatentMap]:
    """The map over the model's own dataset."""
    lm = _model(model)
    try:
        if lm.kind != "vae":
            raise ValueError("The map needs an encoder: pick a VAE (a GAN has no way to place an image).")
        images, labels, _, legend = _dataset(lm)
        return lm, latent_map(lm, images, labels, **legend)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


TRAVERSED = 4  # the traversal starts on this many dimensions


def usage(model: str):
    """On picking a model: the traversal's dimensions (a VAE's most used first) and the usage table."""
    lm = _model(model)
    if lm.kind != "vae":
        dims = " ".join(str(d) for d in range(min(TRAVERSED, lm.latent_dim)))
        return dims, pd.DataFrame({"dimension": [], "KL (nats)": []})
    images, _, factors, _ = _dataset(lm)
    table = dimension_usage(lm, images, factors)
    return " ".join(str(d) for d in table["dimension"][:TRAVERSED]), table


def usage_once(model: str, table: pd.DataFrame | None):
    """The first time the Traversal tab opens on a VAE, fill in what `usage` would (a GAN keeps
    whatever dimensions were typed)."""
    if (table is not None and len(table) > 0) or _model(model).kind != "vae":
        return gr.skip(), gr.skip()
    return usage(model)


def show_map(model: str) -> Image.Image:
    return map_image(_map(model)[1])


def decode_map_point(model: str, evt: gr.SelectData) -> Image.Image:
    """A click on the map decodes the latent under the cursor."""
    lm, m = _map(model)
    x, y = (int(v) for v in evt.index)
    if not (0 <= x < MAP_PX and 0 <= y < MAP_PX):
        return gr.skip()
    z = m.to_latent(x / MAP_PX, 1 - y / MAP_PX)
    return grid_image(decode(lm, z[None]), columns=1, px=160)


_runs: dict[str, TrainingRun] = {}  # session → its training run
_runs_lock = threading.Lock()


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "no-session"


def lab_view(request: gr.Request):
    """The current run's sample grid (fixed latents), loss curves and status."""
    with _runs_lock:
        run = _runs.get(_session(request))
    if run is None:
        return gr.skip(), gr.skip(), "No training run. Pick GAN or VAE and press **Start**."
    state = "training" if run.running else "paused"
    last = ", ".join(f"{k} {v:.3f}" for k, v in run.history[-1].items() if k != "step") if run.history else ""
    return (
        grid_image(run.samples(), columns=8),
        run.loss_frame(),
        f"**{run.kind.upper()}** · step {run.steps:,} · {state} · {last}",
    )


def lab_start(kind: str, request: gr.Request):
    session = _session(request)
    with _runs_lock:
        run = _runs.get(session)
        if run is not None and run.kind != kind:
            run.stop()
            del _runs[session]
            run = None
        if run is None:
            if len(_runs) >= LAB_MAX_RUNS:
                raise gr.Error(f"{LAB_MAX_RUNS} training runs are going already; try again when one stops.")
            run = _runs[session] = TrainingRun(kind)
    run.start()
    return lab_view(request)


def lab_pause(request: gr.Request):
    with _runs_lock:
        run = _runs.get(_session(request))
    if run is not None:
        run.pause()
    return lab_view(request)


def lab_step(kind: str, request: gr.Request):
    session = _session(request)
    with _runs_lock:
        run = _runs.get(session)
        if run is None:
            if len(_runs) >= LAB_MAX_RUNS:
                raise gr.Error(f"{LAB_MAX_RUNS} training runs are going already; try again when one stops.")
            run = _runs[session] = TrainingRun(kind)
    run.pause()
    run.step()
    return lab_view(request)


def stop_session_runs(request: gr.Request) -> None:
    """When a browser tab closes, its training run stops and frees its worker."""
    lab_stop(request)


def lab_stop(request: gr.Request):
    """Stop and free this session's run (also called when the browser tab closes)."""
    with _runs_lock:
        run = _runs.pop(_session(request), None)
    if run is not None:
        run.stop()
    return None, None, "Stopped. The worker is freed."


def photos(model: str, first: str | None, second: str | None, steps: int):
    """The image-autoencoder section: upload one or two photos."""
    lm = _model(model)
    try:
        steps = check_int("steps", steps, 2, 16)
        images = [open_upload(path) for path in (first, second) if path]
        result = photo_round_trip(lm, images, steps)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    px = 160
    pairs = grid_image(torch.cat([result.inputs, result.reconstructions]), columns=len(result.inputs), px=px)
    note = (
        f"Latent: {' × '.join(map(str, result.latent_shape))} numbers per image "
        f"({PHOTO_PX}×{PHOTO_PX}×3 pixels → {np.prod(result.latent_shape):,} latents, "
        f"{PHOTO_PX * PHOTO_PX * 3 / np.prod(result.latent_shape):.0f}× smaller)."
    )
    straight = grid_image(result.lerp, columns=steps, px=px) if result.lerp is not None else None
    curved = grid_image(result.slerp, columns=steps, px=px) if result.slerp is not None else None
    return pairs, grid_image(result.samples, columns=len(result.samples), px=px), straight, curved, note


PAIRS = {"digits": ("digits-gan", "digits-vae"), "shapes": ("shapes-gan", "shapes-vae")}  # by dataset


def side_by_side(model: str, seed: int, count: int, truncation: float, temperature: float):
    """The bundled GAN and VAE of the picked model's dataset (digits unless it is a shapes model),
    on the same request."""
    gan, vae = PAIRS.get(str(model).split("-")[0], PAIRS["digits"])
    return sample_grid(gan, seed, count, truncation, 1.0), sample_grid(vae, seed, count, 1.0, temperature)


def build_ui() -> None:
    rt = runtime.get()
    heavy = dict(concurrency_id="gpu", concurrency_limit=rt.concurrency, api_visibility="private")
    choices = [(spec.label(), spec.key) for spec in catalog.models_for("latent") if spec.bundled]
    default = catalog.default_model("latent", rt.settings.models)

    with gr.Row():
        model = gr.Dropdown(choices, value=default, label="Model", scale=2)
        seed = gr.Number(SEED, precision=0, label="seed", info="Same seed = same latents = same images.")
        count = gr.Slider(1, 64, COUNT, step=1, label="count")
        truncation = gr.Slider(
            0,
            2,
            TRUNCATION,
            step=0.05,
            label="truncation (GAN)",
            info="Scale of z: below 1 = typical, above 1 = varied.",
        )
        temperature = gr.Slider(
            0, 2, TEMPERATURE, step=0.05, label="temperature (VAE)", info="Scale of the prior draw, same trade."
        )
    with gr.Tabs():
        with gr.Tab("Samples"):
            sample = gr.Button("Sample", variant="primary", elem_id="latent-sample")
            samples = gr.Image(label="Samples", type="pil", elem_id="latent-samples", interactive=False)
        with gr.Tab("GAN vs VAE"):
            gr.Markdown("The bundled GAN and VAE trained on the same data as the picked model, same seed and count.")
            compare = gr.Button("Sample both", elem_id="latent-compare")
            with gr.Row():
                gan_grid = gr.Image(label="GAN", type="pil", interactive=False)
                vae_grid = gr.Image(label="VAE", type="pil", interactive=False)
        with gr.Tab("Interpolation"):
            with gr.Row():
                seed_a = gr.Number(1, precision=0, label="seed A")
                seed_b = gr.Number(2, precision=0, label="seed B")
                steps = gr.Slider(2, 16, STEPS, step=1, label="steps")
                walk = gr.Button("Interpolate", elem_id="latent-interpolate")
            with gr.Accordion("…or between two images (VAE: each encoded to its posterior mean)", open=False):
                with gr.Row():
                    image_a = gr.File(label="image A", file_types=["image"], type="binary", elem_id="latent-image-a")
                    image_b = gr.File(label="image B", file_types=["image"], type="binary", elem_id="latent-image-b")
                walk_images = gr.Button("Interpolate images", elem_id="latent-interpolate-images")
            lerp_image = gr.Image(label="lerp (straight line)", type="pil", interactive=False, elem_id="latent-lerp")
            slerp_image = gr.Image(label="slerp (great circle)", type="pil", interactive=False)
            norm_plot = gr.LinePlot(x="t", y="norm", color="path", label="Latent norm along each path", height=240)
            gifs = gr.File(label="GIFs", file_count="multiple")
        with gr.Tab("Traversal") as traversal_tab:
            with gr.Row():
                dims = gr.Textbox(
                    "0 1 2 3",
                    label="dimensions",
                    info="Which latent dimensions, e.g. 0 1 2 3. A VAE starts on its most used ones.",
                    elem_id="latent-dims",
                )
                span = gr.Slider(0.5, 5, TRAVERSAL_RANGE, step=0.5, label="range (± σ)")
                traverse_steps = gr.Slider(3, 11, 7, step=1, label="steps")
                turn = gr.Button("Traverse", elem_id="latent-traverse")
            traversal_image = gr.Image(
                label="Rows: dimensions; columns: −range … +range",
                type="pil",
                interactive=False,
                elem_id="latent-traversal",
            )
            usage_table = gr.Dataframe(
                label="Dimensions by use (mean KL on the model's data; for shapes, the factor each follows)",
                interactive=False,
                elem_id="latent-usage",
            )
        with gr.Tab("Live edit"):
            gr.Markdown("Load a seed's latent, then move one dimension at a time and watch the image follow.")
            load_live = gr.Button("Load seed", elem_id="latent-live-load")
            with gr.Row():
                with gr.Column():
                    live_sliders = [gr.Slider(-4, 4, 0, step=0.05, label=f"z{i}") for i in range(LIVE_DIMS)]
                live_image = gr.Image(label="Decoded", type="pil", interactive=False, elem_id="latent-live")
        with gr.Tab("VAE anatomy"):
            gr.Markdown("Draw a digit (light on dark or dark on light) or upload an image; pick a VAE model.")
            with gr.Row():
                sketch = gr.Sketchpad(
                    label="Draw (pick the brush)",
                    type="pil",
                    canvas_size=(192, 192),
                    brush=gr.Brush(default_size=16, colors=["#000000"]),
                    elem_id="latent-sketch",
                )
                upload = gr.File(label="…or upload an image", file_types=["image"], type="binary")
            inspect = gr.Button("Encode", elem_id="latent-encode")
            with gr.Row():
                recon = gr.Image(
                    label="Input → reconstruction from μ",
                    type="pil",
                    interactive=False,
                    elem_id="latent-reconstruction",
                )
                post_samples = gr.Image(label="Samples z ~ N(μ, σ²)", type="pil", interactive=False)
            with gr.Row():
                kl_plot = gr.BarPlot(
                    x="dimension", y="KL (nats)", label="KL per dimension: which are in use", height=240
                )
                stats = gr.Dataframe(label="Posterior", interactive=False)
        with gr.Tab("Real images (AutoencoderKL)"):
            gr.Markdown(
                "Stable Diffusion's image autoencoder squeezes a photo into a small latent image and back. "
                "Upload one photo (reconstruction and posterior samples) or two (interpolation between them). "
                "Needs the model from the Hugging Face Hub."
            )
            with gr.Row():
                photo_model = gr.Dropdown(
                    [(s.label(), s.key) for s in catalog.models_for("latent") if not s.bundled],
                    value="sd-vae-ft-mse",
                    label="Autoencoder",
                    allow_custom_value=rt.settings.allow_any_model,
                )
                first = gr.Image(label="Photo A", type="filepath", height=200)
                second = gr.Image(label="Photo B (optional)", type="filepath", height=200)
                photo_steps = gr.Slider(2, 10, 6, step=1, label="interpolation steps")
            run_photos = gr.Button("Encode → decode", elem_id="latent-photos")
            photo_note = gr.Markdown()
            with gr.Row():
                photo_pairs = gr.Image(label="Inputs (top) and reconstructions (bottom)", type="pil", interactive=False)
                photo_samples = gr.Image(label="Posterior samples of photo A", type="pil", interactive=False)
            photo_lerp = gr.Image(label="lerp A → B", type="pil", interactive=False)
            photo_slerp = gr.Image(label="slerp A → B", type="pil", interactive=False)
        with gr.Tab("Latent map"):
            gr.Markdown(
                "Every digit of the dataset placed by the VAE's encoder (first two principal axes of μ). "
                "Click anywhere to decode that point."
            )
            draw_map = gr.Button("Show the map (VAE)", elem_id="latent-map-button")
            with gr.Row():
                map_view = gr.Image(label="Latent map", type="pil", interactive=False, elem_id="latent-map")
                decoded = gr.Image(
                    label="Decoded at the click", type="pil", interactive=False, elem_id="latent-map-decoded"
                )
        with gr.Tab("Training lab"):
            gr.Markdown(
                "Train a small GAN or VAE on the digits right here, on the CPU. The grid decodes the same 16 "
                "latent points every time, so you watch *them* turn into digits."
            )
            with gr.Row():
                lab_kind = gr.Radio(["vae", "gan"], value="vae", label="model to train")
                start = gr.Button("Start", variant="primary", elem_id="lab-start")
                pause = gr.Button("Pause", elem_id="lab-pause")
                one_step = gr.Button("Single step", elem_id="lab-step")
                stop = gr.Button("Stop", variant="stop", elem_id="lab-stop")
            lab_status = gr.Markdown("No training run.", elem_id="lab-status")
            with gr.Row():
                lab_grid = gr.Image(label="Samples from fixed latents", type="pil", interactive=False)
                lab_losses = gr.LinePlot(x="step", y="loss", color="curve", label="Losses", height=260)
            lab_timer = gr.Timer(2.0)
    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS)

    lab_outputs = [lab_grid, lab_losses, lab_status]
    light = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
    start.click(lab_start, lab_kind, lab_outputs, **light)
    pause.click(lab_pause, None, lab_outputs, **light)
    one_step.click(lab_step, lab_kind, lab_outputs, **light)
    stop.click(lab_stop, None, lab_outputs, **light)
    lab_timer.tick(lab_view, None, lab_outputs, **light)
    draw_map.click(show_map, model, map_view, **heavy)
    run_photos.click(
        photos,
        [photo_model, first, second, photo_steps],
        [photo_pairs, photo_samples, photo_lerp, photo_slerp, photo_note],
        **heavy,
    )
    map_view.select(decode_map_point, model, decoded, **heavy)
    sample.click(sample_grid, [model, seed, count, truncation, temperature], samples, **heavy)
    compare.click(side_by_side, [model, seed, count, truncation, temperature], [gan_grid, vae_grid], **heavy)
    walk_outputs = [lerp_image, slerp_image, norm_plot, gifs]
    walk.click(interpolation, [model, seed_a, seed_b, steps], walk_outputs, **heavy)
    walk_images.click(image_interpolation, [model, image_a, image_b, steps], walk_outputs, **heavy)
    model.change(usage, model, [dims, usage_table], **heavy)
    traversal_tab.select(usage_once, [model, usage_table], [dims, usage_table], **heavy)
    turn.click(traversal, [model, seed, dims, span, traverse_steps], traversal_image, **heavy)
    load_live.click(live_start, [model, seed], [*live_sliders, live_image], **heavy)
    for slider in live_sliders:
        slider.release(live_edit, [model, seed, *live_sliders], live_image, **heavy)
    inspect.click(vae_anatomy, [model, sketch, upload], [recon, post_samples, kl_plot, stats], **heavy)
    public = dict(concurrency_id="gpu", concurrency_limit=rt.concurrency)
    gr.api(sample_latents, api_name="sample_latents", **public)
    gr.api(interpolate, api_name="interpolate", **public)
    gr.api(traverse, api_name="traverse", **public)


if __name__ == "__main__":
    from shared.settings import parse_settings

    runtime.configure(parse_settings())
    with gr.Blocks(title="Latent sampling · GenAI Playground") as demo:
        build_ui()
    demo.queue().launch()
