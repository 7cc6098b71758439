"""Datasets the latent models train on and the tabs show: scikit-learn's handwritten digits
(shipped inside the package) and a procedural shapes set whose factors are known, with the one
measure the tabs show of how a latent dimension follows a factor (``factor_scores``)."""

from __future__ import annotations

import colorsys
import functools

import numpy as np
import torch

SPLIT_SEED = 0  # the same split for the models and for the tests' independent classifier


def digits(size: int = 16) -> dict[str, torch.Tensor]:
    """8×8 digits scaled to [0, 1] and resized to size×size: train/test images (N, 1, size, size) and labels."""
    from sklearn.datasets import load_digits  # here: scikit-learn takes a second to import
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32)[:, None]
    if size != 8:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.tensor(data.target)
    idx_train, idx_test = train_test_split(np.arange(len(x)), test_size=0.25, random_state=SPLIT_SEED, stratify=y)
    return {"x_train": x[idx_train], "y_train": y[idx_train], "x_test": x[idx_test], "y_test": y[idx_test]}


SHAPES = ("square", "circle", "triangle")
COLOUR_BANDS = ("red-yellow", "green", "cyan-blue")  # thirds of the colour factor
HUES = 2 / 3  # colour runs through hues 0 … ⅔ of the wheel: red, yellow, green, cyan, blue
FACTORS = ("shape", "colour", "scale", "x", "y", "rotation")


def hue_rgb(colour: float) -> tuple[int, int, int]:
    """The colour factor (0–1) → an RGB fill: a hue from red (0) to blue (1), fairly saturated."""
    r, g, b = colorsys.hsv_to_rgb(colour * HUES, 0.8, 0.9)
    return round(255 * r), round(255 * g), round(255 * b)


def shapes(count: int = 20_000, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Procedural dSprites-like images with known factors: one shape (square, circle, triangle) of
    one colour, at a random scale, position and rotation, on black. Returns images (N, 3, size,
    size) in [0, 1] and ``factors`` (N, 6) in the order of FACTORS: shape 0–2; colour, scale, x, y
    in [0, 1] (colour as in 3dshapes: a hue, here from red through green to blue); rotation in
    [0, 1) of a turn (a circle's rotation is invisible, a square's repeats every ¼)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    shape = rng.integers(0, 3, count)
    colour = rng.uniform(0, 1, count)
    scale = rng.uniform(0, 1, count)
    x, y = rng.uniform(0, 1, count), rng.uniform(0, 1, count)
    rotation = rng.uniform(0, 1, count)
    images = np.zeros((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        fill = hue_rgb(colour[i])
        radius = size * (0.12 + 0.13 * scale[i])  # 12–25 % of the frame
        margin = radius + 1
        cx, cy = margin + x[i] * (size - 2 * margin), margin + y[i] * (size - 2 * margin)
        canvas = Image.new("RGB", (size * 4, size * 4))  # draw 4× larger, then shrink: smooth edges
        draw = ImageDraw.Draw(canvas)
        if shape[i] == 1:
            draw.ellipse([4 * (cx - radius), 4 * (cy - radius), 4 * (cx + radius), 4 * (cy + radius)], fill=fill)
        else:
            corners = 4 if shape[i] == 0 else 3
            angles = 2 * np.pi * (rotation[i] + np.arange(corners) / corners)
            r = radius * (1.15 if corners == 4 else 1.3)
            draw.polygon([(4 * (cx + r * np.cos(a)), 4 * (cy + r * np.sin(a))) for a in angles], fill=fill)
        images[i] = np.asarray(canvas.resize((size, size), Image.BOX))
    x_all = torch.tensor(images).permute(0, 3, 1, 2).float() / 255.0
    factors = torch.tensor(np.stack([shape, colour, scale, x, y, rotation], axis=1), dtype=torch.float32)
    return {"x_train": x_all, "factors": factors}


def factor_scores(mu: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """How strongly each latent dimension follows each known factor: (latent_dim, 6), in [0, 1].

    Continuous factors (colour's hue, scale, x, y): |Pearson correlation|. Shape (categorical) and
    rotation (in 8 bins): the correlation ratio η — the share of the dimension's spread explained
    by the factor's category, square-rooted so it is on the same scale as a correlation.
    """
    scores = np.zeros((mu.shape[1], len(FACTORS)))
    for k, name in enumerate(FACTORS):
        f = factors[:, k]
        for j in range(mu.shape[1]):
            z = mu[:, j]
            if name in ("colour", "scale", "x", "y"):
                scores[j, k] = abs(np.corrcoef(z, f)[0, 1])
            else:
                groups = np.floor(f * 8).astype(int) if name == "rotation" else f.astype(int)
                total = ((z - z.mean()) ** 2).sum()
                between = sum(
                    ((groups == g).sum() * (z[groups == g].mean() - z.mean()) ** 2) for g in np.unique(groups)
                )
                scores[j, k] = np.sqrt(between / total) if total > 0 else 0.0
    return scores


@functools.lru_cache(maxsize=2)
def labelled(dataset: str, size: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, dict]:
    """A dataset as the latent tab shows it: (images, labels, known factors or None, legend for the map).

    Digits are labelled by digit; shapes by which third of the colour range they are in, a factor
    the shapes VAE encodes (it does not encode shape), each dot drawn in its third's middle colour.
    Made once: rendering the shapes takes a moment."""
    if dataset == "shapes":
        data = shapes(count=2000, seed=1)  # not the training draw
        bands = (data["factors"][:, 1] * 3).long().clamp(max=2)
        legend = {"names": COLOUR_BANDS, "palette": tuple(hue_rgb((b + 0.5) / 3) for b in range(3))}
        return data["x_train"], bands, data["factors"], legend
    if dataset != "digits":
        raise ValueError(f"No labelled data for {dataset!r}: the map and the usage table need digits or shapes.")
    data = digits(size=size)
    images, labels = torch.cat([data["x_train"], data["x_test"]]), torch.cat([data["y_train"], data["y_test"]])
    return images, labels, None, {}
