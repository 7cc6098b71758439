"""Grade the bundled CLIP by caption → image retrieval on held-out scenes (training/scenes.py).

    python -m training.evaluate_clip                  # weights/shapes-clip
    python -m training.evaluate_clip --checkpoint     # the run in progress

Each group is 32 candidate images of one kind: 16 held-out scenes and, for each, a twin that
differs in exactly one attribute (shape, colour, size, place or relation), so every caption has
one near-miss among its candidates besides 30 other scenes. The 16 held-out captions are the
queries: single objects alternate between unseen colour–shape pairs (training templates) and
paraphrased templates (any pair); two-object scenes have an unseen pair as their first object.
No two candidates show the same truth. A query is right when its own image scores highest;
for each wrong one, the attributes in which the retrieved scene differs from the caption count
against those attributes.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch

from shared import scenes
from shared.loaders import WEIGHTS
from shared.scenes import INVERSE, key, render, twin

CANDIDATES = 32  # images per group; half are the queries' scenes, half their twins
SINGLE_ATTRIBUTES = ("shape", "colour", "size", "place")
PAIR_ATTRIBUTES = ("shape", "colour", "size", "relation")


def attributes_of(truth: dict) -> tuple[str, ...]:
    return PAIR_ATTRIBUTES if "objects" in truth else SINGLE_ATTRIBUTES


def held_out_group(rng: random.Random, two_objects: bool) -> tuple[list[dict], list[np.ndarray]]:
    """Queries [{"caption", "truth", "kind", "twin": attribute}] and CANDIDATES images: image i is
    query i's scene for i < 16, and image 16 + i is its twin."""
    queries, originals, twins, seen = [], [], [], set()
    while len(queries) < CANDIDATES // 2:
        i = len(queries)
        if two_objects:
            image, caption, truth = scenes.pair_scene(rng, held_out=True)
            kind = "two objects"
        elif i % 2 == 0:
            image, caption, truth = scenes.single_scene(rng, held_out=True)
            kind = "unseen pairs"
        else:
            image, caption, truth = scenes.single_scene(rng, held_out=rng.random() < 0.5, templates=scenes.PARAPHRASES)
            kind = "paraphrases"
        attribute = attributes_of(truth)[(i // 2) % 4]  # each attribute as often, in each kind
        other = twin(truth, attribute, rng)
        if other is None or key(truth) in seen or key(other) in seen or key(other) == key(truth):
            continue
        seen |= {key(truth), key(other)}
        queries.append({"caption": caption, "truth": truth, "kind": kind, "twin": attribute, "twin_truth": other})
        originals.append(image)
        twins.append(render(other, rng)[0])
    return queries, originals + twins


def differences(got: dict, want: dict) -> set[str]:
    """The attributes in which scene `got` differs from the caption's truth `want`."""
    if "objects" not in want:
        return {a for a in SINGLE_ATTRIBUTES if got[a] != want[a]}

    def diff(objects: list[dict], relation: str) -> set[str]:
        matched = list(zip(objects, want["objects"], strict=True))
        found = {a for a in ("shape", "colour", "size") for o, w in matched if o[a] != w[a]}
        return found | ({"relation"} if relation != want["relation"] else set())

    objects = got["objects"]  # "a above b" is "b below a": compare both readings, keep the closer
    return min(diff(objects, got["relation"]), diff(objects[::-1], INVERSE[got["relation"]]), key=len)


@torch.no_grad()
def evaluate(model, tokenizer, processor, *, groups: int = 64, seed: int = 1) -> dict:
    """Top-1 caption → image retrieval among CANDIDATES images, over `groups` groups (alternately
    single- and two-object), overall, per kind of held-out query and per attribute."""
    rng = random.Random(seed)
    model.eval()
    results = []  # (query, retrieved truth or None when right, scored above its twin)
    for g in range(groups):
        queries, images = held_out_group(rng, two_objects=g % 2 == 1)
        text = tokenizer([q["caption"] for q in queries], padding=True, return_tensors="pt")
        pixel_values = processor(images=images, return_tensors="pt").pixel_values  # (32, 3, 32, 32)
        t = model.get_text_features(**text).pooler_output  # (16, projection_dim)
        v = model.get_image_features(pixel_values=pixel_values).pooler_output  # (32, projection_dim)
        similarity = (t / t.norm(dim=-1, keepdim=True)) @ (v / v.norm(dim=-1, keepdim=True)).T  # (16, 32)
        truths = [q["truth"] for q in queries] + [q["twin_truth"] for q in queries]
        for i, q in enumerate(queries):
            best = int(similarity[i].argmax())
            beats_twin = bool(similarity[i, i] > similarity[i, len(queries) + i])
            results.append((q, None if best == i else truths[best], beats_twin))

    def share(rows) -> float:
        return round(float(np.mean([r[1] is None for r in rows])), 3) if rows else float("nan")

    report = {"groups": groups, "candidates": CANDIDATES, "queries": len(results), "top1": share(results)}
    report["by_kind"] = {
        kind: share([r for r in results if r[0]["kind"] == kind])
        for kind in ("unseen pairs", "paraphrases", "two objects")
    }
    by_attribute, errors = {}, {}
    for attribute in ("shape", "colour", "size", "place", "relation"):
        applies = [r for r in results if attribute in attributes_of(r[0]["truth"])]
        wrong = [r for r in applies if r[1] is not None and attribute in differences(r[1], r[0]["truth"])]
        errors[attribute] = len(wrong)
        by_attribute[attribute] = round(1 - len(wrong) / len(applies), 3) if applies else float("nan")
    report["by_attribute"] = by_attribute  # 1 − (wrong retrievals differing in it) / (queries it applies to)
    report["errors_by_attribute"] = errors  # a wrong retrieval can differ in several attributes
    report["against_twin"] = {  # the caption's image scored above its one-attribute twin
        a: round(float(np.mean([r[2] for r in results if r[0]["twin"] == a])), 3)
        for a in ("shape", "colour", "size", "place", "relation")
    }
    return report


@torch.no_grad()
def word_orders(model, tokenizer, processor) -> dict:
    """How well the text tower reads each word order: for every single-object truth (150) worded by
    each training template and paraphrase, is its own colour (shape) scored highest among the 5
    colours (3 shapes) of the same scene? {template: {"colour": share, "shape": share}}."""
    rng, report = random.Random(0), {}
    truths = [
        {"shape": s, "colour": c, "size": z, "place": p}
        for s in scenes.SHAPES for c in scenes.COLOURS for z in scenes.SIZES for p in scenes.PLACES
    ]  # fmt: skip
    for template in dict.fromkeys(scenes.WORD_ORDER_TEMPLATES + scenes.PARAPHRASES):
        right = {"colour": 0, "shape": 0}
        for truth in truths:
            t = model.get_text_features(**tokenizer([template.format(**truth)], return_tensors="pt")).pooler_output
            for attribute, values in (("colour", list(scenes.COLOURS)), ("shape", scenes.SHAPES)):
                variants = [{**truth, attribute: v} for v in values]
                pixel_values = processor(images=[render(v, rng)[0] for v in variants], return_tensors="pt").pixel_values
                v = model.get_image_features(pixel_values=pixel_values).pooler_output
                right[attribute] += values[int(torch.cosine_similarity(t, v).argmax())] == truth[attribute]
        report[template] = {a: round(n / len(truths), 3) for a, n in right.items()}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights", type=Path, default=WEIGHTS / "shapes-clip",
        help="an exported model folder (a checkpoint: `python -m training.train_clip --export --out DIR`)",
    )  # fmt: skip
    parser.add_argument("--groups", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(args.weights)
    tokenizer, processor = CLIPTokenizer.from_pretrained(args.weights), CLIPImageProcessor.from_pretrained(args.weights)
    print(json.dumps(evaluate(model, tokenizer, processor, groups=args.groups, seed=args.seed), indent=1))
    print(json.dumps(word_orders(model, tokenizer, processor), indent=1))


if __name__ == "__main__":
    main()
