"""DALL-E 2's three stages, live, on the bundled ``shapes-unclip`` (a tiny Kandinsky 2.2 trained here).

DALL-E 2 ("unCLIP") draws an image in three steps, and this panel runs each one where you can see it:

1. the **text encoder** (CLIP's, trained contrastively: the panel above) turns the prompt into a
   text embedding;
2. the **prior**, a diffusion model over embeddings, turns noise into a CLIP *image* embedding for
   that text; at each of its steps the panel shows the training images whose CLIP embeddings are
   nearest to where it is;
3. the **decoder**, a diffusion model over pixels (latents), draws an image from that embedding.
   Pick ``shapes-unclip`` in the tab's model picker to watch its steps in the live preview and
   step debugger.

Swap experiments make the parts tangible: decode the *text* embedding directly instead of the prior's
image embedding (CLIP's two spaces are aligned, not equal: the "modality gap"), mix two prompts' image
embeddings, and decode one image embedding with different seeds (what the decoder adds on its own).

The model work is pure functions of a ``KandinskyV22CombinedPipeline`` (its ``prior_pipe`` and
``decoder_pipe``); the glue at the bottom runs them on a model worker.
"""

from __future__ import annotations

import dataclasses
import functools

import gradio as gr
import numpy as np
import torch
from PIL import Image

from demos.glue import user_error
from shared import catalog, compute, runtime, scenes
from shared.images import enlarge
from shared.validation import MAX_SEED, check_number, check_seed, check_text

MODEL = "shapes-unclip"
PRIOR_STEPS = 25  # the prior's denoising steps (Kandinsky 2.2's default)
MAX_PRIOR_STEPS = 100
DECODER_STEPS = 50
SHOWN_STEPS = 6  # prior steps shown with their nearest training images
GALLERY_SCENES = 512  # training scenes the nearest-neighbour search looks through
MIX = (0.0, 0.25, 0.5, 0.75, 1.0)  # image-embedding mixes of prompt A → B
SEEDS = 4  # decodings of one image embedding
MAX_PROMPT_CHARS = 300
THUMB_PX = 96

HOW_IT_WORKS = """
**DALL-E 2's anatomy.** The prompt's CLIP *text* embedding is not what the decoder was trained on:
it learned to draw from CLIP *image* embeddings. The **prior** bridges the two: a diffusion model
that starts from noise and, step by step, arrives at an image embedding that fits the text (here a
`PriorTransformer`, as in Kandinsky 2.2). The nearest training images at each step show where it is
heading. The **decoder** (a UNet on 8×8 latents and its MoVQ autoencoder) then draws an image
from that embedding, adding what the embedding leaves open. All of it was trained on this machine's
CPU by `training/train_unclip.py`, on the scenes the project renders.
"""


@dataclasses.dataclass
class Trace:
    """One prompt through the prior: embeddings as (D,) float arrays, un-normalised (CLIP's space)."""

    prompt: str
    seed: int
    text_embed: np.ndarray
    steps: list[np.ndarray]  # the prior's sample after each of its steps
    image_embed: np.ndarray
    negative: np.ndarray  # CLIP's embedding of an all-zero image: what guidance pushes away from


# --- the model's side: pure functions of a combined Kandinsky pipeline ------------------------------


def text_embedding(pipe, prompt: str) -> np.ndarray:
    """Stage 1: the prompt's CLIP text embedding (the projection the prior reads)."""
    prior = pipe.prior_pipe
    ids = prior.tokenizer(prompt, padding="max_length", max_length=prior.tokenizer.model_max_length,
                          truncation=True, return_tensors="pt")  # fmt: skip
    with torch.inference_mode():
        out = prior.text_encoder(ids.input_ids.to(prior.device), attention_mask=ids.attention_mask.to(prior.device))
    return out.text_embeds[0].float().cpu().numpy()


def trace_prior(pipe, prompt: str, seed: int, steps: int = PRIOR_STEPS, guidance_scale: float = 4.0) -> Trace:
    """Stage 2: the prior from noise to an image embedding, its sample kept after every step."""
    prior, kept = pipe.prior_pipe, []

    def keep(p, i, t, tensors):
        kept.append(p.prior.post_process_latents(tensors["latents"])[0].float().cpu().numpy())
        return tensors

    with torch.inference_mode():
        out = prior(prompt, num_inference_steps=steps, guidance_scale=guidance_scale,
                    generator=torch.Generator().manual_seed(seed), callback_on_step_end=keep)  # fmt: skip
    embed, negative = (x[0].float().cpu().numpy() for x in (out.image_embeds, out.negative_image_embeds))
    return Trace(prompt, seed, text_embedding(pipe, prompt), kept, embed, negative)


def embed_images(pipe, images: np.ndarray) -> np.ndarray:
    """CLIP image embeddings (N, D) of uint8 images, through the prior's own image processor and encoder."""
    prior = pipe.prior_pipe
    out = []
    for i in range(0, len(images), 128):
        pixels = prior.image_processor([Image.fromarray(im) for im in images[i : i + 128]], return_tensors="pt")
        with torch.inference_mode():
            emb = prior.image_encoder(pixels.pixel_values.to(prior.device, prior.image_encoder.dtype)).image_embeds
        out.append(emb.float().cpu().numpy())
    return np.concatenate(out)


@functools.cache
def training_gallery(count: int = GALLERY_SCENES) -> tuple[np.ndarray, list[str]]:
    """Scenes from the training distribution (seeded), and their captions."""
    return scenes.training_set(count, seed=11)


def nearest(embedding: np.ndarray, gallery: np.ndarray, k: int = 1) -> list[tuple[int, float]]:
    """The ``k`` gallery rows with the highest cosine similarity to ``embedding``: (index, cosine)."""
    a = embedding / (np.linalg.norm(embedding) + 1e-8)
    g = gallery / (np.linalg.norm(gallery, axis=1, keepdims=True) + 1e-8)
    cos = g @ a
    order = np.argsort(-cos)[:k]
    return [(int(i), float(cos[i])) for i in order]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-8))


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of two embeddings (their norms interpolated linearly)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / (na + 1e-8), b / (nb + 1e-8)
    omega = np.arccos(np.clip(ua @ ub, -1.0, 1.0))
    if omega < 1e-4:
        direction = ua
    else:
        direction = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return direction * ((1 - t) * na + t * nb)


def decode(pipe, embeds: list[np.ndarray], negative: np.ndarray, seeds: list[int], steps: int = DECODER_STEPS,
           guidance_scale: float = 2.0, size: int = scenes.SIZE) -> list[np.ndarray]:  # fmt: skip
    """Stage 3: the decoder draws one image (uint8 HWC) per (embedding, seed)."""
    decoder = pipe.decoder_pipe
    dtype = decoder.unet.dtype
    out = []
    for embed, seed in zip(embeds, seeds, strict=True):
        with torch.inference_mode():
            image = decoder(
                image_embeds=torch.tensor(embed[None], dtype=dtype), negative_image_embeds=torch.tensor(negative[None], dtype=dtype),
                height=size, width=size, num_inference_steps=steps, guidance_scale=guidance_scale,
                generator=torch.Generator().manual_seed(seed), output_type="np",
            ).images[0]  # fmt: skip
        out.append((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
    return out


def embedding_strip(rows: list[tuple[str, np.ndarray]], cell: int = 6) -> Image.Image:
    """Embeddings as rows of coloured cells (blue < 0 < red, scaled per picture), top to bottom."""
    values = np.stack([r for _, r in rows])
    scale = np.abs(values).max() + 1e-8
    v = values / scale
    rgb = np.stack([np.clip(v, 0, 1), 1 - np.abs(v), np.clip(-v, 0, 1)], axis=-1)
    rgb = (0.15 + 0.85 * rgb) * 255
    return Image.fromarray(rgb.astype(np.uint8)).resize((values.shape[1] * cell, len(rows) * cell * 2), Image.NEAREST)


@dataclasses.dataclass
class Anatomy:
    """Everything the panel shows for one run."""

    trace: Trace
    nearest_per_step: list[tuple[int, int, float]]  # (step, gallery index, cosine)
    from_image: np.ndarray  # the prior's image embedding, decoded
    from_text: np.ndarray  # the text embedding, decoded directly
    mixes: list[np.ndarray]  # prompt A → B
    seeds: list[np.ndarray]  # one embedding, SEEDS seeds
    text_vs_image: float  # cosine of the text embedding and the prior's image embedding


def shown_steps(total: int, count: int = SHOWN_STEPS) -> list[int]:
    """Which prior steps to show: spread from the first to the last."""
    return sorted({round(i * (total - 1) / max(1, count - 1)) for i in range(count)})


def anatomy(
    pipe, prompt: str, other: str, seed: int, prior_steps: int = PRIOR_STEPS, decoder_steps: int = DECODER_STEPS
) -> Anatomy:
    """The three stages and the three swaps for a prompt (and a second one to mix with)."""
    trace = trace_prior(pipe, prompt, seed, prior_steps)
    other_embed = trace_prior(pipe, other, seed, prior_steps).image_embed
    gallery = _gallery_embeddings(pipe)
    near = [(s, *nearest(trace.steps[s], gallery)[0]) for s in shown_steps(len(trace.steps))]
    mixed = [slerp(trace.image_embed, other_embed, t) for t in MIX]
    embeds = [trace.image_embed, trace.text_embed, *mixed, *[trace.image_embed] * SEEDS]
    seeds = [seed, seed, *[seed] * len(MIX), *range(seed, seed + SEEDS)]
    drawn = decode(pipe, embeds, trace.negative, seeds, decoder_steps)
    return Anatomy(trace, near, drawn[0], drawn[1], drawn[2 : 2 + len(MIX)], drawn[2 + len(MIX) :],
                   cosine(trace.text_embed, trace.image_embed))  # fmt: skip


_embedded: dict[int, np.ndarray] = {}


def _gallery_embeddings(pipe) -> np.ndarray:
    """The training gallery's CLIP image embeddings, once per loaded pipeline."""
    key = id(pipe.prior_pipe.image_encoder)
    if key not in _embedded:
        _embedded.clear()
        _embedded[key] = embed_images(pipe, training_gallery()[0])
    return _embedded[key]


# --- what the panel shows ---------------------------------------------------------------------


def views(result: Anatomy) -> tuple:
    """(summary, embedding strip, nearest per step, decoded pair, mixes, seeds) for the panel."""
    images, captions = training_gallery()
    t = result.trace
    summary = (
        f"**1 · text embedding** of “{t.prompt}” ({len(t.text_embed)} numbers, top row of the strip).  \n"
        f"**2 · the prior** took {len(t.steps)} steps from noise to an image embedding (the rows below it): "
        f"its nearest training image went from “{captions[result.nearest_per_step[0][1]]}” at step 1 to "
        f"“{captions[result.nearest_per_step[-1][1]]}” (cosine {result.nearest_per_step[-1][2]:.2f}).  \n"
        f"**3 · the decoder** drew the image from it. The text and image embeddings have cosine "
        f"{result.text_vs_image:.2f}: aligned by CLIP's training, not the same point, which is why the decoder "
        "needs the prior (compare the two decodings)."
    )
    strip_rows = [("text", t.text_embed), *[(f"step {s + 1}", t.steps[s]) for s, _, _ in result.nearest_per_step],
                  ("image", t.image_embed)]  # fmt: skip
    steps = [(enlarge(images[i], THUMB_PX), f"step {s + 1}/{len(t.steps)} · cos {c:.2f} · “{captions[i]}”")
             for s, i, c in result.nearest_per_step]  # fmt: skip
    pair = [(enlarge(result.from_image, THUMB_PX), "decoded from the prior's image embedding"),
            (enlarge(result.from_text, THUMB_PX), "decoded from the text embedding directly")]  # fmt: skip
    mixes = [(enlarge(im, THUMB_PX), f"{1 - m:.0%} A · {m:.0%} B") for im, m in zip(result.mixes, MIX, strict=True)]
    seeds = [(enlarge(im, THUMB_PX), f"seed {t.seed + n}") for n, im in enumerate(result.seeds)]
    return summary, embedding_strip(strip_rows), steps, pair, mixes, seeds


# --- Gradio glue -------------------------------------------------------------------------------------


@compute.gpu_entry(model=lambda model, *args: model, seconds=lambda *args: 20)
def _run(model: str, prompt: str, other: str, seed: int, prior_steps: int) -> Anatomy:
    return anatomy(runtime.text_to_image(model).pipe, prompt, other, seed, prior_steps)


def run(prompt, other, seed, prior_steps):
    """The panel's button: all three stages and the swaps for the prompt, on the bundled unCLIP model."""
    try:
        prompt = check_text("prompt", prompt, MAX_PROMPT_CHARS, required=True).strip()
        other = check_text("second prompt", other, MAX_PROMPT_CHARS, required=True).strip()
        seed = check_seed(seed)
        prior_steps = check_number("prior steps", prior_steps, 1, MAX_PRIOR_STEPS, integer=True)
        if MODEL not in catalog.CATALOG:
            raise ValueError(f"The bundled {MODEL} model is not installed in this copy of the app.")
        result = compute.run(_run, MODEL, prompt, other, seed, prior_steps)
    except Exception as exc:
        raise user_error(exc, "The three stages") from None
    return views(result)


def build_panel() -> None:
    """The accordion in the Text to image tab."""
    with gr.Accordion("DALL-E 2's three stages: text embedding → prior → decoder", open=False, elem_id="unclip-panel"):
        gr.Markdown(HOW_IT_WORKS)
        with gr.Row():
            prompt = gr.Textbox("a blue square above a yellow circle", label="Prompt A", elem_id="unclip-prompt",
                                max_length=MAX_PROMPT_CHARS, scale=3)  # fmt: skip
            other = gr.Textbox("a large red triangle in the middle", label="Prompt B (to mix with)",
                               elem_id="unclip-other", max_length=MAX_PROMPT_CHARS, scale=3)  # fmt: skip
            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", elem_id="unclip-seed", scale=1)
            steps = gr.Slider(
                1, MAX_PRIOR_STEPS, PRIOR_STEPS, step=1, label="Prior steps", elem_id="unclip-steps", scale=1
            )
        go = gr.Button("Run the three stages", variant="primary", elem_id="unclip-run")
        summary = gr.Markdown(elem_id="unclip-summary")
        strip = gr.Image(label="Embeddings: text (top), the prior's steps, the image embedding (bottom)",
                         format="png", elem_id="unclip-strip", elem_classes="pixelated", interactive=False)  # fmt: skip
        gallery = dict(format="png", columns=6, rows=1, height=200, object_fit="contain", elem_classes="pixelated")
        steps_view = gr.Gallery(
            label="The prior's steps: nearest training image", elem_id="unclip-steps-gallery", **gallery
        )
        pair = gr.Gallery(label="Swap: image embedding vs text embedding, decoded", elem_id="unclip-pair", **gallery)
        mixes = gr.Gallery(label="Mix the two prompts' image embeddings (A → B)", elem_id="unclip-mix", **gallery)
        seeds = gr.Gallery(label="One image embedding, different seeds (what the decoder adds)", elem_id="unclip-seeds",
                           **gallery)  # fmt: skip
    go.click(run, [prompt, other, seed, steps], [summary, strip, steps_view, pair, mixes, seeds],
             show_progress_on=[summary], api_visibility="private", concurrency_id="gpu",
             concurrency_limit=runtime.get().concurrency)  # fmt: skip
