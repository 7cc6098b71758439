"""GANs and VAEs: touch the latent space.

This tab samples a GAN and a VAE, walks between latent points (straight line vs great circle),
turns one latent dimension at a time and edits a latent by hand; ``HOW_IT_WORKS`` below explains
the models. Images into the latent space (the VAE on a drawing, the walk between two images, the
latent map, photos) live in ``demos/latent_encoding.py``, the live training lab in
``demos/training_lab.py``; ``build_ui`` here builds them all into one tab.

Each action has one validated core (``_sample``, ``walk``, ``_traverse``, …): a model key
and plain values in, CPU tensors out, run on a model worker through ``shared.compute``. The UI
handler and the public API function of an action both call it.

Run alone: ``python -m demos.latent_sampling``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from demos import _glue, training_lab
from demos._glue import user_error
from shared import catalog, compute, runtime, scratch
from shared.datasets import FACTORS, factor_scores, labelled
from shared.images import gif_bytes, grid_image, open_image
from shared.loaders import LatentModel
from shared.validation import check_choice, check_float, check_int, check_seed

# --- knobs ----------------------------------------------------------------------------------

SEED = 0
COUNT = 16  # images in a sample grid
MAX_COUNT = 256  # …at most (the API too); also the most images any one request decodes
TRUNCATION = 1.0  # GAN: scale of z; < 1 trades variety for typical-looking images
TEMPERATURE = 1.0  # VAE: scale of the prior draw, same trade
MAX_SCALE = 3.0  # truncation, temperature and the API's scale stop here
NUM_FRAMES = 8  # interpolation frames
MAX_FRAMES = 64  # …at most
INTERPOLATIONS = ("lerp", "slerp")
TRAVERSAL_RANGE = 3.0  # ± this many standard deviations
TRAVERSAL_FRAMES = 7  # values per traversed dimension
MAX_TRAVERSAL_FRAMES = 16
MAX_DIMS = 32  # traversed dimensions at once (dimensions × frames ≤ MAX_COUNT: 512 images took 3.5 s)
MAX_ABS_LATENT = 100.0  # latent values beyond this are refused (N(0, I) is almost never past 6)
DISPLAY_PX = 64  # each generated image is shown at this size
LIVE_DIMS = 10  # sliders in the live editor: the first dimensions of the latent
TRAVERSED = 4  # the traversal starts on this many dimensions
UNUSED_KL = 0.05  # nats: a dimension this close to the prior carries nothing

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


# --- latent arithmetic and views: pure functions (model in, CPU tensors out) ----------------


def check_latents(z: object, dim: int, name: str = "latents") -> torch.Tensor:
    """Untrusted latents (lists or tensors) as an (N, dim) float tensor, or a clear ValueError
    naming the parameter (numbers too large for a float included)."""
    try:
        tensor = torch.as_tensor(z, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise ValueError(f"{name} must be numbers (each within ±{MAX_ABS_LATENT:g}): a list of vectors.") from None
    if tensor.ndim == 1:
        tensor = tensor[None]
    if tensor.ndim != 2 or tensor.shape[1] != dim:
        raise ValueError(f"Each vector of {name} must have {dim} numbers; got shape {tuple(tensor.shape)}.")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contain NaN or infinity (or a number too large for a float).")
    if tensor.abs().max() > MAX_ABS_LATENT:
        raise ValueError(
            f"Values of {name} must lie within ±{MAX_ABS_LATENT:g} (a Gaussian latent is almost never past 6)."
        )
    return tensor


def check_latent(name: str, z: object, dim: int) -> torch.Tensor:
    """One untrusted latent vector as a (dim,) tensor; several rows are refused, never cut to the first."""
    tensor = check_latents(z, dim, name)
    if len(tensor) != 1:
        raise ValueError(f"{name} must be one latent vector of {dim} numbers; got {len(tensor)} rows of them.")
    return tensor[0]


def sample_z(dim: int, count: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """count latents ~ N(0, scale²·I), the same for the same seed on any machine (CPU generator)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, dim, generator=generator) * scale


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line: (steps, d)."""
    return a + (b - a) * t[:, None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Great-circle interpolation (Shoemake): (steps, d). Falls back to lerp for (anti)parallel ends
    and for an end at the origin (no direction to turn through)."""
    if a.norm() == 0 or b.norm() == 0:
        return lerp(a, b, t)
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


def _device(lm: LatentModel) -> torch.device:
    return next(lm.model.parameters()).device


@torch.no_grad()
def decode(lm: LatentModel, z: torch.Tensor) -> torch.Tensor:
    """Latents (N, d) → images (N, C, H, W) in [0, 1], on the CPU."""
    if lm.kind == "gan":
        images = lm.model(z.to(_device(lm)))
    elif lm.kind == "vae":
        images = lm.model.decode(z.to(_device(lm)))
    else:
        raise ValueError("This model decodes latent images, not vectors: use the real-image section.")
    if not torch.isfinite(images).all():
        raise ValueError("The model produced non-finite pixels for these latents.")
    return images.float().cpu()


@torch.no_grad()
def encode(lm: LatentModel, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A VAE's posterior of each image (N, C, H, W) in [0, 1]: μ and log σ², (N, d) each, on the CPU."""
    if lm.kind != "vae":
        raise ValueError("Only a VAE has an encoder: pick a VAE model for this view.")
    mu, logvar = lm.model.encode(images.to(_device(lm)))
    return mu.float().cpu(), logvar.float().cpu()


def dimension_usage(lm: LatentModel, images: torch.Tensor, factors: torch.Tensor | None = None) -> pd.DataFrame:
    """Which latent dimensions a VAE uses, most used first: each one's mean KL over a dataset and,
    where the data's factors are known (the shapes), the factor it follows most and how closely
    (|correlation| or correlation ratio, 0–1) — so a traversal of the top rows reads as
    "this one moves the shape up and down"."""
    if lm.kind != "vae":
        raise ValueError("Only a VAE has an encoder to measure this: a GAN's dimensions are all used alike.")
    mu, logvar = encode(lm, images)
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).mean(dim=0)
    order = kl.argsort(descending=True).tolist()
    table = pd.DataFrame({"dimension": order, "KL (nats)": kl[order].double().numpy().round(3)})
    if factors is not None:
        scores = factor_scores(mu.numpy(), factors.numpy())[order]
        rows = [(row, np.argsort(-row)) for row in scores]
        used = kl[order].numpy() >= UNUSED_KL  # an unused dimension's μ barely moves: its scores mean nothing
        table["follows"] = [FACTORS[o[0]] if u else "— (unused)" for (_, o), u in zip(rows, used, strict=True)]
        table["score"] = [f"{r[o[0]]:.2f}" if u else "" for (r, o), u in zip(rows, used, strict=True)]
        table["runner-up"] = [
            f"{FACTORS[o[1]]} {r[o[1]]:.2f}" if u else "" for (r, o), u in zip(rows, used, strict=True)
        ]
    return table


def traversal_picture(lm: LatentModel, rows: int = 4, steps: int = 9, span: float = 2.5) -> Image.Image:
    """A VAE's `rows` most used dimensions, each turned from −span to +span around the origin,
    labelled with the dimension and (for the shapes) the factor it follows: the README's picture
    (``python -m docs.make_pictures``)."""
    images, _, factors, _ = labelled(lm.dataset)
    table = dimension_usage(lm, images, factors).head(rows)
    z = traversal_z(torch.zeros(lm.latent_dim), table["dimension"].tolist(), span, steps)
    grid = grid_image(decode(lm, z), columns=steps, px=DISPLAY_PX)
    label_w, row_h = 120, grid.height / rows
    canvas = Image.new("RGB", (grid.width + label_w, grid.height), "white")
    canvas.paste(grid, (label_w, 0))
    draw = ImageDraw.Draw(canvas)
    for i, row in enumerate(table.itertuples(index=False)):
        text = f"z{row[0]}" + (f"\n{row.follows} {row.score}" if factors is not None else "")
        draw.multiline_text((8, i * row_h + row_h / 2 - 14), text, fill="black", font_size=16)
    return canvas


# --- images in ------------------------------------------------------------------------------


def open_upload(path_or_bytes: str | bytes) -> Image.Image:
    """An uploaded file opened under the app's pixel cap (checked before decoding); ValueError if it
    is no image or too large."""
    return open_image(path_or_bytes, runtime.get().settings.max_image_pixels)


# --- model work: one validated core per action --------------------------------------------------
# Plain inputs (a model key, numbers, lists, upload bytes) → CPU data; handlers run them through
# compute.run. Each validates under the names its caller gives (what the client sent).


def _sample(
    model: str, seed: object, count: object, scale: object, latents=None, *, count_as="num_images", scale_as="scale"
) -> tuple[str, torch.Tensor, torch.Tensor]:
    """Sampling (the grid, /sample_latents): the latents — given, or `count` drawn from `seed` and
    scaled — and their images: (model key, (N, d), (N, C, H, W)). `count` and `scale` are checked
    under the names `count_as` and `scale_as`."""
    lm = runtime.latent_model(model)
    if latents is not None:
        z = check_latents(latents, lm.latent_dim)
        if len(z) > MAX_COUNT:
            raise ValueError(f"At most {MAX_COUNT} latents at once.")
    else:
        seed, count = check_seed(seed), check_int(count_as, count, 1, MAX_COUNT)
        z = sample_z(lm.latent_dim, count, seed, check_float(scale_as, scale, 0.0, MAX_SCALE))
    return lm.key, z, decode(lm, z)


def walk(
    model: str, a: object, b: object, frames: object, kinds=INTERPOLATIONS, *, seeds=False, frames_as="num_frames"
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Interpolation (the Interpolation tab, /interpolate; the walk between two images too): for
    each of `kinds`, the path between latents `a` and `b` (or, with `seeds`, the latents of seeds
    `a` and `b`), (frames, d), and its images."""
    lm = runtime.latent_model(model)
    for kind in kinds:
        check_choice("kind", kind, INTERPOLATIONS)
    frames = check_int(frames_as, frames, 2, MAX_FRAMES)
    # 1. the two ends, (d,) each
    if seeds:
        seed_a, seed_b = check_seed(a, name="seed A"), check_seed(b, name="seed B")
        a, b = sample_z(lm.latent_dim, 1, seed_a)[0], sample_z(lm.latent_dim, 1, seed_b)[0]
    elif a is None or b is None:
        raise ValueError("Give both latent vectors a and b.")
    else:
        a, b = check_latent("a", a, lm.latent_dim), check_latent("b", b, lm.latent_dim)
    # 2. each path between them, (frames, d), and 3. its images
    t = torch.linspace(0, 1, frames)
    paths = {kind: (lerp if kind == "lerp" else slerp)(a, b, t) for kind in kinds}
    return {kind: (path, decode(lm, path)) for kind, path in paths.items()}


def _dims(latent_dim: int, dims: object) -> list[int]:
    """Untrusted dimension numbers (a list, or text like "0 1, 2") within the model's latent."""
    if isinstance(dims, str):
        dims = [d for d in dims.replace(",", " ").split() if d]
    if not isinstance(dims, (list, tuple)) or not dims:
        raise ValueError("Choose at least one latent dimension.")
    if len(dims) > MAX_DIMS:
        raise ValueError(f"At most {MAX_DIMS} dimensions at once.")
    chosen = [check_int("dims", d, -(2**31), 2**31) for d in dims]
    for d in chosen:
        if not 0 <= d < latent_dim:
            raise ValueError(f"Dimension {d} is out of range: this model has {latent_dim} (0 to {latent_dim - 1}).")
    return chosen


def _traverse(
    model: str, seed: object, dims: object, span: object, num_frames: object, *, frames_as="num_frames", span_as="span"
) -> tuple[list[int], torch.Tensor]:
    """Traversal (the Traversal tab, /traverse): each of `dims` turned from −span to +span around
    the seed's latent: (dims, images (len(dims)·frames, C, H, W))."""
    lm = runtime.latent_model(model)
    chosen = _dims(lm.latent_dim, dims)
    num_frames = check_int(frames_as, num_frames, 2, MAX_TRAVERSAL_FRAMES)
    if len(chosen) * num_frames > MAX_COUNT:  # the cost cap: images decoded and sent back
        raise ValueError(
            f"{len(chosen)} dimensions × {num_frames} {frames_as} = {len(chosen) * num_frames} images, past the "
            f"{MAX_COUNT} one request may make: fewer dimensions or {frames_as} (at most "
            f"{MAX_COUNT // len(chosen)} {frames_as} for {len(chosen)} dimensions)."
        )
    z0 = sample_z(lm.latent_dim, 1, check_seed(seed))[0]
    span = check_float(span_as, span, 0.1, 10.0)
    return chosen, decode(lm, traversal_z(z0, chosen, span, num_frames))


def _live(model: str, seed: object, values: list | None = None) -> tuple[list[float], torch.Tensor]:
    """The seed's latent with its first dimensions set to `values` (None: as drawn), decoded:
    (its first LIVE_DIMS values, image (1, C, H, W))."""
    lm = runtime.latent_model(model)
    z = sample_z(lm.latent_dim, 1, check_seed(seed))[0]
    n = min(LIVE_DIMS, lm.latent_dim)
    if values is not None:
        z[:n] = check_latents(
            [check_float(f"z{i}", v, -MAX_ABS_LATENT, MAX_ABS_LATENT) for i, v in enumerate(values[:n])], n
        )[0]
    return z[:n].tolist(), decode(lm, z[None])


def _usage(model: str) -> tuple[str, pd.DataFrame]:
    """The traversal's starting dimensions (a VAE's most used first) and the usage table."""
    lm = runtime.latent_model(model)
    if lm.kind != "vae":  # a GAN's dimensions are all used alike: the first few
        first = range(min(TRAVERSED, lm.latent_dim))
        return " ".join(map(str, first)), pd.DataFrame({"dimension": [], "KL (nats)": []})
    images, _, factors, _ = labelled(lm.dataset)
    table = dimension_usage(lm, images, factors)
    return " ".join(str(d) for d in table["dimension"][:TRAVERSED]), table


# --- Gradio glue: each handler runs its action's core on a worker and pictures the result -------


def _declared(model: str) -> catalog.ModelSpec:
    """What the catalog declares about a model (its kind and data set), without loading it."""
    return catalog.resolve(model, "latent", allow_any_model=runtime.get().settings.allow_any_model)


def sample_grid(model: str, seed: int, count: int, truncation: float, temperature: float) -> Image.Image:
    """The Samples tab: `count` images from `seed`, z scaled by truncation (GAN) or temperature (VAE)."""
    try:
        name, scale = ("truncation", truncation) if _declared(model).kind == "gan" else ("temperature", temperature)
        _, _, images = compute.run(_sample, model, seed, count, scale, count_as="count", scale_as=name)
    except Exception as exc:
        raise user_error(exc, "Sampling") from None
    return grid_image(images, columns=min(8, len(images)), px=DISPLAY_PX)


def side_by_side(model: str, seed: int, count: int, truncation: float, temperature: float):
    """The bundled GAN and VAE trained on the picked model's data set (the digits' pair for a model
    of another), on the same request."""
    try:
        gan, vae = catalog.latent_pair(_declared(model).dataset)
    except Exception as exc:
        raise user_error(exc, "Sampling") from None
    return sample_grid(gan, seed, count, truncation, 1.0), sample_grid(vae, seed, count, 1.0, temperature)


def interpolation(model: str, seed_a: int, seed_b: int, steps: int):
    """Lerp and slerp between two seeds' latents, side by side, with the latent norm along each."""
    try:
        walks = compute.run(walk, model, seed_a, seed_b, steps, seeds=True, frames_as="steps")
    except Exception as exc:
        raise user_error(exc, "Interpolation") from None
    return walk_views(walks)


def walk_views(walks: dict[str, tuple[torch.Tensor, torch.Tensor]]):
    """Both paths as pictures, the norm plot (with √d, a random latent's typical norm) and both
    walks as GIFs."""
    (straight, straight_images), (curved, curved_images) = walks["lerp"], walks["slerp"]
    steps, dim = straight.shape
    t = np.linspace(0, 1, steps)
    typical = np.full(steps, math.sqrt(dim))
    norms = pd.DataFrame(
        {
            "t": np.concatenate([t] * 3),
            "norm": np.concatenate([straight.norm(dim=1).numpy(), curved.norm(dim=1).numpy(), typical]),
            "path": ["lerp"] * steps + ["slerp"] * steps + ["√d (typical norm)"] * steps,
        }
    )
    folder = scratch.folder("interpolation")  # swept: old walks' GIFs are deleted
    (folder / "lerp.gif").write_bytes(gif_bytes(straight_images))
    (folder / "slerp.gif").write_bytes(gif_bytes(curved_images))
    return (
        grid_image(straight_images, columns=steps, px=DISPLAY_PX),
        grid_image(curved_images, columns=steps, px=DISPLAY_PX),
        norms,
        [str(folder / "lerp.gif"), str(folder / "slerp.gif")],
    )


def traversal(model: str, seed: int, dims: object, span: float, steps: int) -> Image.Image:
    try:
        chosen, images = compute.run(_traverse, model, seed, dims, span, steps, frames_as="steps", span_as="range")
    except Exception as exc:
        raise user_error(exc, "Traversal") from None
    return grid_image(images, columns=len(images) // len(chosen), px=DISPLAY_PX)


def live_start(model: str, seed: int):
    """Put the seed's latent on the sliders (its first LIVE_DIMS dimensions) and decode it."""
    try:
        values, image = compute.run(_live, model, seed)
    except Exception as exc:
        raise user_error(exc, "Decoding") from None
    shown = [gr.Slider(value=round(v, 2), visible=True) for v in values]
    hidden = [gr.Slider(visible=False) for _ in range(LIVE_DIMS - len(values))]
    return *shown, *hidden, grid_image(image, columns=1, px=192)


def live_edit(model: str, seed: int, *values: float) -> Image.Image:
    """The seed's latent with its first dimensions set by the sliders, decoded."""
    try:
        _, image = compute.run(_live, model, seed, list(values))
    except Exception as exc:
        raise user_error(exc, "Decoding") from None
    return grid_image(image, columns=1, px=192)


def usage(model: str):
    """On picking a model: the traversal's dimensions (a VAE's most used first) and the usage table."""
    try:
        return compute.run(_usage, model)
    except Exception as exc:
        raise user_error(exc, "Measuring the dimensions") from None


def usage_once(model: str, table: pd.DataFrame | None):
    """The first time the Traversal tab opens on a VAE, fill in what `usage` would (a GAN keeps
    whatever dimensions were typed)."""
    try:
        if (table is not None and len(table) > 0) or _declared(model).kind != "vae":
            return gr.skip(), gr.skip()
    except Exception as exc:
        raise user_error(exc, "Measuring the dimensions") from None
    return usage(model)


# --- the public API: the same cores; old parameter names still work, with a notice ------------


def _renamed(value: object, name: str, old_value: object, old_name: str, default: object, notices: list[str]):
    """(value, the name the client used): a renamed parameter's old name still works, noticed."""
    if old_value is None:
        return (default if value is None else value), name
    if value is not None:
        raise ValueError(f"Give {name} only: {old_name} is its old name.")
    notices.append(f"`{old_name}` is deprecated: use `{name}`.")
    return old_value, old_name


def sample_latents(
    model: str = "",
    seed: int = SEED,
    num_images: int | None = None,
    scale: float = 1.0,
    latents: list | None = None,
    count: int | None = None,
) -> dict:
    """Decode `latents` (a list of vectors), or `num_images` random ones (default 16) from `seed`
    scaled by `scale` (truncation for a GAN, temperature for a VAE). Returns the latents and the
    images as nested lists (num_images × channels × height × width, values in [0, 1]).
    (`count` is num_images' old name.)"""
    notices: list[str] = []
    try:
        num_images, name = _renamed(num_images, "num_images", count, "count", COUNT, notices)
        key, z, images = compute.run(
            _sample, model or _glue.default_model("latent"), seed, num_images, scale, latents, count_as=name
        )
    except Exception as exc:
        raise user_error(exc, "Sampling") from None
    return {"model": key, "latents": z.tolist(), "images": images.round(decimals=4).tolist(), "notices": notices}


def interpolate(
    model: str = "",
    a: list | None = None,
    b: list | None = None,
    num_frames: int | None = None,
    kind: str = "slerp",
    steps: int | None = None,
) -> dict:
    """Interpolate between latent vectors `a` and `b` (kind "lerp" or "slerp") in `num_frames`
    frames (default 8) and decode each. (`steps` is num_frames' old name.)"""
    notices: list[str] = []
    try:
        num_frames, name = _renamed(num_frames, "num_frames", steps, "steps", NUM_FRAMES, notices)
        model = model or _glue.default_model("latent")
        [(path, images)] = compute.run(walk, model, a, b, num_frames, (kind,), frames_as=name).values()
    except Exception as exc:
        raise user_error(exc, "Interpolation") from None
    return {
        "latents": path.tolist(),
        "norms": path.norm(dim=1).tolist(),
        "images": images.round(decimals=4).tolist(),
        "notices": notices,
    }


def traverse(
    model: str = "",
    seed: int = SEED,
    dims: list[int] | None = None,
    span: float = TRAVERSAL_RANGE,
    num_frames: int | None = None,
    steps: int | None = None,
) -> dict:
    """Vary each of `dims` (default [0]) from −span to +span around the latent of `seed`, in
    `num_frames` values each (default 7); images are dims × num_frames. (`steps` is num_frames'
    old name.)"""
    notices: list[str] = []
    try:
        num_frames, name = _renamed(num_frames, "num_frames", steps, "steps", TRAVERSAL_FRAMES, notices)
        model, dims = model or _glue.default_model("latent"), [0] if dims is None else dims
        chosen, images = compute.run(_traverse, model, seed, dims, span, num_frames, frames_as=name)
    except Exception as exc:
        raise user_error(exc, "Traversal") from None
    return {"dims": chosen, "images": images.round(decimals=4).tolist(), "notices": notices}


# --- the tab ------------------------------------------------------------------------------------


@dataclasses.dataclass
class LatentUI:
    """What build_ui hands back: the controls every sub-tab reads, and each sub-tab's parts."""

    model: gr.Dropdown
    seed: gr.Number
    count: gr.Slider
    truncation: gr.Slider
    temperature: gr.Slider
    tabs: dict[str, object] = dataclasses.field(default_factory=dict)  # sub-tab → what its builder returned


def heavy() -> dict:
    """Event settings of model work: one queue group with every tab's, at the runtime's concurrency."""
    return dict(concurrency_id="gpu", concurrency_limit=runtime.get().concurrency, api_visibility="private")


def _controls() -> LatentUI:
    with gr.Row():
        model = gr.Dropdown(
            _glue.model_choices("latent", bundled=True), value=_glue.default_model("latent"), label="Model", scale=2
        )
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
    return LatentUI(model, seed, count, truncation, temperature)


def _samples_tab(ui: LatentUI) -> gr.Image:
    with gr.Tab("Samples"):
        sample = gr.Button("Sample", variant="primary", elem_id="latent-sample")
        samples = gr.Image(label="Samples", type="pil", elem_id="latent-samples", interactive=False)
    sample.click(sample_grid, [ui.model, ui.seed, ui.count, ui.truncation, ui.temperature], samples, **heavy())
    return samples


def _compare_tab(ui: LatentUI) -> tuple[gr.Image, gr.Image]:
    with gr.Tab("GAN vs VAE"):
        gr.Markdown("The bundled GAN and VAE trained on the same data as the picked model, same seed and count.")
        compare = gr.Button("Sample both", elem_id="latent-compare")
        with gr.Row():
            gan_grid = gr.Image(label="GAN", type="pil", interactive=False)
            vae_grid = gr.Image(label="VAE", type="pil", interactive=False)
    inputs = [ui.model, ui.seed, ui.count, ui.truncation, ui.temperature]
    compare.click(side_by_side, inputs, [gan_grid, vae_grid], **heavy())
    return gan_grid, vae_grid


def _interpolation_tab(ui: LatentUI, image_walk: Callable) -> list:
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
        lerp_image = gr.Image(label="lerp (straight line)", type="pil", interactive=False, elem_id="latent-lerp")
        slerp_image = gr.Image(label="slerp (great circle)", type="pil", interactive=False)
        norm_plot = gr.LinePlot(x="t", y="norm", color="path", label="Latent norm along each path", height=240)
        gifs = gr.File(label="GIFs", file_count="multiple")
    outputs = [lerp_image, slerp_image, norm_plot, gifs]
    walk_seeds.click(interpolation, [ui.model, seed_a, seed_b, steps], outputs, **heavy())
    walk_images.click(image_walk, [ui.model, image_a, image_b, steps], outputs, **heavy())
    return outputs


def _traversal_tab(ui: LatentUI) -> tuple[gr.Image, gr.Dataframe]:
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
            interactive=False,
            elem_id="latent-traversal",
        )
        table = gr.Dataframe(
            label="Dimensions by use (mean KL on the model's data; for shapes, the factor each follows)",
            interactive=False,
            elem_id="latent-usage",
        )
    ui.model.change(usage, ui.model, [dims, table], **heavy())
    tab.select(usage_once, [ui.model, table], [dims, table], **heavy())
    turn.click(traversal, [ui.model, ui.seed, dims, span, steps], picture, **heavy())
    return picture, table


def _live_tab(ui: LatentUI) -> gr.Image:
    with gr.Tab("Live edit"):
        gr.Markdown("Load a seed's latent, then move one dimension at a time and watch the image follow.")
        load = gr.Button("Load seed", elem_id="latent-live-load")
        with gr.Row():
            with gr.Column():
                sliders = [gr.Slider(-4, 4, 0, step=0.05, label=f"z{i}") for i in range(LIVE_DIMS)]
            image = gr.Image(label="Decoded", type="pil", interactive=False, elem_id="latent-live")
    load.click(live_start, [ui.model, ui.seed], [*sliders, image], **heavy())
    for slider in sliders:
        slider.release(live_edit, [ui.model, ui.seed, *sliders], image, **heavy())
    return image


def _api() -> None:
    """The tab's public endpoints, in the same queue group as its model work."""
    public = dict(concurrency_id="gpu", concurrency_limit=runtime.get().concurrency)
    gr.api(sample_latents, api_name="sample_latents", **public)
    gr.api(interpolate, api_name="interpolate", **public)
    gr.api(traverse, api_name="traverse", **public)


def build_ui() -> LatentUI:
    """The shared controls, one sub-tab per view (each built and wired by its own builder), the
    training lab, the explanation, and the public API."""
    from demos import latent_encoding  # here, not at the top: its views build on this module's functions

    ui = _controls()
    with gr.Tabs():
        ui.tabs["samples"] = _samples_tab(ui)
        ui.tabs["compare"] = _compare_tab(ui)
        ui.tabs["interpolation"] = _interpolation_tab(ui, latent_encoding.image_interpolation)
        ui.tabs["traversal"] = _traversal_tab(ui)
        ui.tabs["live"] = _live_tab(ui)
        ui.tabs["anatomy"] = latent_encoding.anatomy_tab(ui)
        ui.tabs["photos"] = latent_encoding.photos_tab()
        ui.tabs["map"] = latent_encoding.map_tab(ui)
        with gr.Tab("Training lab"):
            ui.tabs["lab"] = training_lab.build_ui()
    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS)
    _api()
    return ui


if __name__ == "__main__":
    _glue.run_alone(build_ui, "Latent sampling")
