"""Train the bundled CLIP, stage 1 of a DALL-E 2-style model: a tiny transformers ``CLIPModel``
learnt from scratch, contrastively, on the captioned 32×32 scenes that training/scenes.py renders.
Fixed seeds, resumable, about 20 minutes on one CPU thread.

    python -m training.train_clip --steps 3000     # train (or resume), then export to weights/shapes-clip/
    python -m training.train_clip --export         # the latest checkpoint → weights/shapes-clip/

Text: a 2-layer CLIPTextModel over the captions' own words (``clip_tokenizer``, shared with the
text-to-image model). Images: a 2-layer CLIPVisionModel on 4×4 patches (8×8 = 64 patches + CLS).
Both project to a shared 64-d space; the loss is CLIP's symmetric InfoNCE with a learned
temperature (``CLIPModel(..., return_loss=True)``; logit_scale clamped at ln 100 as in CLIP).

Every step draws a fresh batch from the training split (single- and two-object scenes, training
templates only, no held-out colour–shape pair), seeded by the step, so a resumed run sees the same
batches. Random scenes rarely differ in one attribute only, so half of each batch is *twins*: a
scene and a copy that differs in exactly one attribute (shape, colour, size, place, relation), each
with its own caption. The twin is the hardest negative its original has, and vice versa. No two
scenes in a batch share their truth, so no caption has a second correct image.

Stage 2 (``--text-only``) fine-tunes the text tower alone, the image tower, its projection and the
temperature frozen, on captions that also use scenes.COLOUR_AFTER, word orders where the colour follows
the shape: the base run read the colour of "small square on the right, green" (a held-out paraphrase)
right 74 % of the time. The image embedding space does not move, so nothing trained on image embeddings
(the unCLIP decoder, the tab's gallery) has to be retrained; what reads the text tower does.

    python -m training.train_clip --text-only      # from the base run (its checkpoint, or weights/)

A checkpoint is written every --every steps to training/checkpoints/clip/ (clip-text/ for stage 2) and
resumed on restart.
The result is saved with ``CLIPModel.save_pretrained`` (safetensors + config), the tokenizer and a
CLIPImageProcessor for 32×32 images, so it loads with the same transformers code as any hub CLIP.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

from shared import scenes
from shared.scenes import key, render, twin
from training.train_text_to_image import MAX_TOKENS, caption_words, clip_tokenizer

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "training" / "checkpoints" / "clip"
TEXT_CHECKPOINTS = ROOT / "training" / "checkpoints" / "clip-text"  # stage 2
OUT = ROOT / "weights" / "shapes-clip"
IMAGE_MEAN = IMAGE_STD = (0.5, 0.5, 0.5)  # pixels in [-1, 1], as the text-to-image model sees them
PAIR_FRACTION = 0.35  # two-object scenes among the random ones, as in scenes.training_set
MAX_LOGIT_SCALE = math.log(100)  # CLIP clamps its temperature so logits stay ≤ 100

DEFAULTS = {  # the bundled run; every knob is also a flag
    "steps": 3000,
    "batch_size": 256,  # captions and images per step: 255 negatives for each
    "twins": 0.5,  # fraction of the batch that is one-attribute twins of the other scenes
    "hidden": 64,  # width of both towers
    "layers": 2,  # transformer layers in each tower
    "heads": 4,
    "projection_dim": 64,  # the shared embedding space
    "lr": 2e-3,  # peak, after warm-up; then cosine decay to 10 %
    "warmup": 200,  # steps of linear warm-up
    "weight_decay": 0.1,  # on weight matrices only, not on norms, biases or the temperature
    "seed": 0,
}
TEXT_ONLY = {"steps": 800, "lr": 5e-4, "warmup": 50}  # stage 2's own knobs; the rest as the base run


def _training_pair(pair: tuple[str, str]) -> bool:
    return pair not in scenes.HELD_OUT_PAIRS


def training_batch(
    step: int, batch_size: int, twins: float, seed: int = 0, templates=scenes.TRAIN_TEMPLATES
) -> tuple[np.ndarray, list[str]]:
    """Images (B, 32, 32, 3) uint8 and captions for one step, all distinct scenes of the training
    split; a `twins` fraction of them are one-attribute copies of others. Seeded by the step."""
    rng = random.Random(seed * 1_000_003 + step)
    images, captions, seen = [], [], set()
    while len(images) < batch_size:
        pair = rng.random() < PAIR_FRACTION
        image, caption, truth = scenes.pair_scene(rng) if pair else scenes.single_scene(rng, templates=templates)
        if key(truth) in seen:
            continue
        seen.add(key(truth))
        images.append(image), captions.append(caption)
        if len(images) < batch_size and rng.random() < twins / (1 - twins):  # copies / all = twins
            attribute = rng.choice(("shape", "colour", "size", "relation" if "objects" in truth else "place"))
            other = twin(truth, attribute, rng, allowed=_training_pair)
            if other is not None and key(other) not in seen:
                seen.add(key(other))
                image, caption = render(other, rng, templates)
                images.append(image), captions.append(caption)
    return np.stack(images), captions


# -- the model -----------------------------------------------------------------------------------


def clip_model(
    tokenizer: CLIPTokenizer, *, hidden: int, layers: int, heads: int, projection_dim: int, **_
) -> CLIPModel:
    """A CLIPModel with both towers `layers` deep and `hidden` wide, for 32×32 images in 4×4 patches."""
    tower = dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers, num_attention_heads=heads)
    text = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,  # pooled at the first <|endoftext|>
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=projection_dim,
        **tower,
    )
    vision = dict(image_size=scenes.SIZE, patch_size=4, projection_dim=projection_dim, **tower)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim))


def image_processor() -> CLIPImageProcessor:
    """Resize/crop to 32×32 and map pixels to [-1, 1], exactly what `pixels` does in training."""
    return CLIPImageProcessor(
        size={"shortest_edge": scenes.SIZE},
        crop_size={"height": scenes.SIZE, "width": scenes.SIZE},
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
    )


def pixels(images: np.ndarray) -> torch.Tensor:
    """(B, 32, 32, 3) uint8 → (B, 3, 32, 32) float in [-1, 1]."""
    mean, std = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std


def tokens(tokenizer: CLIPTokenizer, captions: list[str]) -> dict[str, torch.Tensor]:
    return tokenizer(captions, padding=True, max_length=MAX_TOKENS, truncation=True, return_tensors="pt")


# -- training ------------------------------------------------------------------------------------


def train(
    settings: dict, state: dict, log_every: int = 50, every: int = 250, init: dict | None = None
) -> Iterator[dict]:
    """Train from `state` (a checkpoint, or {} to start) to settings["steps"]; yields a snapshot
    every `every` steps and at the end. A snapshot holds the model, optimizer and step. Stage 2
    (settings["text_only"]) starts from `init`, by default base_weights()."""
    torch.manual_seed(settings["seed"])  # the initial weights
    tokenizer = clip_tokenizer(caption_words())
    model = clip_model(tokenizer, **settings)
    templates = scenes.TRAIN_TEMPLATES
    if settings.get("text_only"):  # stage 2: from the base run, only the text tower learns
        if not state:
            model.load_state_dict(init or base_weights())
        model.vision_model.requires_grad_(False), model.visual_projection.requires_grad_(False)
        model.logit_scale.requires_grad_(False)
        templates = scenes.WORD_ORDER_TEMPLATES
    trained = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trained if p.ndim >= 2]
    no_decay = [p for p in trained if p.ndim < 2]  # norms, biases, logit_scale
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings["lr"],
        betas=(0.9, 0.98),
        eps=1e-6,
    )  # CLIP's β2 and ε
    history: list[dict] = list(state.get("history", []))
    seconds = state.get("seconds", 0.0)
    if state:
        model.load_state_dict(state["model"]), opt.load_state_dict(state["opt"])
    model.train()
    start = time.time() - seconds
    steps = settings["steps"]
    for step in range(state.get("step", 0), steps):
        warmup = min(1, (step + 1) / max(1, settings["warmup"]))
        lr = settings["lr"] * warmup * (0.55 + 0.45 * math.cos(math.pi * step / steps))
        for group in opt.param_groups:
            group["lr"] = lr
        images, captions = training_batch(step, settings["batch_size"], settings["twins"], settings["seed"], templates)
        # logits (B, B): text i vs image j, scaled by exp(logit_scale); loss = mean of the two CEs
        out = model(**tokens(tokenizer, captions), pixel_values=pixels(images), return_loss=True)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        if step % log_every == 0:
            accuracy = (out.logits_per_text.argmax(1) == torch.arange(len(captions))).float().mean().item()
            row = {
                "step": step,
                "loss": round(out.loss.item(), 4),
                "batch_top1": round(accuracy, 3),  # caption → image within the batch
                "temperature": round(1 / model.logit_scale.exp().item(), 4),
                "lr": round(lr, 6),
            }
            history.append(row)
            print(f"step {step}/{steps} {row} {time.time() - start:.0f}s", flush=True)
        if (step + 1) % every == 0 or step + 1 == steps:
            yield {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "step": step + 1,
                "history": history,
                "seconds": time.time() - start,
                "settings": settings,
            }


def base_weights() -> dict:
    """Stage 2's starting point: the base run's checkpoint, or its export in weights/ while that is
    still the base run's (its training.json has no "text_only" record)."""
    state = load_checkpoint(CHECKPOINTS)
    if state:
        return state["model"]
    if "text_only" in json.loads((OUT / "training.json").read_text()):
        raise SystemExit(f"{OUT} is stage 2's export: retrain the base run, or check its weights out of git")
    return CLIPModel.from_pretrained(OUT, dtype=torch.float32).state_dict()


def load_checkpoint(directory: Path) -> dict:
    path = directory / "clip.pt"
    return torch.load(path, weights_only=True) if path.exists() else {}


def save_checkpoint(directory: Path, snapshot: dict) -> None:
    """Written to a temporary file first, so a run killed mid-save keeps its previous checkpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(snapshot, directory / "clip.pt.tmp")
    (directory / "clip.pt.tmp").replace(directory / "clip.pt")


def from_checkpoint(directory: Path = CHECKPOINTS) -> tuple[CLIPModel, CLIPTokenizer, dict]:
    """The model in the latest checkpoint (training may go on), its tokenizer and the checkpoint."""
    state = load_checkpoint(directory)
    if not state:
        raise FileNotFoundError(f"no checkpoint in {directory}: train first (python -m training.train_clip)")
    state["settings"] = {**DEFAULTS, **state["settings"]}  # knobs added since the run, at their defaults
    tokenizer = clip_tokenizer(caption_words())
    model = clip_model(tokenizer, **state["settings"])
    model.load_state_dict(state["model"])
    return model.eval(), tokenizer, state


def export(directory: Path, out: Path) -> dict:
    """Save the checkpoint's model (safetensors + config), tokenizer and image processor in
    transformers format, measure it on held-out scenes, and record both in training.json."""
    from training import evaluate_clip

    model, tokenizer, state = from_checkpoint(directory)
    base = json.loads((out / "training.json").read_text()) if state["settings"].get("text_only") else None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor().save_pretrained(out)
    report = evaluate_clip.evaluate(model, tokenizer, image_processor())
    info = {
        "steps": state["step"],
        "train_seconds": round(state["seconds"]),
        "threads": torch.get_num_threads(),
        "settings": state["settings"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "evaluation": report,
        "word_orders": evaluate_clip.word_orders(model, tokenizer, image_processor()),
        "history": state["history"],
    }
    if base is not None:  # stage 2 keeps the base run's record; the top-level evaluation is what ships
        base = base.get("base", base)
        info = {
            **{k: v for k, v in info.items() if k in ("evaluation", "word_orders")},
            "base": base,
            "text_only": info,
        }
    (out / "training.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(report, indent=1))
    print(f"saved {out} (step {state['step']})", flush=True)
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, value in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--every", type=int, default=250, help="checkpoint every this many steps")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINTS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--export", action="store_true", help="export the latest checkpoint, don't train")
    parser.add_argument("--no-export", action="store_true", help="train only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--text-only", action="store_true", help="stage 2: the text tower on more word orders")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.text_only and args.checkpoints == CHECKPOINTS:
        args.checkpoints = TEXT_CHECKPOINTS
    if args.export:
        export(args.checkpoints, args.out)
        return
    settings = {name: getattr(args, name) for name in DEFAULTS}
    if args.text_only:
        settings |= {**TEXT_ONLY, "text_only": True}
    state = load_checkpoint(args.checkpoints)
    if state:
        print(f"resuming at step {state['step']} of {settings['steps']}", flush=True)
        settings = {**DEFAULTS, **state["settings"], "steps": settings["steps"]}  # the run's model, a new length
    for snapshot in train(settings, state, log_every=args.log_every, every=args.every):
        save_checkpoint(args.checkpoints, snapshot)
        state = snapshot
    print(f"trained {state['step']} steps in {state['seconds']:.0f}s", flush=True)
    if not args.no_export:
        export(args.checkpoints, args.out)


if __name__ == "__main__":
    main()
