"""GANs and VAEs: touch the latent space.

This tab samples a GAN and a VAE, walks between latent points (straight line vs great circle),
turns one latent dimension at a time and edits a latent by hand; ``HOW_IT_WORKS`` below explains
the models. Images into the latent space (the VAE on a drawing, the walk between two images, the
latent map, photos) live in ``demos/latent/encoding.py``, the live training lab in
``demos/latent/lab.py``, the sampling sub-tabs' builders in ``demos/latent/tabs.py``,
the model picker (with this session's lab models) in ``demos/latent/picker.py`` and the files to
download in ``demos/latent/downloads.py``; ``build_ui`` here builds them all into one tab.

Each action has one validated core (``_sample``, ``walk``, ``_traverse``, …): a model (a catalog
key, or the LatentModel a picker choice resolved to) and plain values in, CPU tensors out, run on a
model worker through ``shared.compute``. The UI handler and the public API function of an action
both call it; the API takes catalog keys only.

Run alone: ``python -m demos.latent``.
"""

from __future__ import annotations

import math
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from demos import glue
from demos.glue import user_error
from demos.latent import downloads as latent_downloads
from demos.latent import picker as latent_picker
from shared import catalog, compute, runtime
from shared.datasets import FACTORS, factor_scores, labelled
from shared.images import grid_image, open_image
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

HOW_IT_WORKS = (Path(__file__).parent / "how_it_works.md").read_text()  # also chat's retrieval corpus


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


@compute.gpu_entry(model=lambda model, *args, **kwargs: model, seconds=lambda *args, **kwargs: 10)
def _sample(
    model: str | LatentModel,
    seed: object,
    count: object,
    scale: object,
    latents=None,
    *,
    count_as="num_images",
    scale_as="scale",
) -> tuple[str, torch.Tensor, torch.Tensor]:
    """Sampling (the grid, /sample_latents): the latents — given, or `count` drawn from `seed` and
    scaled — and their images: (model key, (N, d), (N, C, H, W)). `count` and `scale` are checked
    under the names `count_as` and `scale_as`."""
    lm = latent_picker.latent(model)
    if latents is not None:
        z = check_latents(latents, lm.latent_dim)
        if len(z) > MAX_COUNT:
            raise ValueError(f"At most {MAX_COUNT} latents at once.")
    else:
        seed, count = check_seed(seed), check_int(count_as, count, 1, MAX_COUNT)
        z = sample_z(lm.latent_dim, count, seed, check_float(scale_as, scale, 0.0, MAX_SCALE))
    return lm.key, z, decode(lm, z)


def walk(
    model: str | LatentModel,
    a: object,
    b: object,
    frames: object,
    kinds=INTERPOLATIONS,
    *,
    seeds=False,
    frames_as="num_frames",
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Interpolation (the Interpolation tab, /interpolate; the walk between two images too): for
    each of `kinds`, the path between latents `a` and `b` (or, with `seeds`, the latents of seeds
    `a` and `b`), (frames, d), and its images."""
    lm = latent_picker.latent(model)
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
    model: str | LatentModel,
    seed: object,
    dims: object,
    span: object,
    num_frames: object,
    *,
    frames_as="num_frames",
    span_as="span",
) -> tuple[list[int], torch.Tensor]:
    """Traversal (the Traversal tab, /traverse): each of `dims` turned from −span to +span around
    the seed's latent: (dims, images (len(dims)·frames, C, H, W))."""
    lm = latent_picker.latent(model)
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


def _live(model: str | LatentModel, seed: object, values: list | None = None) -> tuple[list[float], torch.Tensor]:
    """The seed's latent with its first dimensions set to `values` (None: as drawn), decoded:
    (its first LIVE_DIMS values, image (1, C, H, W))."""
    lm = latent_picker.latent(model)
    z = sample_z(lm.latent_dim, 1, check_seed(seed))[0]
    n = min(LIVE_DIMS, lm.latent_dim)
    if values is not None:
        z[:n] = check_latents(
            [check_float(f"z{i}", v, -MAX_ABS_LATENT, MAX_ABS_LATENT) for i, v in enumerate(values[:n])], n
        )[0]
    return z[:n].tolist(), decode(lm, z[None])


def _usage(model: str | LatentModel) -> tuple[str, pd.DataFrame]:
    """The traversal's starting dimensions (a VAE's most used first) and the usage table."""
    lm = latent_picker.latent(model)
    if lm.kind != "vae":  # a GAN's dimensions are all used alike: the first few
        first = range(min(TRAVERSED, lm.latent_dim))
        return " ".join(map(str, first)), pd.DataFrame({"dimension": [], "KL (nats)": []})
    images, _, factors, _ = labelled(lm.dataset)
    table = dimension_usage(lm, images, factors)
    return " ".join(str(d) for d in table["dimension"][:TRAVERSED]), table


# --- Gradio glue: each handler runs its action's core on a worker and pictures the result -------
# A handler's model is a picker choice: ``latent_picker.resolve`` makes a lab choice this session's model.


def _samples(model: str, seed, count, truncation, temperature, request: gr.Request | None) -> torch.Tensor:
    """The grid's images: z scaled by truncation for a GAN, by temperature for a VAE."""
    gan = latent_picker.declared(model).kind == "gan"
    name, scale = ("truncation", truncation) if gan else ("temperature", temperature)
    chosen = latent_picker.resolve(model, request)
    return compute.run(_sample, chosen, seed, count, scale, count_as="count", scale_as=name)[2]


def sample_grid(
    model: str, seed: int, count: int, truncation: float, temperature: float, request: gr.Request | None = None
):
    """The Samples tab: `count` images from `seed`, z scaled by truncation (GAN) or temperature (VAE),
    and the key its download is made from (``latent_downloads.sample_download``)."""
    try:
        images = _samples(model, seed, count, truncation, temperature, request)
        key = latent_downloads.keep_shown(images, latent_picker.name_of(model), check_seed(seed))
    except Exception as exc:
        raise user_error(exc, "Sampling") from None
    return grid_image(images, columns=min(8, len(images)), px=DISPLAY_PX), key


def side_by_side(
    model: str, seed: int, count: int, truncation: float, temperature: float, request: gr.Request | None = None
):
    """The bundled GAN and VAE trained on the picked model's data set (the digits' pair for a model
    of another), on the same request, and a line saying which scale each was drawn at (the screen
    shows only the picked model's kind of scale)."""
    try:
        gan, vae = catalog.latent_pair(latent_picker.declared(model).dataset)
        pictures = [
            _samples(gan, seed, count, truncation, 1.0, None),
            _samples(vae, seed, count, 1.0, temperature, None),
        ]
    except Exception as exc:
        raise user_error(exc, "Sampling") from None
    note = f"GAN **{gan}** at truncation {float(truncation):g} · VAE **{vae}** at temperature {float(temperature):g}"
    return *(grid_image(p, columns=min(8, len(p)), px=DISPLAY_PX) for p in pictures), note


def interpolation(model: str, seed_a: int, seed_b: int, steps: int, request: gr.Request | None = None):
    """Lerp and slerp between two seeds' latents, side by side, with the latent norm along each."""
    try:
        chosen = latent_picker.resolve(model, request)
        walks = compute.run(walk, chosen, seed_a, seed_b, steps, seeds=True, frames_as="steps")
        stem = f"{latent_picker.name_of(model)}_seeds{check_seed(seed_a)}-{check_seed(seed_b)}"
    except Exception as exc:
        raise user_error(exc, "Interpolation") from None
    return walk_views(walks, stem)


def walk_views(walks: dict[str, tuple[torch.Tensor, torch.Tensor]], stem: str = "walk"):
    """Both paths as pictures, the norm plot (with √d, a random latent's typical norm) and both
    walks as GIFs named ``<stem>_lerp.gif`` and ``<stem>_slerp.gif``."""
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
    return (
        grid_image(straight_images, columns=steps, px=DISPLAY_PX),
        grid_image(curved_images, columns=steps, px=DISPLAY_PX),
        norms,
        latent_downloads.walk_gifs(straight_images, curved_images, stem),  # swept: old walks' GIFs are deleted
    )


def traversal(model: str, seed: int, dims: object, span: float, steps: int, request: gr.Request | None = None):
    try:
        chosen = latent_picker.resolve(model, request)
        dims, images = compute.run(_traverse, chosen, seed, dims, span, steps, frames_as="steps", span_as="range")
    except Exception as exc:
        raise user_error(exc, "Traversal") from None
    return grid_image(images, columns=len(images) // len(dims), px=DISPLAY_PX)


def live_start(model: str, seed: int, request: gr.Request | None = None):
    """Put the seed's latent on the sliders (its first LIVE_DIMS dimensions) and decode it."""
    try:
        values, image = compute.run(_live, latent_picker.resolve(model, request), seed)
    except Exception as exc:
        raise user_error(exc, "Decoding") from None
    shown = [gr.Slider(value=round(v, 2), visible=True) for v in values]
    hidden = [gr.Slider(visible=False) for _ in range(LIVE_DIMS - len(values))]
    return *shown, *hidden, grid_image(image, columns=1, px=192)


def live_edit(model: str, seed: int, request: gr.Request | None = None, *values: float) -> Image.Image:
    """The seed's latent with its first dimensions set by the sliders, decoded."""
    try:
        _, image = compute.run(_live, latent_picker.resolve(model, request), seed, list(values))
    except Exception as exc:
        raise user_error(exc, "Decoding") from None
    return grid_image(image, columns=1, px=192)


def usage(model: str, request: gr.Request | None = None):
    """On picking a model: the traversal's dimensions (a VAE's most used first) and the usage table."""
    try:
        return compute.run(_usage, latent_picker.resolve(model, request))
    except Exception as exc:
        raise user_error(exc, "Measuring the dimensions") from None


def usage_once(model: str, table: pd.DataFrame | None, request: gr.Request | None = None):
    """The first time the Traversal tab opens on a VAE, fill in what `usage` would (a GAN keeps
    whatever dimensions were typed)."""
    try:
        if (table is not None and len(table) > 0) or latent_picker.declared(model).kind != "vae":
            return gr.skip(), gr.skip()
    except Exception as exc:
        raise user_error(exc, "Measuring the dimensions") from None
    return usage(model, request)


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
            _sample, model or glue.default_model("latent"), seed, num_images, scale, latents, count_as=name
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
        model = model or glue.default_model("latent")
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
        model, dims = model or glue.default_model("latent"), [0] if dims is None else dims
        chosen, images = compute.run(_traverse, model, seed, dims, span, num_frames, frames_as=name)
    except Exception as exc:
        raise user_error(exc, "Traversal") from None
    return {"dims": chosen, "images": images.round(decimals=4).tolist(), "notices": notices}
