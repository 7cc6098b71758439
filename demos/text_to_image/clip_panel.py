"""Contrastive learning, visible: the bundled CLIP (``shapes-clip``) that DALL-E 2's text encoder is.

CLIP learns two encoders, one for captions and one for images, so that a caption and its image land
close together and far from every other pairing in the batch (symmetric InfoNCE: a softmax over each
row and each column of the similarity matrix, the right pairing as the label). The panel shows:

- a **batch**: N captions × N images and their similarity matrix; training pulls the diagonal up
  and pushes everything else down; each row's softmax is the probability CLIP gives each image;
- **retrieval**: type a caption, and CLIP ranks a gallery of scenes it never saw in training.

The scenes come from ``shared/scenes.py`` (the renderer the model was trained on), seeded, and
drawn from the held-out split: colour–shape pairs and phrasings that were never in training.
"""

from __future__ import annotations

import base64
import io
import json
import random
from html import escape

import gradio as gr
import numpy as np
import torch
from PIL import Image

from demos.glue import INTERACTIVE, user_error
from shared import catalog, compute, runtime, scenes
from shared.images import enlarge
from shared.loaders import WEIGHTS
from shared.validation import MAX_SEED, check_seed, check_text

BATCH = 8  # captions × images in the matrix
GALLERY = 32  # scenes a caption is matched against
MAX_CAPTION_CHARS = 300
THUMB_PX = 64


def _retrieval_top1() -> str:
    """The bundled CLIP's held-out top-1 retrieval, from its one source (its training.json)."""
    try:
        figures = json.loads((WEIGHTS / "shapes-clip" / "training.json").read_text())["evaluation"]
        return f"{figures['top1']:.1%}".replace("%", " %")
    except (OSError, KeyError, ValueError):
        return "(not measured)"


HOW_IT_WORKS = f"""
**How the text encoder learns.** DALL-E 2 does not learn words from images directly: its text
encoder is CLIP's, trained *contrastively*. Each training batch has N captions and their N images;
both are encoded to vectors, and the N × N matrix of their similarities is scored so that each
caption picks its own image (a softmax over its row) and each image its own caption (over its
column). Only the diagonal is right. Over many batches the encoders learn whatever tells scenes
apart — colour, shape, size, place, relation — because a batch always holds scenes that differ in
exactly those. The bundled CLIP (256k parameters) was trained this way in 21 minutes on one CPU
core (`training/train_clip.py`), and ranks the right scene first among 32 held-out ones {_retrieval_top1()}
of the time (`training/evaluate_clip.py`).
"""


# --- the model's side: pure functions of a CLIP and scenes --------------------------------------


def _what(truth: dict) -> tuple:
    """What a caption states about a scene (not where the renderer jittered it)."""
    if "objects" in truth:
        return truth["relation"], *((o["shape"], o["colour"], o["size"]) for o in truth["objects"])
    return truth["shape"], truth["colour"], truth["size"], truth["place"]


def held_out_scenes(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``count`` held-out scenes (unseen colour–shape pairs, paraphrases, two objects), no two of which one
    caption could describe: captions, images."""
    rng = random.Random(seed)
    captions, images, seen = [], [], set()
    while len(captions) < count:
        kind = len(captions) % 3
        if kind == 2:
            image, caption, truth = scenes.pair_scene(rng, held_out=True)
        else:
            templates = scenes.PARAPHRASES if kind == 1 else scenes.TRAIN_TEMPLATES
            image, caption, truth = scenes.single_scene(rng, held_out=True, templates=templates)
        if _what(truth) not in seen:
            seen.add(_what(truth))
            captions.append(caption)
            images.append(image)
    return captions, np.stack(images)


@torch.inference_mode()
def embed(clip, captions: list[str], images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Unit-length text and image embeddings, and CLIP's learned temperature (logit scale)."""
    device = clip.model.device
    text = clip.tokenizer(captions, padding=True, truncation=True, return_tensors="pt").to(device)
    pixels = clip.processor(images=list(images), return_tensors="pt")["pixel_values"].to(device, clip.model.dtype)
    t = clip.model.get_text_features(**text)
    v = clip.model.get_image_features(pixel_values=pixels)
    t, v = (x.pooler_output if hasattr(x, "pooler_output") else x for x in (t, v))
    t, v = torch.nn.functional.normalize(t.float(), dim=-1), torch.nn.functional.normalize(v.float(), dim=-1)
    return t.cpu(), v.cpu(), float(clip.model.logit_scale.exp())


def batch_matrix(clip, captions: list[str], images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities (captions × images) and each row's softmax at CLIP's temperature."""
    t, v, scale = embed(clip, captions, images)
    cosine = (t @ v.T).numpy()
    return cosine, torch.softmax(torch.from_numpy(cosine) * scale, dim=-1).numpy()


def rank(clip, caption: str, captions: list[str], images: np.ndarray) -> list[tuple[int, float, float]]:
    """The gallery ranked for ``caption``: (index, probability, cosine), best first."""
    t, v, scale = embed(clip, [caption], images)
    cosine = (t @ v.T)[0]
    probs = torch.softmax(cosine * scale, dim=-1)
    order = torch.argsort(probs, descending=True).tolist()
    return [(i, float(probs[i]), float(cosine[i])) for i in order]


# --- views --------------------------------------------------------------------------------------------


def _thumb(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    enlarge(image, THUMB_PX).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def matrix_html(captions: list[str], images: np.ndarray, cosine: np.ndarray, probs: np.ndarray) -> str:
    """The batch as a table: a row per caption, a column per image, each cell shaded by the row's
    softmax (what the loss reads), the diagonal (the right pairings) outlined."""
    right = int((probs.argmax(axis=1) == np.arange(len(captions))).sum())
    head = "".join(
        f'<th><img src="{_thumb(img)}" width="{THUMB_PX}" height="{THUMB_PX}" alt="image {j}" '
        f'style="image-rendering:pixelated"><div style="font-size:0.75em">image {j}</div></th>'
        for j, img in enumerate(images)
    )
    rows = []
    for i, caption in enumerate(captions):
        cells = []
        for j in range(len(images)):
            p, c = probs[i, j], cosine[i, j]
            border = "3px solid #16a34a" if i == j else "1px solid #e5e7eb"
            cells.append(
                f'<td class="clip-cell{" clip-diagonal" if i == j else ""}" title="p = {p:.1%}, cosine {c:+.3f}" '
                f'style="background:rgba(37,99,235,{0.05 + 0.9 * p:.2f});color:{"#fff" if p > 0.5 else "#111"};'
                f'border:{border};text-align:center;font-size:0.8em;min-width:{THUMB_PX}px">{p:.0%}</td>'
            )
        rows.append(f'<tr><th class="clip-caption" style="text-align:right;font-weight:normal;font-size:0.85em;'
                    f'padding-right:6px">{escape(caption)}</th>{"".join(cells)}</tr>')  # fmt: skip
    summary = (
        f"<p><b>{right} of {len(captions)}</b> captions give their own image the highest probability. "
        "Rows: captions; columns: images; a cell is the probability CLIP gives that image for that caption "
        "(the softmax of the row's similarities at its learned temperature); outlined: the right pairing, "
        "which training pulls up. Hover a cell for the cosine similarity.</p>"
    )
    table = (
        f'<table class="clip-matrix" style="border-collapse:collapse"><tr><th></th>{head}</tr>{"".join(rows)}</table>'
    )
    return f'<div class="clip-batch">{summary}<div style="overflow-x:auto">{table}</div></div>'


def ranking_items(ranked, captions: list[str], images: np.ndarray, top: int = 6) -> list[tuple[Image.Image, str]]:
    return [
        (enlarge(images[i], 128), f"#{n + 1} · p {p:.1%} · “{captions[i]}”") for n, (i, p, _) in enumerate(ranked[:top])
    ]


# --- Gradio glue -------------------------------------------------------------------------------------


def _clip():
    return runtime.clip_model(runtime.default_model("clip"))


def show_batch(seed):
    """New batch: held-out scenes from ``seed``, and CLIP's similarity matrix."""
    try:
        seed = check_seed(seed)
        captions, images = held_out_scenes(BATCH, seed)
        cosine, probs = compute.run(lambda: batch_matrix(_clip(), captions, images), lane=compute.INTERACTIVE)
    except Exception as exc:
        raise user_error(exc, "The CLIP batch") from None
    return matrix_html(captions, images, cosine, probs)


def find_image(caption, seed):
    """Which image matches your caption: the gallery of held-out scenes from ``seed``, ranked by CLIP."""
    try:
        caption = check_text("caption", caption, MAX_CAPTION_CHARS, required=True).strip()
        seed = check_seed(seed)
        captions, images = held_out_scenes(GALLERY, seed)
        ranked = compute.run(lambda: rank(_clip(), caption, captions, images), lane=compute.INTERACTIVE)
    except Exception as exc:
        raise user_error(exc, "Retrieval") from None
    best, p, _ = ranked[0]
    note = (f"CLIP's pick among {GALLERY} scenes it never saw in training: **“{escape(captions[best])}”** "
            f"(p {p:.1%}). The gallery below is its ranking.")  # fmt: skip
    return ranking_items(ranked, captions, images), note


def build_panel() -> None:
    """The accordion in the Text to image tab."""
    spec = catalog.CATALOG.get(runtime.default_model("clip"))
    with gr.Accordion("Contrastive learning: how the text encoder learns (CLIP)", open=False, elem_id="clip-panel"):
        gr.Markdown(HOW_IT_WORKS + (f"\n\nModel: `{spec.key}`. {spec.description}" if spec else ""))
        with gr.Row():
            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Scenes seed", elem_id="clip-seed")
            new_batch = gr.Button("New batch", elem_id="clip-batch-button")
        matrix = gr.HTML(elem_id="clip-matrix")
        with gr.Row():
            caption = gr.Textbox("a blue square above a yellow circle", label="Your caption", elem_id="clip-caption",
                                 max_length=MAX_CAPTION_CHARS, scale=3)  # fmt: skip
            find = gr.Button("Which image matches?", elem_id="clip-find", scale=1)
        note = gr.Markdown(elem_id="clip-note")
        ranked = gr.Gallery(label="CLIP's ranking", columns=6, rows=1, height=240, format="png", elem_id="clip-ranking",
                            elem_classes="pixelated")  # fmt: skip
    # CLIP answers in milliseconds: in the interactive group, with chat and attention, ahead of images
    private = dict(api_visibility="private", concurrency_id=INTERACTIVE, concurrency_limit=runtime.get().concurrency)
    new_batch.click(show_batch, seed, matrix, show_progress_on=[matrix], **private)
    gr.on([find.click, caption.submit], find_image, [caption, seed], [ranked, note], show_progress_on=[note], **private)
