"""Captioned scenes for the bundled text-to-image model, and the checker that grades its output.

The renderer knows the truth of every scene it draws (shape, colour, size and position of each
object), so the same module can caption a scene, hold some combinations out of training, and grade
a generated image against its prompt without any learned judge.

Scenes are 32×32 on black: one object ("a small red circle on the left") or two ("a large blue
square above a small yellow triangle"). Shapes are upright (a square is axis-aligned, a triangle
points up), so the checker can tell them apart by how much of their bounding box they fill.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np

SIZE = 32
SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (225, 45, 40),
    "green": (40, 185, 65),
    "blue": (45, 95, 235),
    "yellow": (235, 215, 35),
    "purple": (160, 55, 210),
}
SIZES = {"small": 4.0, "large": 7.0}  # radius in pixels
PLACES = {  # where a single object sits, as (x, y) fractions of the frame
    "on the left": (0.25, 0.5),
    "on the right": (0.75, 0.5),
    "at the top": (0.5, 0.25),
    "at the bottom": (0.5, 0.75),
    "in the middle": (0.5, 0.5),
}
RELATIONS = {  # where the first of two objects sits relative to the second
    "above": ((0.5, 0.27), (0.5, 0.73)),
    "below": ((0.5, 0.73), (0.5, 0.27)),
    "to the left of": ((0.27, 0.5), (0.73, 0.5)),
    "to the right of": ((0.73, 0.5), (0.27, 0.5)),
}
# Colour–shape pairs the model never sees in training: the held-out prompts test composition.
HELD_OUT_PAIRS = {("red", "triangle"), ("green", "square"), ("blue", "circle")}

# Caption templates. Training uses TRAIN_TEMPLATES; PARAPHRASES (other word orders, synonyms) are
# held out and only appear in evaluation.
TRAIN_TEMPLATES = (
    "a {size} {colour} {shape} {place}",
    "{size} {colour} {shape} {place}",
    "{place}, a {size} {colour} {shape}",
    "a {colour} {shape} {place}, {size}",
)
PARAPHRASES = (
    "{place} a {size} {colour} {shape}",
    "a {colour} {shape}, {size}, {place}",
    "{size} {shape} {place}, {colour}",
)
# Word orders in which the colour follows the shape. No training template had one, and the bundled
# CLIP's text tower read the third paraphrase's colour right 74 % of the time (99 % elsewhere): a
# causal encoder had never seen a colour word arrive after its shape. These two (not paraphrases)
# join the caption mix of the text encoders trained since (train_clip --text-only, the unCLIP prior,
# shapes-t2i's word-order stage); every other stream keeps TRAIN_TEMPLATES.
COLOUR_AFTER = (
    "a {size} {shape}, {colour}, {place}",
    "{place}, a {size} {shape}, {colour}",
)
WORD_ORDER_TEMPLATES = TRAIN_TEMPLATES + COLOUR_AFTER
SYNONYMS = {"small": ("small", "tiny"), "large": ("large", "big"), "in the middle": ("in the middle", "in the centre")}


@dataclasses.dataclass(frozen=True)
class Thing:
    shape: str
    colour: str
    size: str
    x: float  # centre, pixels
    y: float


def draw(things: list[Thing], size: int = SIZE) -> np.ndarray:
    """Render objects on black, 4× supersampled for smooth edges. Returns (size, size, 3) uint8."""
    from PIL import Image, ImageDraw

    scale = 4
    canvas = Image.new("RGB", (size * scale, size * scale))
    pen = ImageDraw.Draw(canvas)
    for t in things:
        r, cx, cy, fill = SIZES[t.size] * scale, t.x * scale, t.y * scale, COLOURS[t.colour]
        if t.shape == "circle":
            pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif t.shape == "square":
            h = r * 0.9
            pen.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
        else:
            h = r * 1.05
            pen.polygon([(cx, cy - h), (cx + h, cy + h * 0.85), (cx - h, cy + h * 0.85)], fill=fill)
    return np.asarray(canvas.resize((size, size), Image.BOX))


def _place(frac: tuple[float, float], radius: float, rng: random.Random, size: int = SIZE) -> tuple[float, float]:
    jitter = 0.05 * size  # along an axis where the object is centred, jitter freely; towards an edge, only inwards
    x, y = (
        min(
            max(f * size + rng.uniform(-jitter, jitter if f == 0.5 else 0) * (1 if f <= 0.5 else -1), radius + 1),
            size - radius - 1,
        )
        for f in frac
    )
    return x, y


def _pick(rng: random.Random, held_out: bool) -> tuple[str, str]:
    """A colour–shape pair: from the held-out set when held_out, from the rest otherwise."""
    while True:
        pair = (rng.choice(list(COLOURS)), rng.choice(SHAPES))
        if (pair in HELD_OUT_PAIRS) == held_out:
            return pair


def _word(rng: random.Random, word: str, synonyms: bool) -> str:
    return rng.choice(SYNONYMS.get(word, (word,))) if synonyms else word


def single_scene(rng: random.Random, *, held_out: bool = False, templates=TRAIN_TEMPLATES, synonyms: bool = True):
    """One object: returns (image, caption, truth) where truth lists the stated attributes."""
    colour, shape = _pick(rng, held_out)
    size, place = rng.choice(list(SIZES)), rng.choice(list(PLACES))
    x, y = _place(PLACES[place], SIZES[size], rng)
    caption = rng.choice(templates).format(
        size=_word(rng, size, synonyms), colour=colour, shape=shape, place=_word(rng, place, synonyms)
    )
    truth = {"shape": shape, "colour": colour, "size": size, "place": place}
    return draw([Thing(shape, colour, size, x, y)]), caption, truth


def pair_scene(rng: random.Random, *, held_out: bool = False, sizes: float = 1.0):
    """Two objects in a relation: "a small red circle above a large blue square". With ``sizes`` < 1
    each caption states the sizes only with that probability ("a blue square above a yellow circle",
    as people type it); a caption that leaves them out has ``truth["sizes"] = False``."""
    relation = rng.choice(list(RELATIONS))
    stated = sizes >= 1 or rng.random() < sizes  # no draw at 1.0: the default keeps every old stream
    things, words = [], []
    for frac in RELATIONS[relation]:
        colour, shape = _pick(rng, held_out and not things)  # held out: the first object's pair is unseen
        size = rng.choice(list(SIZES))
        things.append(Thing(shape, colour, size, *_place(frac, SIZES[size], rng)))
        size_word = _word(rng, size, True)
        words.append(f"a {size_word} {colour} {shape}" if stated else f"a {colour} {shape}")
    caption = f"{words[0]} {relation} {words[1]}"
    truth = {"objects": [dataclasses.asdict(t) for t in things], "relation": relation, "sizes": stated}
    return draw(things), caption, truth


def training_set(
    count: int, seed: int = 0, pair_fraction: float = 0.35, pair_sizes: float = 1.0, templates=TRAIN_TEMPLATES
):
    """Images (N, 32, 32, 3) uint8 and captions; no held-out pair or paraphrase appears. ``pair_sizes``:
    how often a two-object caption states the sizes (see pair_scene); ``templates``: the single-object
    captions' word orders."""
    rng = random.Random(seed)
    images, captions = np.zeros((count, SIZE, SIZE, 3), np.uint8), []
    for i in range(count):
        pair = rng.random() < pair_fraction
        image, caption, _ = pair_scene(rng, sizes=pair_sizes) if pair else single_scene(rng, templates=templates)
        images[i] = image
        captions.append(caption)
    return images, captions


def held_out_prompts(count: int = 60, seed: int = 1) -> list[tuple[str, dict]]:
    """Single-object prompts never seen in training: half use held-out colour–shape pairs with
    training templates, half use paraphrase templates (any pair)."""
    rng = random.Random(seed)
    prompts = []
    for i in range(count):
        if i % 2 == 0:
            _, caption, truth = single_scene(rng, held_out=True)
        else:
            _, caption, truth = single_scene(rng, held_out=rng.random() < 0.5, templates=PARAPHRASES)
        prompts.append((caption, truth))
    return prompts


def pair_prompts(count: int = 20, seed: int = 2, sizes: float = 1.0) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    return [pair_scene(rng, sizes=sizes)[1:] for _ in range(count)]


# -- the checker -------------------------------------------------------------------------------


def find_objects(image: np.ndarray, min_pixels: int = 12) -> list[dict]:
    """Connected coloured blobs in an (H, W, 3) uint8 image, largest first, each described by the
    attributes the renderer controls: nearest palette colour, shape by how much of its bounding box
    it fills (square ≈ 1, circle ≈ 0.79) and whether its top half is thinner than its bottom half
    (a triangle pointing up), size by its bounding box, and centre."""
    from scipy import ndimage

    rgb = image.astype(np.float32)
    mask = rgb.max(axis=2) > 90
    labels, count = ndimage.label(mask)
    found = []
    for index in range(1, count + 1):
        blob = labels == index
        area = int(blob.sum())
        if area < min_pixels:
            continue
        ys, xs = np.nonzero(blob)
        w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        fill = area / (w * h)
        top = blob[ys.min() : ys.min() + h // 2].sum() / max(1, blob[ys.max() - h // 2 + 1 : ys.max() + 1].sum())
        mean = rgb[blob].mean(axis=0)
        colour = min(COLOURS, key=lambda c: float(((np.array(COLOURS[c]) - mean) ** 2).sum()))
        shape = "triangle" if top < 0.6 else "square" if fill > 0.89 else "circle"
        found.append(
            {
                "shape": shape,
                "colour": colour,
                "size": "large" if max(w, h) > 10.5 else "small",
                "x": float(xs.mean()),
                "y": float(ys.mean()),
                "area": area,
            }
        )
    return sorted(found, key=lambda o: -o["area"])


def nearest_place(x: float, y: float, size: int = SIZE) -> str:
    return min(PLACES, key=lambda p: (PLACES[p][0] * size - x) ** 2 + (PLACES[p][1] * size - y) ** 2)


def grade_single(image: np.ndarray, truth: dict) -> dict[str, bool]:
    """Per-attribute correctness of a one-object image against its prompt's truth."""
    objects = find_objects(image)
    if not objects:
        return {k: False for k in ("shape", "colour", "size", "place")}
    o = objects[0]
    return {
        "shape": o["shape"] == truth["shape"],
        "colour": o["colour"] == truth["colour"],
        "size": o["size"] == truth["size"],
        "place": nearest_place(o["x"], o["y"]) == truth["place"],
    }


def grade_pair(image: np.ndarray, truth: dict) -> dict[str, bool]:
    """Two-object image: both objects found with the right attributes, and in the right relation."""
    objects = find_objects(image)[:2]
    want = truth["objects"]
    result = {"two objects": len(objects) == 2}
    matched = []
    for target in want:  # each stated object matched to the closest blob by colour, then shape
        best = max(
            objects, key=lambda o: (o["colour"] == target["colour"]) * 2 + (o["shape"] == target["shape"]), default=None
        )
        if matched and best is matched[0] and len(objects) == 2:  # two alike objects: one blob each
            best = objects[1] if best is objects[0] else objects[0]
        matched.append(best)
    for i, (target, got) in enumerate(zip(want, matched, strict=True)):
        for attr in ("shape", "colour", "size") if truth.get("sizes", True) else ("shape", "colour"):
            result[f"{attr} {i + 1}"] = got is not None and got[attr] == target[attr]
    a, b = matched
    if a is not None and b is not None and a is not b:
        dx, dy = a["x"] - b["x"], a["y"] - b["y"]
        relation = (
            ("above" if dy < 0 else "below")
            if abs(dy) > abs(dx)
            else ("to the left of" if dx < 0 else "to the right of")
        )
        result["relation"] = relation == truth["relation"]
    else:
        result["relation"] = False
    return result


def save_samples(path: Path, prompts: list[tuple[str, dict]]) -> None:
    path.write_text(json.dumps(prompts, indent=1))


# -- scenes from a stated truth: the twins -------------------------------------------------------
# A truth is what single_scene / pair_scene return: {"shape", "colour", "size", "place"},
# or {"objects": [{"shape", "colour", "size", ...}, ...], "relation"}.


INVERSE = {"above": "below", "below": "above", "to the left of": "to the right of", "to the right of": "to the left of"}


def key(truth: dict) -> tuple:
    """What an image shows, whatever the caption's wording: two truths with the same key draw the
    same picture (up to jitter). "a above b" and "b below a" share a key."""
    if "objects" not in truth:
        return ("single", truth["shape"], truth["colour"], truth["size"], truth["place"])
    slots = RELATIONS[truth["relation"]]  # where each object sits
    return ("pair",) + tuple(
        sorted(((o["shape"], o["colour"], o["size"]), slot) for o, slot in zip(truth["objects"], slots, strict=True))
    )


def render(truth: dict, rng: random.Random, templates=TRAIN_TEMPLATES) -> tuple[np.ndarray, str]:
    """(32, 32, 3) uint8 image and a caption for a truth, drawn and worded as py does."""
    if "objects" not in truth:
        size, place = truth["size"], truth["place"]
        x, y = _place(PLACES[place], SIZES[size], rng)
        caption = rng.choice(templates).format(
            size=_word(rng, size, True), colour=truth["colour"], shape=truth["shape"], place=_word(rng, place, True)
        )
        return draw([Thing(truth["shape"], truth["colour"], size, x, y)]), caption
    things, words = [], []
    for o, frac in zip(truth["objects"], RELATIONS[truth["relation"]], strict=True):
        x, y = _place(frac, SIZES[o["size"]], rng)
        things.append(Thing(o["shape"], o["colour"], o["size"], x, y))
        words.append(f"a {_word(rng, o['size'], True)} {o['colour']} {o['shape']}")
    return draw(things), f"{words[0]} {truth['relation']} {words[1]}"


def twin(truth: dict, attribute: str, rng: random.Random, allowed=lambda pair: True) -> dict | None:
    """A copy of the truth that differs in one attribute, or None where that can't be done.
    allowed(colour, shape) says which colour–shape pairs the copy may show."""
    choices = {"shape": SHAPES, "colour": tuple(COLOURS), "size": tuple(SIZES)}
    if "objects" not in truth:
        if attribute == "relation":
            return None
        values = choices.get(attribute, tuple(PLACES))
        options = [{**truth, attribute: v} for v in values if v != truth[attribute]]
        options = [o for o in options if allowed((o["colour"], o["shape"]))]
        return rng.choice(options) if options else None
    objects = [{a: o[a] for a in ("shape", "colour", "size")} for o in truth["objects"]]  # placed by relation
    if attribute == "place":
        return None
    if attribute == "relation":
        return {"objects": objects, "relation": rng.choice([r for r in RELATIONS if r != truth["relation"]])}
    if attribute == "colour" and objects[0]["colour"] != objects[1]["colour"] and rng.random() < 0.5:
        objects[0]["colour"], objects[1]["colour"] = objects[1]["colour"], objects[0]["colour"]  # binding
    else:
        i = rng.randrange(2)
        options = [v for v in choices[attribute] if v != objects[i][attribute]]
        objects[i][attribute] = rng.choice(options)
    if not all(allowed((o["colour"], o["shape"])) for o in objects):
        return None
    new = {"objects": objects, "relation": truth["relation"]}
    return new if key(new) != key(truth) else None
