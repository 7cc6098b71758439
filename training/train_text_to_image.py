"""Train the bundled text-to-image model: a tiny latent diffusion model with the anatomy of Stable
Diffusion, on captioned 32×32 scenes that training/scenes.py renders. Fixed seeds, resumable,
about an hour on 2 CPU cores in all.

    python -m training.train_text_to_image --stage vae  --steps 2000    # AutoencoderKL, 32×32×3 ↔ 8×8×4
    python -m training.train_text_to_image --stage unet --steps 4000    # UNet + text encoder → weights/shapes-t2i/
    python -m training.train_text_to_image --stage export               # the latest checkpoint → weights/
    python -m training.train_text_to_image --stage clip --steps 3000    # stage 3: the bundled CLIP as text encoder
    python -m training.train_text_to_image --stage export --from clip   # its checkpoint → weights/, graded
    python -m training.train_text_to_image --stage word-order --steps 1000  # stage 4: colour after shape

Stage 1 trains an AutoencoderKL (KL weight 1e-6, as in Stable Diffusion's VAE) so diffusion runs on
8×8×4 latents, 12× fewer numbers than pixels. Stage 2 encodes every training image once, then
trains a UNet2DConditionModel jointly with a small CLIPTextModel from scratch on the denoising
loss (ε-prediction, Stable Diffusion's scaled-linear β schedule, captions dropped 10 % of the time
so classifier-free guidance works). An exponential moving average of the weights is what ships.
The text encoder is trained alongside, not frozen, because the vocabulary is a few dozen words and
a frozen LM would cost more to run than the whole rest of the model.

Stage 3 (``clip``) swaps the text encoder for the bundled CLIP's text tower (weights/shapes-clip,
same tokenizer), which contrastive training taught to tell "a red circle above a blue square" from
the swapped scene; the jointly trained encoder never learnt which object goes where (relations 60 %,
half of them swapped). The UNet, started from the shipped one, lifts CLIP's 64-d states to its
cross-attention width and pools them into its time embedding; CLIP is fine-tuned at a fifth of the
UNet's rate, on scenes half of which are two-object, half of those captioned without sizes.

Stage 4 (``word-order``) fine-tunes the stage-3 model's text encoder alone (the UNet frozen, from
weights/) on captions that also put the colour after the shape (scenes.COLOUR_AFTER): stage 3 drew
"small square on the right, green", a held-out paraphrase, purple, as CLIP's own text tower read it.
(Fine-tuning the UNet with it, at 2e-4, mended the colours too but lost shapes on the tuning draw.)

A checkpoint is written every --every steps to training/checkpoints/ and resumed on restart. The
result is saved with ``StableDiffusionPipeline.save_pretrained`` (safetensors + configs), so the
app loads it with the same diffusers code as any hub pipeline.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import BertConfig, BertModel, CLIPModel, CLIPTextConfig, CLIPTextModel

from shared import scenes

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "training" / "checkpoints"
OUT = ROOT / "weights" / "shapes-t2i"
CLIP = ROOT / "weights" / "shapes-clip"
DATASET_SIZE = 40_000
MAX_TOKENS = 32


def clip_tokenizer(words: list[str], max_length: int = MAX_TOKENS):
    """A CLIPTokenizer built from a local vocabulary: CLIP's 512 byte-level symbols, plus merges
    that assemble each given word into one token. Any other text still tokenizes (into pieces)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    merges = []
    for word in sorted(set(words)):
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in merges:
                merges.append(pair)
                vocab.setdefault(pair[0] + pair[1], len(vocab))
            pieces = [pair[0] + pair[1]] + pieces[2:]
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = max_length
    return tokenizer


def caption_words() -> list[str]:
    text = " ".join(scenes.training_set(3000, seed=0)[1] + [p for p, _ in scenes.held_out_prompts(200)])
    return text.replace(",", " ").split()


def vae_model() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=32,
    )


TEXT_SIZE = dict(
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=3,
    num_attention_heads=4,
    max_position_embeddings=MAX_TOKENS,
)  # fmt: skip  either text encoder's


def text_model(vocab_size: int) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        **TEXT_SIZE,
        eos_token_id=vocab_size - 1,
        bos_token_id=vocab_size - 2,
        pad_token_id=vocab_size - 1,
    )
    return CLIPTextModel(config)


def bidirectional_text_model(vocab_size: int) -> BertModel:
    """A text encoder of text_model's size whose every token sees the whole caption. CLIP's is causal: in
    "a red circle above a blue square" the first object's tokens never see "above", and the first run
    swapped the two objects in 13 of its 16 failed relations (of 40)."""
    config = BertConfig(
        vocab_size=vocab_size,
        **TEXT_SIZE,
        type_vocab_size=1,
        pad_token_id=vocab_size - 1,
    )
    return BertModel(config, add_pooling_layer=False)


def unet_model(text_dim: int | None = None) -> UNet2DConditionModel:
    """With ``text_dim`` (the bundled CLIP's 64), the UNet reads a text encoder of that width: a linear
    ``encoder_hid_proj`` lifts its hidden states to the cross-attention width, and an attention-pooled
    summary of them (``addition_embed_type="text"``, as DeepFloyd IF) joins the time embedding, so
    every resnet sees the whole caption's layout, not only the pixels that attend to a word."""
    extra = (
        dict(encoder_hid_dim=text_dim, encoder_hid_dim_type="text_proj", addition_embed_type="text",
             addition_embed_type_num_heads=4)
        if text_dim else {}
    )  # fmt: skip
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(64, 128),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=128,
        attention_head_dim=8,
        norm_num_groups=32,
        **extra,
    )


def clip_text_encoder(clip_dir: Path = CLIP) -> CLIPTextModel:
    """The bundled CLIP's text tower (weights/shapes-clip, trained contrastively on the same scenes and
    tokenizer) as a CLIPTextModel, the class Stable Diffusion's pipeline holds."""
    clip = CLIPModel.from_pretrained(clip_dir, dtype=torch.float32)
    text = CLIPTextModel(clip.config.text_config)
    text.load_state_dict(clip.text_model.state_dict(), strict=True)
    return text


def noise_scheduler() -> DDPMScheduler:  # Stable Diffusion's training schedule
    return DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1
    )


def as_tensor(images) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def train_vae(steps: int, state: dict, log, images: torch.Tensor):
    g = torch.Generator().manual_seed(0)
    vae = vae_model()
    opt = torch.optim.AdamW(vae.parameters(), 1e-3, weight_decay=0.0)
    if state:
        vae.load_state_dict(state["vae"]), opt.load_state_dict(state["opt"]), g.set_state(state["rng"])
    for step in range(state.get("step", 0), steps):
        x = images[torch.randint(0, len(images), (32,), generator=g)]
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=g)
        recon = vae.decode(z).sample
        kl = posterior.kl().mean() / x[0].numel()
        loss = F.mse_loss(recon, x) + 1e-6 * kl
        opt.zero_grad(), loss.backward(), opt.step()
        if log(step, {"mse": loss.item(), "kl": kl.item()}):
            yield {"vae": vae.state_dict(), "opt": opt.state_dict(), "rng": g.get_state(), "step": step + 1}
    return vae


def train_unet(
    steps: int, state: dict, log, vae: AutoencoderKL, images: torch.Tensor, captions: list[str],
    init: StableDiffusionPipeline | None = None, lr: float = 5e-4, seed: int = 1, text_factory=None,
    text_encoder=None, unet=None, text_lr: float | None = None,
):  # fmt: skip
    """The UNet and the text encoder, from scratch or (``init``) fine-tuned from a trained pipeline; with
    ``text_factory`` the text encoder is a new one of that kind (only the UNet starts from ``init``).
    A given ``text_encoder`` (already trained) and ``unet`` replace the new ones; the UNet then takes
    from ``init`` every weight whose shape it shares. ``text_lr``: the text encoder's own peak rate."""
    g = torch.Generator().manual_seed(seed)
    tokenizer = clip_tokenizer(caption_words())
    given_text = text_encoder is not None
    text_encoder = text_encoder if given_text else (text_factory or text_model)(len(tokenizer))
    unet = unet or unet_model()
    if init is not None:
        unet.load_state_dict(init.unet.state_dict(), strict=not given_text)
        if text_factory is None and not given_text:
            text_encoder.load_state_dict(init.text_encoder.state_dict())
        state = state or {"scaling": init.vae.config.scaling_factor}
    with torch.no_grad():  # every image encoded once: μ and σ of its posterior
        moments = torch.cat(
            [vae.encode(images[i : i + 500]).latent_dist.parameters for i in range(0, len(images), 500)]
        )
    mean, logvar = moments.chunk(2, dim=1)
    scaling = state.get("scaling") or float(1 / mean.std())
    ids = tokenizer(
        captions, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt"
    ).input_ids
    empty = tokenizer([""], padding="max_length", max_length=MAX_TOKENS, return_tensors="pt").input_ids
    schedule = noise_scheduler()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(
        [{"params": list(unet.parameters()), "peak": lr},
         {"params": list(text_encoder.parameters()), "peak": lr if text_lr is None else text_lr}],
        lr, weight_decay=1e-2,
    )  # fmt: skip
    ema = {
        "unet": copy.deepcopy(unet).requires_grad_(False),
        "text_encoder": copy.deepcopy(text_encoder).requires_grad_(False),
    }
    if "step" in state:
        unet.load_state_dict(state["unet"]), text_encoder.load_state_dict(state["text_encoder"])
        ema["unet"].load_state_dict(state["ema_unet"]), ema["text_encoder"].load_state_dict(state["ema_text_encoder"])
        opt.load_state_dict(state["opt"]), g.set_state(state["rng"])
    for step in range(state.get("step", 0), steps):
        for group in opt.param_groups:  # warm up, then cosine decay to 10 %
            group["lr"] = (
                group["peak"] * min(1, (step + 1) / 200)
                * (0.55 + 0.45 * torch.cos(torch.tensor(step / steps * 3.1416)).item())
            )  # fmt: skip
        index = torch.randint(0, len(images), (96,), generator=g)
        z = (mean[index] + (0.5 * logvar[index]).exp() * torch.randn(mean[index].shape, generator=g)) * scaling
        tokens = torch.where((torch.rand(len(index), 1, generator=g) < 0.1), empty, ids[index])
        noise = torch.randn(z.shape, generator=g)
        t = torch.randint(0, 1000, (len(index),), generator=g)
        predicted = unet(schedule.add_noise(z, noise, t), t, encoder_hidden_states=text_encoder(tokens)[0]).sample
        loss = F.mse_loss(predicted, noise)
        opt.zero_grad(), loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, model in (("unet", unet), ("text_encoder", text_encoder)):
                for e, p in zip(ema[name].parameters(), model.parameters(), strict=True):
                    e.lerp_(p, 1 - decay)
        if log(step, {"loss": loss.item()}):
            yield {
                "unet": unet.state_dict(),
                "text_encoder": text_encoder.state_dict(),
                "ema_unet": ema["unet"].state_dict(),
                "ema_text_encoder": ema["text_encoder"].state_dict(),
                "opt": opt.state_dict(),
                "rng": g.get_state(),
                "scaling": scaling,
                "step": step + 1,
            }
    vae.register_to_config(scaling_factor=scaling)
    return ema["unet"], ema["text_encoder"], tokenizer


def pipeline(vae, unet, text_encoder, tokenizer) -> StableDiffusionPipeline:
    scheduler = DPMSolverMultistepScheduler.from_config(noise_scheduler().config)
    scheduler.register_to_config(
        clip_sample=False
    )  # kept in the config for DDIM/DDPM picked later: latents are not in [-1, 1]
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def from_checkpoint(stage: str = "unet") -> StableDiffusionPipeline:
    """The pipeline made of the EMA weights in a stage's latest checkpoint (training may go on). The
    fine-tuning stages start from the shipped VAE, which they leave as it is."""
    state = torch.load(CHECKPOINTS / f"shapes-t2i-{stage}.pt", weights_only=True)
    tokenizer = clip_tokenizer(caption_words())
    if stage == "unet":
        vae = vae_model()
        vae.load_state_dict(torch.load(CHECKPOINTS / "shapes-t2i-vae.pt", weights_only=True)["vae"])
        vae.register_to_config(scaling_factor=state["scaling"])
    else:
        vae = AutoencoderKL.from_pretrained(OUT / "vae", use_safetensors=True, dtype=torch.float32)
    if stage in ("clip", "word-order"):
        text_encoder = clip_text_encoder()
        unet = unet_model(text_encoder.config.hidden_size)
    else:
        text_factory = bidirectional_text_model if stage == "bidirectional" else text_model
        unet, text_encoder = unet_model(), text_factory(len(tokenizer))
    unet.load_state_dict(state["ema_unet"]), text_encoder.load_state_dict(state["ema_text_encoder"])
    pipe = pipeline(vae, unet, text_encoder, tokenizer)
    pipe.training_state = {"step": state["step"], "history": state["history"]}
    return pipe


def export(out: Path, stage: str = "unet") -> None:
    """Save a stage's checkpoint as a pipeline in diffusers format: safetensors in fp16 (half the size;
    the app loads them as fp32 on CPU) + configs + the tokenizer, and the loss history. A fine-tuning
    stage's export keeps the record of the run it started from and grades the result."""
    pipe = from_checkpoint(stage)
    info = pipe.training_state
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    record = {"steps": info["step"], "history": info["history"]}
    if stage != "unet":
        from training.evaluate_t2i import evaluate

        previous = json.loads((OUT / "training.json").read_text())
        data = STAGE_DATA.get(stage, RELATIONS_DATA)
        reloaded = StableDiffusionPipeline.from_pretrained(out, use_safetensors=True, dtype=torch.float32)
        record = {**previous, stage: {**record, "data": data, "evaluation": evaluate(reloaded)}}
        print(json.dumps(record[stage]["evaluation"]), flush=True)
    (out / "training.json").write_text(json.dumps(record, indent=1))
    print(f"saved {out} (step {info['step']})", flush=True)


RELATIONS_DATA = {"pair_fraction": 0.6, "pair_sizes": 0.5, "seed": 3}  # the relations fine-tune's scenes
BIDIRECTIONAL_DATA = {"pair_fraction": 0.5, "pair_sizes": 0.5, "seed": 0}  # …and the bidirectional encoder's
CLIP_DATA = {"pair_fraction": 0.5, "pair_sizes": 0.5, "seed": 6}  # …and the CLIP text encoder's
WORD_ORDER_DATA = {"pair_fraction": 0.5, "pair_sizes": 0.5, "seed": 7}  # …and stage 4's (+ COLOUR_AFTER)
STAGE_DATA = {"bidirectional": BIDIRECTIONAL_DATA, "clip": CLIP_DATA, "word-order": WORD_ORDER_DATA}


def word_order_run(steps: int, state: dict, log, base: StableDiffusionPipeline, images, captions):
    """Stage 4's training: a copy of the base's text encoder learns, its UNet frozen (shapes stay as
    stage 3 drew them; only the reading of captions changes)."""
    text = copy.deepcopy(base.text_encoder).requires_grad_(True)
    unet = unet_model(text.config.hidden_size).requires_grad_(False)
    return train_unet(steps, state, log, base.vae, images, captions, init=base, lr=0.0, seed=7,
                      text_encoder=text, unet=unet, text_lr=2e-4)  # fmt: skip


def relations(args, state: dict, log, history: list, checkpoint: Path, start: float) -> None:
    """Stage 3: fine-tune the shipped UNet and text encoder on scenes with more two-object captions,
    half of them without sizes ("a blue square above a yellow circle"), at a lower learning rate; the
    VAE stays as it is. The first run measured relations at 60 % and such prompts at two yellow-green
    circles. Exports over ``--out`` (the weights it started from are in git)."""
    from training.evaluate_t2i import evaluate

    base = StableDiffusionPipeline.from_pretrained(OUT, use_safetensors=True, dtype=torch.float32)
    base.vae.requires_grad_(False).eval()
    if args.stage == "word-order":  # stage 3's model, on captions with the colour after the shape too
        raw, captions = scenes.training_set(DATASET_SIZE, **WORD_ORDER_DATA, templates=scenes.WORD_ORDER_TEMPLATES)
        run = word_order_run(args.steps, state, log, base, as_tensor(raw), captions)
    elif args.stage == "clip":  # the bundled CLIP's text tower, which knows "above" from "below"; the UNet adapts to it
        raw, captions = scenes.training_set(DATASET_SIZE, **CLIP_DATA)
        text = clip_text_encoder()
        run = train_unet(args.steps, state, log, base.vae, as_tensor(raw), captions, init=base, lr=5e-4, seed=6,
                         text_encoder=text, unet=unet_model(text.config.hidden_size), text_lr=1e-4)  # fmt: skip
    elif args.stage == "bidirectional":  # a new text encoder that reads the whole caption; the UNet adapts to it
        raw, captions = scenes.training_set(DATASET_SIZE, **BIDIRECTIONAL_DATA)
        run = train_unet(args.steps, state, log, base.vae, as_tensor(raw), captions, init=base, lr=5e-4, seed=5,
                         text_factory=bidirectional_text_model)  # fmt: skip
    else:
        raw, captions = scenes.training_set(DATASET_SIZE, **RELATIONS_DATA)
        run = train_unet(args.steps, state, log, base.vae, as_tensor(raw), captions, init=base, lr=2e-4, seed=4)
    try:
        while True:
            snapshot = next(run)
            torch.save({**snapshot, "history": history}, checkpoint)
    except StopIteration as done:
        unet, text_encoder, tokenizer = done.value
    print(f"relations done after {time.time() - start:.0f}s", flush=True)
    pipe = pipeline(base.vae, unet, text_encoder, tokenizer)
    report = evaluate(pipe)
    pipe.to(torch.float16).save_pretrained(args.out, safe_serialization=True)
    previous = json.loads((OUT / "training.json").read_text()) if (OUT / "training.json").exists() else {}
    data = STAGE_DATA.get(args.stage, RELATIONS_DATA)
    record = {**previous, args.stage: {"steps": args.steps, "data": data, "evaluation": report}}
    (args.out / "training.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(report, indent=1), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--stage", choices=["vae", "unet", "relations", "bidirectional", "clip", "word-order", "export"], required=True
    )
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--every", type=int, default=250, help="checkpoint every this many steps")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--from", dest="source", default="unet", help="--stage export: the stage whose checkpoint")
    args = parser.parse_args()
    torch.manual_seed(0)
    random.seed(0)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.stage == "export":  # the latest checkpoint (of --from's stage) → weights/, without training
        return export(args.out, args.source)
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    checkpoint = CHECKPOINTS / f"shapes-t2i-{args.stage}.pt"
    state = torch.load(checkpoint, weights_only=True) if checkpoint.exists() else {}
    history: list[dict] = state.get("history", [])
    if state:
        print(f"resuming {args.stage} at step {state['step']}", flush=True)
    start = time.time()

    def log(step: int, values: dict) -> bool:
        if step % 50 == 0:
            history.append({"step": step, **{k: round(v, 5) for k, v in values.items()}})
        if step % 100 == 0:
            print(f"{args.stage} step {step}/{args.steps} {values} {time.time() - start:.0f}s", flush=True)
        return (step + 1) % args.every == 0 or step + 1 == args.steps

    if args.stage in ("relations", "bidirectional", "clip", "word-order"):
        return relations(args, state, log, history, checkpoint, start)
    raw, captions = scenes.training_set(DATASET_SIZE, seed=0)
    images = as_tensor(raw)
    if args.stage == "vae":
        run = train_vae(args.steps, state, log, images)
    else:
        vae_state = torch.load(CHECKPOINTS / "shapes-t2i-vae.pt", weights_only=True)
        vae = vae_model()
        vae.load_state_dict(vae_state["vae"])
        vae.requires_grad_(False).eval()
        run = train_unet(args.steps, state, log, vae, images, captions)
    try:
        while True:
            snapshot = next(run)
            torch.save({**snapshot, "history": history}, checkpoint)
    except StopIteration:  # the last checkpoint holds the final (EMA) weights
        pass
    print(f"{args.stage} done after {time.time() - start:.0f}s", flush=True)
    if args.stage == "unet":
        export(args.out)


if __name__ == "__main__":
    main()
