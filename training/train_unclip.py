"""Train the bundled DALL-E 2-style model, stage 2 (stage 1 is training/train_clip.py): a tiny
Kandinsky 2.2 on the captioned 32×32 scenes of training/scenes.py. Fixed seeds, resumable.

    python -m training.train_unclip --stage movq                # VQModel "MoVQ", 32×32×3 ↔ 8×8×4
    python -m training.train_unclip --stage prior               # PriorTransformer: text emb → image emb
    python -m training.train_unclip --stage decoder             # UNet: image emb → movq latents
    python -m training.train_unclip --stage sharpen             # MoVQ decoder fine-tuned (L1), encoder frozen
    python -m training.train_unclip --stage export              # checkpoints → weights/, then graded

The frozen bundled CLIP (weights/shapes-clip) is split into the two halves Kandinsky's prior
pipeline holds: ``CLIPTextModelWithProjection`` and ``CLIPVisionModelWithProjection`` (the
CLIPModel's ``text_model.*``/``text_projection.*`` and ``vision_model.*``/``visual_projection.*``
weights, unchanged).

1. MoVQ: a ``VQModel`` with spatially conditioned norms (``norm_type="spatial"``, as Kandinsky's)
   and a 256-entry codebook of 4-d codes. ``KandinskyV22Pipeline`` decodes its latents unquantized
   (``force_not_quantize=True``), so that is the path trained: L1 + MSE reconstruction through it,
   the codebook pulled to the (detached) latents. (The first bundled run trained through the
   quantizer, straight-through, and its unquantized reconstructions kept only 71 % of the shapes;
   ``"quantized": True`` still runs it.) The pipeline decodes latents as they are (no scaling
   factor), so the encoder is also pushed to unit-variance latents: the diffusion noise then has
   the latents' scale.
2. Prior: a ``PriorTransformer`` reading the caption's CLIP text embedding (``text_embeds``) and
   its hidden states, denoising the CLIP image embedding of the same scene. Its captions also use
   word orders with the colour after the shape (scenes.COLOUR_AFTER), which CLIP's text tower learnt
   in its stage 2 (``train_clip --text-only``; the image tower, and so the decoder's input, unchanged). As Kandinsky's prior,
   it predicts the clean embedding (``prediction_type="sample"``) under UnCLIP's cosine schedule,
   in a space normalised by the training embeddings' ``clip_mean``/``clip_std``; captions are
   dropped (replaced by "") 10 % of the time for classifier-free guidance.
3. Decoder: a ``UNet2DConditionModel`` configured as Kandinsky 2.2's (``encoder_hid_dim_type=
   "image_proj"``, ``addition_embed_type="image"``, scale-shift resnets, 8 output channels of which
   the first 4 are the noise, the rest the unused variance) on the MoVQ's latents, conditioned on
   the scene's CLIP image embedding. 10 % of the time that embedding is replaced by the one the
   prior pipeline hands over as the negative (CLIP's embedding of an all-zero image), so
   classifier-free guidance works as the pipeline runs it.

EMA weights of the prior and the decoder are what ships. A checkpoint is written every --every
seconds to training/checkpoints/unclip/ and the same command resumes it. Export saves
``KandinskyV22PriorPipeline`` to weights/shapes-unclip-prior/ and ``KandinskyV22Pipeline`` to
weights/shapes-unclip/ (safetensors + configs), each with a model card and training.json; a stage
not trained yet is exported from its initial weights and the card says so.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    DDPMScheduler,
    KandinskyV22CombinedPipeline,
    KandinskyV22Pipeline,
    KandinskyV22PriorPipeline,
    PriorTransformer,
    UnCLIPScheduler,
    UNet2DConditionModel,
    VQModel,
)
from transformers import (
    CLIPImageProcessor,
    CLIPModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionModelWithProjection,
)

from shared import scenes

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "weights" / "shapes-clip"
CHECKPOINTS = ROOT / "training" / "checkpoints" / "unclip"
PRIOR_OUT = ROOT / "weights" / "shapes-unclip-prior"
DECODER_OUT = ROOT / "weights" / "shapes-unclip"
STAGES = ("movq", "prior", "decoder")
SHARPEN = "sharpen"  # optional 4th stage: the MoVQ's decoder fine-tuned for crisper edges

DEFAULTS = {  # the bundled run; --steps and --batch-size override the current stage's
    "movq": {"steps": 1600, "batch_size": 32, "lr": 1e-3, "scale_weight": 0.1, "quantized": False},
    "prior": {"steps": 3000, "batch_size": 96, "lr": 1e-3, "drop": 0.1, "word_orders": True},  # + COLOUR_AFTER
    "decoder": {"steps": 4000, "batch_size": 64, "lr": 8e-4, "drop": 0.1},
    "sharpen": {"steps": 1500, "batch_size": 32, "lr": 5e-4},
    "dataset_size": 20_000,  # training scenes (single and two-object), embedded once per stage
    "seed": 0,
}


# -- the models -----------------------------------------------------------------------------------


def movq_model(widths: tuple[int, ...] = (32, 64, 64), codes: int = 256) -> VQModel:
    """32×32×3 ↔ 8×8×4: two downsamplings, attention at 8×8 (as in Kandinsky's MoVQ)."""
    n = len(widths)
    return VQModel(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * (n - 1) + ("AttnDownEncoderBlock2D",),
        up_block_types=("AttnUpDecoderBlock2D",) + ("UpDecoderBlock2D",) * (n - 1),
        block_out_channels=widths,
        layers_per_block=1,
        latent_channels=4,
        num_vq_embeddings=codes,
        vq_embed_dim=4,
        norm_num_groups=8,
        norm_type="spatial",
        sample_size=scenes.SIZE,
    )


def prior_model(embedding_dim: int = 64, num_embeddings: int = 32, layers: int = 4, heads: int = 4) -> PriorTransformer:
    """Reads [text hidden states (32), text embedding, time, noisy image embedding, query] tokens."""
    return PriorTransformer(
        num_attention_heads=heads,
        attention_head_dim=32,
        num_layers=layers,
        embedding_dim=embedding_dim,
        num_embeddings=num_embeddings,
        additional_embeddings=4,
    )


def decoder_model(image_embed_dim: int = 64, widths: tuple[int, ...] = (64, 128)) -> UNet2DConditionModel:
    """Kandinsky 2.2's UNet in miniature, on 8×8×4 latents."""
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=8,  # noise and its variance, as Kandinsky's UNet predicts (the variance is unused)
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=widths,
        layers_per_block=1,
        encoder_hid_dim=image_embed_dim,
        encoder_hid_dim_type="image_proj",
        addition_embed_type="image",
        cross_attention_dim=widths[-1],
        attention_head_dim=32,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
        norm_num_groups=32 if widths[0] % 32 == 0 else 8,
    )


def prior_scheduler() -> UnCLIPScheduler:  # Kandinsky 2.2 prior's
    return UnCLIPScheduler(
        variance_type="fixed_small_log",
        prediction_type="sample",
        num_train_timesteps=1000,
        clip_sample=True,
        clip_sample_range=10.0,
    )


def decoder_scheduler() -> DDPMScheduler:  # Kandinsky 2.2 decoder's
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        steps_offset=1,
        prediction_type="epsilon",
        thresholding=False,
    )


def clip_halves(clip_dir: Path = CLIP) -> tuple[CLIPTextModelWithProjection, CLIPVisionModelWithProjection]:
    """The bundled CLIPModel as the two frozen encoders Kandinsky's prior pipeline holds."""
    clip = CLIPModel.from_pretrained(clip_dir, dtype=torch.float32)
    weights = clip.state_dict()
    text = CLIPTextModelWithProjection(clip.config.text_config)
    vision = CLIPVisionModelWithProjection(clip.config.vision_config)
    for half in (text, vision):  # same key names: text_model.*, text_projection.* / vision_model.*, visual_projection.*
        half.load_state_dict({k: weights[k] for k in half.state_dict()}, strict=True)
        half.requires_grad_(False).eval()
    return text, vision


def pixels(images: np.ndarray) -> torch.Tensor:
    """(B, 32, 32, 3) uint8 → (B, 3, 32, 32) float in [-1, 1], as CLIP and the MoVQ see them."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


@torch.no_grad()
def embed_text(text_encoder, tokenizer, captions: list[str]) -> dict[str, torch.Tensor]:
    """What the prior pipeline feeds its prior: text_embeds (B, 64), hidden states (B, 32, 64), mask (B, 32)."""
    out = {"text_embeds": [], "hidden": [], "mask": []}
    for i in range(0, len(captions), 1000):
        tokens = tokenizer(
            captions[i : i + 1000], padding="max_length", max_length=tokenizer.model_max_length,
            truncation=True, return_tensors="pt",
        )  # fmt: skip
        encoded = text_encoder(tokens.input_ids)
        out["text_embeds"].append(encoded.text_embeds)
        out["hidden"].append(encoded.last_hidden_state)
        out["mask"].append(tokens.attention_mask.bool())
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def embed_images(image_encoder, images: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings (B, 64) of (B, 3, 32, 32) pixels in [-1, 1]."""
    return torch.cat([image_encoder(images[i : i + 1000]).image_embeds for i in range(0, len(images), 1000)])


@torch.no_grad()
def zero_embed(image_encoder) -> torch.Tensor:
    """The decoder's negative: KandinskyV22PriorPipeline.get_zero_embed, an all-zero image's embedding."""
    size = image_encoder.config.image_size
    return image_encoder(torch.zeros(1, 3, size, size)).image_embeds


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int) -> None:
    decay = min(0.999, (1 + step) / (10 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, 1 - decay)


def set_lr(opt: torch.optim.Optimizer, peak: float, step: int, steps: int, warmup: int = 100) -> None:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    for group in opt.param_groups:
        group["lr"] = float(peak * min(1, (step + 1) / warmup) * (0.55 + 0.45 * np.cos(np.pi * step / steps)))


def dropped(drop: torch.Tensor, empty: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """Rows of `full` where drop (B,) is False, the empty caption's (1, ...) where it is True."""
    return torch.where(drop.view(-1, *[1] * (full.dim() - 1)), empty, full)


# -- the stages: each a generator that yields a checkpoint whenever log() asks for one -----------

Log = Callable[[int, dict], bool]


def train_movq(
    settings: dict, state: dict, log: Log, images: torch.Tensor, model: VQModel | None = None
) -> Iterator[dict]:
    g = torch.Generator().manual_seed(settings["seed"])
    movq = model or movq_model()
    with torch.no_grad():  # codes start where the unit-variance latents will be
        movq.quantize.embedding.weight.normal_(generator=g)
    opt = torch.optim.AdamW(movq.parameters(), settings["lr"], weight_decay=0.0)
    if state:
        movq.load_state_dict(state["movq"]), opt.load_state_dict(state["opt"]), g.set_state(state["rng"])
    for step in range(state.get("step", 0), settings["steps"]):
        set_lr(opt, settings["lr"], step, settings["steps"], settings.get("warmup", 100))
        x = images[torch.randint(0, len(images), (settings["batch_size"],), generator=g)]
        h = movq.encode(x).latents  # (B, 4, 8, 8), before quantization
        scale = (h.pow(2).mean() - 1).pow(2)  # unit-variance latents: the pipeline decodes them unscaled
        if settings.get("quantized", True):  # the first bundled run: through the codebook (straight-through)
            decoded = movq.decode(h)
            mse = F.mse_loss(decoded.sample, x)
            loss = mse + decoded.commit_loss.mean() + settings["scale_weight"] * scale
        else:  # the path KandinskyV22Pipeline decodes (force_not_quantize=True); the codebook follows the latents
            sample = movq.decode(h, force_not_quantize=True).sample
            mse = F.mse_loss(sample, x)
            codebook = movq.quantize(h.detach())[1]
            loss = F.l1_loss(sample, x) + mse + codebook + settings["scale_weight"] * scale
        opt.zero_grad(), loss.backward(), opt.step()
        values = {"loss": loss.item(), "mse": mse.item(), "latent_rms": h.pow(2).mean().sqrt().item()}
        if log(step, values):
            yield {"movq": movq.state_dict(), "opt": opt.state_dict(), "rng": g.get_state(), "step": step + 1}


def train_sharpen(
    settings: dict, state: dict, log: Log, images: torch.Tensor, movq_state: dict, model: VQModel | None = None
) -> Iterator[dict]:
    """The MoVQ's decoder fine-tuned with L1 (sharper edges than MSE) on latents as the pipeline
    decodes them: unquantized (``force_not_quantize=True``). The encoder is frozen, so the latents
    the UNet was trained on stay exactly what they were."""
    g = torch.Generator().manual_seed(settings["seed"] + 3)
    movq = model or movq_model()
    movq.load_state_dict(movq_state)
    movq.requires_grad_(False)
    params = [*movq.post_quant_conv.parameters(), *movq.decoder.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, settings["lr"], weight_decay=0.0)
    if state:
        movq.load_state_dict(state["movq"]), opt.load_state_dict(state["opt"]), g.set_state(state["rng"])
    for step in range(state.get("step", 0), settings["steps"]):
        set_lr(opt, settings["lr"], step, settings["steps"], settings.get("warmup", 100))
        x = images[torch.randint(0, len(images), (settings["batch_size"],), generator=g)]
        with torch.no_grad():
            h = movq.encode(x).latents
        decoded = movq.decode(h, force_not_quantize=True).sample
        loss = F.l1_loss(decoded, x)
        opt.zero_grad(), loss.backward(), opt.step()
        if log(step, {"loss": loss.item(), "mse": F.mse_loss(decoded, x).item()}):
            yield {"movq": movq.state_dict(), "opt": opt.state_dict(), "rng": g.get_state(), "step": step + 1}


def train_prior(
    settings: dict, state: dict, log: Log, text: dict, image_embeds: torch.Tensor, empty: dict,
    model: PriorTransformer | None = None,
) -> Iterator[dict]:  # fmt: skip
    """text: embed_text of the captions; image_embeds: (N, 64) of their scenes; empty: embed_text([""])."""
    g = torch.Generator().manual_seed(settings["seed"] + 1)
    prior = model or prior_model(image_embeds.shape[1], text["hidden"].shape[1])
    mean, std = image_embeds.mean(0, keepdim=True), image_embeds.std(0, keepdim=True)
    with torch.no_grad():  # the pipeline un-normalises its output with these: latents * clip_std + clip_mean
        prior.clip_mean.copy_(mean), prior.clip_std.copy_(std)
    target_all = (image_embeds - mean) / std
    schedule = prior_scheduler()
    opt = torch.optim.AdamW(prior.parameters(), settings["lr"], weight_decay=1e-2)
    ema = copy.deepcopy(prior).requires_grad_(False)
    if state:
        prior.load_state_dict(state["prior"]), ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"]), g.set_state(state["rng"])
    for step in range(state.get("step", 0), settings["steps"]):
        set_lr(opt, settings["lr"], step, settings["steps"], settings.get("warmup", 100))
        index = torch.randint(0, len(image_embeds), (settings["batch_size"],), generator=g)
        drop = torch.rand(len(index), generator=g) < settings["drop"]  # caption → "" for guidance
        chosen = {key: dropped(drop, empty[key], text[key][index]) for key in text}
        x0 = target_all[index]
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (len(index),), generator=g)
        predicted = prior(
            schedule.add_noise(x0, noise, t), timestep=t, proj_embedding=chosen["text_embeds"],
            encoder_hidden_states=chosen["hidden"], attention_mask=chosen["mask"],
        ).predicted_image_embedding  # fmt: skip
        loss = F.mse_loss(predicted, x0)  # the clean embedding, as Kandinsky's prior predicts
        opt.zero_grad(), loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
        opt.step()
        ema_update(ema, prior, step)
        if log(step, {"loss": loss.item()}):
            yield {
                "prior": prior.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                "rng": g.get_state(), "step": step + 1,
            }  # fmt: skip


def train_decoder(
    settings: dict, state: dict, log: Log, latents: torch.Tensor, image_embeds: torch.Tensor, negative: torch.Tensor,
    model: UNet2DConditionModel | None = None,
) -> Iterator[dict]:  # fmt: skip
    """latents: (N, 4, 8, 8) MoVQ encodings; image_embeds: (N, 64) CLIP embeddings of the same scenes."""
    g = torch.Generator().manual_seed(settings["seed"] + 2)
    unet = model or decoder_model(image_embeds.shape[1])
    schedule = decoder_scheduler()
    opt = torch.optim.AdamW(unet.parameters(), settings["lr"], weight_decay=1e-2)
    ema = copy.deepcopy(unet).requires_grad_(False)
    if state:
        unet.load_state_dict(state["unet"]), ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"]), g.set_state(state["rng"])
    for step in range(state.get("step", 0), settings["steps"]):
        set_lr(opt, settings["lr"], step, settings["steps"], settings.get("warmup", 100))
        index = torch.randint(0, len(latents), (settings["batch_size"],), generator=g)
        drop = torch.rand(len(index), 1, generator=g) < settings["drop"]  # embedding → the negative, for guidance
        embeds = torch.where(drop, negative, image_embeds[index])
        z = latents[index]
        noise = torch.randn(z.shape, generator=g)
        t = torch.randint(0, 1000, (len(index),), generator=g)
        output = unet(schedule.add_noise(z, noise, t), t, encoder_hidden_states=None,
                      added_cond_kwargs={"image_embeds": embeds}).sample  # fmt: skip
        loss = F.mse_loss(output[:, : z.shape[1]], noise)  # the noise half; the variance half is left alone
        opt.zero_grad(), loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema_update(ema, unet, step)
        if log(step, {"loss": loss.item()}):
            yield {
                "unet": unet.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                "rng": g.get_state(), "step": step + 1,
            }  # fmt: skip


# -- checkpoints and export ----------------------------------------------------------------------


def load_checkpoint(directory: Path, stage: str) -> dict:
    path = directory / f"{stage}.pt"
    return torch.load(path, weights_only=True) if path.exists() else {}


def save_checkpoint(directory: Path, stage: str, snapshot: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{stage}.pt.tmp"
    torch.save(snapshot, tmp)
    tmp.replace(directory / f"{stage}.pt")  # never a half-written checkpoint, even if the session ends


def pipelines(
    directory: Path = CHECKPOINTS, clip_dir: Path = CLIP
) -> tuple[KandinskyV22PriorPipeline, KandinskyV22Pipeline, dict]:
    """The two pipelines made of the checkpoints' (EMA) weights, and what each stage has done.
    A stage without a checkpoint contributes its seeded initial weights."""
    torch.manual_seed(0)
    text_encoder, image_encoder = clip_halves(clip_dir)
    tokenizer = CLIPTokenizer.from_pretrained(clip_dir)
    info = {}
    states = {stage: load_checkpoint(directory, stage) for stage in (*STAGES, SHARPEN)}
    movq, prior = movq_model(), prior_model(text_encoder.config.projection_dim, tokenizer.model_max_length)
    unet = decoder_model(image_encoder.config.projection_dim)
    for stage, model, key in (("movq", movq, "movq"), ("prior", prior, "ema"), ("decoder", unet, "ema")):
        state = states[stage]
        if state:
            model.load_state_dict(state[key])
        info[stage] = {
            "step": state.get("step", 0), "settings": state.get("settings"), "seconds": state.get("seconds", 0),
            "history": state.get("history", []),
        }  # fmt: skip
    if states[SHARPEN]:  # the sharpened MoVQ decoder replaces the first one (same encoder)
        movq.load_state_dict(states[SHARPEN]["movq"])
        info[SHARPEN] = {
            k: states[SHARPEN].get(k, d) for k, d in (("step", 0), ("settings", None), ("seconds", 0), ("history", []))
        }
    prior_pipe = KandinskyV22PriorPipeline(
        prior=prior.eval(), image_encoder=image_encoder, text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=prior_scheduler(), image_processor=CLIPImageProcessor.from_pretrained(clip_dir),
    )  # fmt: skip
    decoder_pipe = KandinskyV22Pipeline(unet=unet.eval(), scheduler=decoder_scheduler(), movq=movq.eval())
    return prior_pipe, decoder_pipe, info


def combined(prior_pipe: KandinskyV22PriorPipeline, decoder_pipe: KandinskyV22Pipeline) -> KandinskyV22CombinedPipeline:
    """Prior + decoder as the app combines them (shared/loaders.py::_with_prior)."""
    return KandinskyV22CombinedPipeline(
        **decoder_pipe.components, **{f"prior_{name}": part for name, part in prior_pipe.components.items()}
    )


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_card(name: str, body: str) -> str:
    return (
        f"---\nlibrary_name: diffusers\npipeline_tag: text-to-image\nlicense: apache-2.0\n---\n\n# {name}\n\n{body}\n"
    )


def export(
    directory: Path = CHECKPOINTS, prior_out: Path = PRIOR_OUT, decoder_out: Path = DECODER_OUT,
    clip_dir: Path = CLIP, evaluate: bool = True,
) -> dict:  # fmt: skip
    """Save both pipelines (fp32 safetensors), reload them as the app does, grade them, and write
    each folder's training.json and model card."""
    prior_pipe, decoder_pipe, info = pipelines(directory, clip_dir)
    prior_pipe.save_pretrained(prior_out, safe_serialization=True)
    decoder_pipe.save_pretrained(decoder_out, safe_serialization=True)
    sizes = {
        part: parameters(model)
        for part, model in (
            ("prior", prior_pipe.prior), ("text_encoder", prior_pipe.text_encoder),
            ("image_encoder", prior_pipe.image_encoder), ("unet", decoder_pipe.unet), ("movq", decoder_pipe.movq),
        )
    }  # fmt: skip
    report = None
    if evaluate:
        from training.evaluate_unclip import evaluate as grade
        from training.evaluate_unclip import load_bundled

        report = grade(load_bundled(prior_out, decoder_out))
    final = all(info[s]["step"] >= (info[s]["settings"] or {}).get("steps", 1) > 0 for s in STAGES)
    record = {"final": final, "stages": info, "parameters": sizes, "evaluation": report}
    for out in (prior_out, decoder_out):
        (out / "training.json").write_text(json.dumps(record, indent=1))
    done = ", ".join(f"{s} {v['step']} steps ({v['seconds']:.0f} s)" for s, v in info.items())
    status = (
        ""
        if final
        else "\n**Unfinished run**: this export holds the checkpoints as they stood; resume with the same commands.\n"
    )
    accuracy = (
        f"Held-out prompts (`python -m training.evaluate_unclip`): single-object attribute accuracy "
        f"{report['single']['mean']:.1%} (shape {report['single']['shape']:.0%}, colour {report['single']['colour']:.0%}, "
        f"size {report['single']['size']:.0%}, place {report['single']['place']:.0%}); two-object prompts "
        f"{report['pairs']['mean']:.1%}, relation {report['pairs']['relation']:.0%}. Figures in `training.json`."
        if report
        else "Not graded at export."
    )
    common = (
        f"A tiny Kandinsky 2.2 (DALL-E 2-style) trained from scratch by GenAI Playground on the 32×32 captioned "
        f"scenes of `training/scenes.py`, with `python -m training.train_unclip` ({done}).{status}\n"
        f"- Prior (weights/shapes-unclip-prior, `KandinskyV22PriorPipeline`): the frozen bundled CLIP "
        f"(weights/shapes-clip) split into `CLIPTextModelWithProjection` ({sizes['text_encoder']:,} parameters) and "
        f"`CLIPVisionModelWithProjection` ({sizes['image_encoder']:,}); a `PriorTransformer` ({sizes['prior']:,}) that "
        f"denoises the 64-d CLIP image embedding given the caption's text embedding and hidden states, predicting "
        f"the clean embedding (UnCLIPScheduler, cosine schedule), normalised by the training embeddings' clip_mean/clip_std.\n"
        f"- Decoder (weights/shapes-unclip, `KandinskyV22Pipeline`): a `UNet2DConditionModel` ({sizes['unet']:,}) "
        f"configured as Kandinsky 2.2's (image_proj + image addition embedding) on 8×8×4 latents of a `VQModel` "
        f"MoVQ ({sizes['movq']:,}; spatial norms, 256 codes), DDPMScheduler, ε-prediction, the image embedding "
        f"dropped to the zero-image embedding 10 % of the time for classifier-free guidance.\n"
        f"- fp32 safetensors. Load the two folders with `KandinskyV22PriorPipeline.from_pretrained` and "
        f"`KandinskyV22Pipeline.from_pretrained` (or combine them, as the app does); images are 32×32.\n\n{accuracy}"
    )
    (prior_out / "README.md").write_text(model_card("shapes-unclip-prior", common))
    (decoder_out / "README.md").write_text(model_card("shapes-unclip", common))
    print(f"saved {prior_out} and {decoder_out}: {done}", flush=True)
    return record


# -- data for a stage ----------------------------------------------------------------------------


def stage_inputs(
    stage: str, directory: Path, dataset_size: int, seed: int, clip_dir: Path = CLIP, word_orders: bool = False
) -> dict:
    """What a stage trains on: pixels for the MoVQ; frozen CLIP embeddings (and MoVQ latents) otherwise.
    ``word_orders``: single-object captions also put the colour after the shape (scenes.COLOUR_AFTER)."""
    templates = scenes.WORD_ORDER_TEMPLATES if word_orders else scenes.TRAIN_TEMPLATES
    raw, captions = scenes.training_set(dataset_size, seed=seed, templates=templates)
    images = pixels(raw)
    if stage == "movq":
        return {"images": images}
    if stage == SHARPEN:
        return {"images": images, "movq_state": load_checkpoint(directory, "movq")["movq"]}
    text_encoder, image_encoder = clip_halves(clip_dir)
    image_embeds = embed_images(image_encoder, images)
    if stage == "prior":
        tokenizer = CLIPTokenizer.from_pretrained(clip_dir)
        return {
            "text": embed_text(text_encoder, tokenizer, captions),
            "image_embeds": image_embeds,
            "empty": embed_text(text_encoder, tokenizer, [""]),
        }
    movq_state = load_checkpoint(directory, "movq")
    if not movq_state:
        raise SystemExit("The decoder trains on MoVQ latents: run --stage movq first.")
    movq = movq_model()
    movq.load_state_dict(movq_state["movq"])
    with torch.no_grad():  # every scene encoded once (before quantization, as the pipeline decodes)
        latents = torch.cat([movq.encode(images[i : i + 500]).latents for i in range(0, len(images), 500)])
    return {"latents": latents, "image_embeds": image_embeds, "negative": zero_embed(image_encoder)}


def run_stage(stage: str, settings: dict, directory: Path = CHECKPOINTS, every: float = 120.0, **models) -> dict:
    """Train a stage (or resume it) to settings["steps"], checkpointing every `every` seconds."""
    state = load_checkpoint(directory, stage)
    history: list[dict] = state.get("history", [])
    seconds = state.get("seconds", 0.0)
    if state:
        print(f"resuming {stage} at step {state['step']}", flush=True)
    inputs = stage_inputs(
        stage, directory, settings["dataset_size"], settings["seed"], settings.get("clip_dir", CLIP),
        settings.get("word_orders", False),
    )  # fmt: skip
    start = last_save = time.time()

    def log(step: int, values: dict) -> bool:
        nonlocal last_save
        if step % 50 == 0:
            history.append({"step": step, **{k: round(v, 5) for k, v in values.items()}})
        if step % 100 == 0:
            print(f"{stage} step {step}/{settings['steps']} {values} {time.time() - start:.0f}s", flush=True)
        if time.time() - last_save >= every or step + 1 == settings["steps"]:
            last_save = time.time()
            return True
        return False

    train = {"movq": train_movq, "prior": train_prior, "decoder": train_decoder, SHARPEN: train_sharpen}[stage]
    for snapshot in train(settings, state, log, **inputs, **models):
        elapsed = seconds + time.time() - start
        save_checkpoint(directory, stage, {**snapshot, "history": history, "settings": settings, "seconds": elapsed})
    final = load_checkpoint(directory, stage)
    print(f"{stage} done at step {final.get('step', 0)} after {final.get('seconds', 0):.0f}s", flush=True)
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=[*STAGES, SHARPEN, "export"], required=True)
    parser.add_argument("--steps", type=int, help="override the stage's default step count")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--every", type=float, default=120.0, help="checkpoint every this many seconds")
    parser.add_argument("--no-eval", action="store_true", help="export without grading")
    parser.add_argument("--prior-out", type=Path, default=PRIOR_OUT, help="export: the prior's folder")
    parser.add_argument("--decoder-out", type=Path, default=DECODER_OUT, help="export: the decoder's folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(DEFAULTS["seed"])
    random.seed(DEFAULTS["seed"])
    if args.stage == "export":
        export(prior_out=args.prior_out, decoder_out=args.decoder_out, evaluate=not args.no_eval)
        return
    settings = {**DEFAULTS[args.stage], "dataset_size": DEFAULTS["dataset_size"], "seed": DEFAULTS["seed"]}
    settings.update({k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size)) if v})
    run_stage(args.stage, settings, every=args.every)


if __name__ == "__main__":
    main()
