"""Text-to-image tab: any diffusers pipeline, with the image forming live and every step kept.

A diffusion model starts from pure noise and, step by step, removes the noise its network (a
UNet or transformer) predicts, guided by the prompt; a *scheduler* decides how big each step is.
This tab runs the stock diffusers pipeline call and watches it through two windows that cost
almost nothing: a forward hook on the denoiser records what it predicted at each step (for the
step debugger and the guidance view), and ``callback_on_step_end`` streams a preview.

Reads top to bottom: settings and validation → schedulers → the recorder → one generation → PNG
recipes → debugger and explainer views → Gradio glue.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import inspect
import io
import json
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import logging as diffusers_logging
from PIL import Image, PngImagePlugin

from shared import catalog, runtime
from shared.loaders import ModelLoadError, TextToImage
from shared.validation import check_float, check_int

diffusers_logging.set_verbosity_error()  # per-request pipelines would log dtype notes on every call

MAX_STEPS = 150
MAX_COUNT = 8  # images per request
MAX_SIDE = 2048
MAX_PIXELS = 1024 * 1024  # per image on a GPU: a 1024² SDXL image is the largest anyone needs here
CPU_MAX_PIXELS = 768 * 768  # on a CPU, past this one image takes minutes
MAX_PROMPT_CHARS = 4000
MAX_GUIDANCE = 30.0
MAX_RESTORE_PIXELS = 4096 * 4096  # a PNG given to "restore settings" is refused past this
MAX_SEED = 2**32 - 1
PREVIEW_PX = 256  # live preview and debugger frames are shown at least this large
STREAM_INTERVAL_S = float(os.environ.get("PLAYGROUND_STREAM_INTERVAL", 0.2))  # UI updates at most this often
RECIPE_KEY = "genai-playground"  # PNG text chunk holding the recipe as JSON

HOW_IT_WORKS = """
**Diffusion in four lines.** Training takes real images, adds Gaussian noise of a random strength
*t*, and teaches a network to predict that noise ε from the noisy image x_t and the caption. To
generate, start from pure noise and repeatedly subtract a little of the predicted noise: x_T → … →
x_0. The schedule ᾱ_t says how much of the original signal survives at step *t*
(x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε), so from one prediction of ε you can already guess the clean image
x̂_0 = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t — that guess is the live preview, and it sharpens as *t* falls.

**Latent diffusion.** Stable Diffusion (and the bundled model) denoise a small *latent* image — 8×
smaller per side for SD, 4× for the bundled one — and a VAE decoder turns the final latent into
pixels. The text encoder (CLIP, T5…) turns the prompt into one vector per token; the UNet reads them
through cross-attention at every step.

**Schedulers** are different numerical solvers for the same denoising equation: DDPM adds fresh
noise each step (needs many steps); DDIM is deterministic; Euler takes ODE steps in σ; Euler
ancestral adds noise back; DPM++ 2M is a second-order multistep solver (good in 20 steps); LCM is
for models distilled to run in 1–8 steps. They share the model: swapping one never retrains anything.

**Classifier-free guidance.** Each step the model predicts noise twice — with your prompt (ε_cond)
and without it (ε_uncond) — and extrapolates: ε = ε_uncond + w·(ε_cond − ε_uncond). w = 1 is the
plain conditional model; larger w follows the prompt harder at the cost of variety (and, too high,
of realism). Turbo / LCM models are distilled to need no guidance (w = 0 or 1): one pass per step.

**Empty prompt.** It runs: the model then draws from its unconditional distribution (what it
produces with no caption, the same branch that guidance pushes away from). You get a notice.
"""

COMPONENT_ROLES = {
    "tokenizer": "splits the prompt into tokens (ids); prompts past its limit are cut",
    "text_encoder": "turns token ids into one vector per token, which the denoiser attends to",
    "tokenizer_2": "a second tokenizer (SDXL uses two text encoders)",
    "text_encoder_2": "a second, larger text encoder; its pooled vector also conditions the UNet",
    "prior": "maps the text embedding to an image embedding (DALL·E 2-style prior)",
    "prior_prior": "maps the text embedding to an image embedding (DALL·E 2-style prior)",
    "image_encoder": "CLIP image encoder: the space the prior's image embeddings live in",
    "unet": "the denoiser: predicts the noise in x_t at step t, attending to the text vectors",
    "transformer": "the denoiser (a diffusion transformer): predicts noise / velocity at each step",
    "vae": "autoencoder: the final latent → pixels (decoder); images → latents (encoder)",
    "movq": "MoVQ autoencoder: the final latent → pixels",
    "scheduler": "the solver: picks the timesteps and turns each noise prediction into the next x_t",
    "safety_checker": "flags unsafe images (they come back black)",
}


# --- settings and validation -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything needed to make the same image again; stored in each PNG."""

    model: str
    revision: str | None
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance_scale: float
    scheduler: str
    width: int
    height: int
    count: int = 1

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


def recommended(model: str) -> dict:
    """The chosen model's catalog settings (steps, guidance, size, scheduler), with fallbacks."""
    spec = catalog.CATALOG.get(model)
    recipe = dict((spec.recipe or {}) if spec else {})
    return {
        "steps": recipe.get("steps", 25),
        "guidance_scale": recipe.get("guidance_scale", 7.0),
        "width": recipe.get("width", 512),
        "height": recipe.get("height", 512),
        "scheduler": recipe.get("scheduler", "DPM++ 2M"),
        "max_side": recipe.get("max_side", 1024),
    }


def check_seed(seed: object) -> int:
    if isinstance(seed, str):
        try:
            seed = int(seed.strip())
        except ValueError:
            raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED:,}, got {seed[:40]!r}.") from None
    return check_int("seed", seed, 0, MAX_SEED)


def check_side(name: str, value: object, max_side: int) -> int:
    side = check_int(name, value, 8, min(max_side, MAX_SIDE))
    if side % 8:
        raise ValueError(f"{name} must be a multiple of 8 (the autoencoder shrinks images 8× or 4×), got {side}.")
    return side


def check_recipe(
    *,
    model: str,
    revision: str | None,
    prompt: object,
    negative_prompt: object,
    seed: object,
    steps: object,
    guidance_scale: object,
    scheduler: object,
    width: object,
    height: object,
    count: object,
    max_pixels: int = MAX_PIXELS,
) -> Recipe:
    """Untrusted settings (from the UI, the API or a PNG) → a Recipe, or a clear ValueError."""
    if prompt is None:
        prompt = ""
    if negative_prompt is None:
        negative_prompt = ""
    if not isinstance(prompt, str) or not isinstance(negative_prompt, str):
        raise ValueError("The prompt and negative prompt must be text.")
    if len(prompt) > MAX_PROMPT_CHARS or len(negative_prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"Prompts are limited to {MAX_PROMPT_CHARS:,} characters.")
    if not isinstance(scheduler, str) or scheduler not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {str(scheduler)[:40]!r}. Pick one of: {', '.join(SCHEDULERS)}.")
    max_side = recommended(model)["max_side"]
    width, height = check_side("width", width, max_side), check_side("height", height, max_side)
    if width * height > max_pixels:
        raise ValueError(f"{width}×{height} is past the {max_pixels:,}-pixel cap per image on this device.")
    return Recipe(
        model=model,
        revision=revision,
        prompt=prompt.strip(),
        negative_prompt=negative_prompt.strip(),
        seed=check_seed(seed),
        steps=check_int("steps", steps, 1, MAX_STEPS),
        guidance_scale=check_float("guidance scale", guidance_scale, 0.0, MAX_GUIDANCE),
        scheduler=str(scheduler),
        width=width,
        height=height,
        count=check_int("number of images", count, 1, MAX_COUNT),
    )


def prompt_notices(pipe, recipe: Recipe) -> list[str]:
    """What the user should know before the run: an empty prompt, a prompt cut by the tokenizer."""
    notices = []
    if not recipe.prompt:
        notices.append("Empty prompt: generating unconditionally (what the model draws with no caption).")
    tokenizer = getattr(pipe, "tokenizer", None)
    limit = getattr(tokenizer, "model_max_length", None)
    for name, text in (("prompt", recipe.prompt), ("negative prompt", recipe.negative_prompt)):
        if not text or tokenizer is None or not limit or limit > 100_000:
            continue
        ids = tokenizer(text, truncation=False).input_ids
        if len(ids) > limit:
            kept = tokenizer.decode(ids[1 : limit - 1], skip_special_tokens=True)
            notices.append(
                f"The {name} is {len(ids)} tokens; the text encoder reads {limit}, so it was truncated after "
                f"“…{kept[-40:]}”."
            )
    return notices


# --- schedulers ----------------------------------------------------------------------------------


def _scheduler_classes() -> dict[str, type]:
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        LCMScheduler,
    )

    return {
        "DPM++ 2M": DPMSolverMultistepScheduler,
        "Euler": EulerDiscreteScheduler,
        "Euler ancestral": EulerAncestralDiscreteScheduler,
        "DDIM": DDIMScheduler,
        "DDPM": DDPMScheduler,
        "LCM": LCMScheduler,
    }


SCHEDULERS = _scheduler_classes()
SCHEDULER_NOTES = {
    "LCM": "LCM is made for models distilled to run in 1–8 steps (LCM / turbo); on others it blurs.",
    "DDPM": "DDPM adds fresh noise at every step: it needs many steps (50+) to look clean.",
}


def make_scheduler(name: str | None, config, scheduler_class: type | None = None):
    """A fresh scheduler for one request: schedulers keep state between steps, so they are never shared.

    A config that doesn't say otherwise gets ``clip_sample=False``: DDIM and DDPM default to clipping
    x̂₀ to [-1, 1], which suits pixel-space models and wrecks latent ones (every model here)."""
    scheduler_class = scheduler_class or SCHEDULERS[name]
    extra = {}
    if "clip_sample" not in config and "clip_sample" in inspect.signature(scheduler_class.__init__).parameters:
        extra["clip_sample"] = False
    return scheduler_class.from_config(config, **extra)


def alpha_bar(scheduler, timesteps) -> np.ndarray:
    """ᾱ_t (the share of signal variance left) at each of these timesteps, from the training schedule."""
    table = np.asarray(scheduler.alphas_cumprod, dtype=np.float64)
    t = np.asarray([float(x) for x in timesteps], dtype=np.float64)
    return np.interp(t, np.arange(len(table)), table)


def schedule_frame(config, steps: int) -> pd.DataFrame:
    """ᾱ_t against step for each scheduler (for the noise-schedule plot)."""
    return _schedule_frame(json.dumps(dict(config), sort_keys=True, default=str), steps).copy()


@functools.lru_cache(maxsize=64)
def _schedule_frame(config_json: str, steps: int) -> pd.DataFrame:
    config = json.loads(config_json)
    rows = []
    for name in SCHEDULERS:
        scheduler = make_scheduler(name, config)
        try:
            scheduler.set_timesteps(steps)
        except Exception:  # e.g. LCM refusing more steps than its distillation grid
            continue
        for i, a in enumerate(alpha_bar(scheduler, scheduler.timesteps)):
            rows.append({"step": i + 1, "alpha_bar": float(a), "scheduler": name})
    return pd.DataFrame(rows)


# --- recording what the denoiser predicts -----------------------------------------------------------


@dataclasses.dataclass
class StepRecord:
    """One denoising step of the first image: all tensors are latents (C, h, w) on the CPU."""

    index: int
    timestep: float
    alpha_bar: float | None
    x_t: torch.Tensor  # the model's input, in variance-preserving form (√ᾱ·x₀ + √(1−ᾱ)·ε)
    eps: torch.Tensor  # the noise prediction the scheduler used (guided)
    x0: torch.Tensor | None  # the clean image this prediction implies
    eps_uncond: torch.Tensor | None = None
    eps_cond: torch.Tensor | None = None


class StepRecorder:
    """A forward hook on the denoiser that keeps, per step, its input and output for image 0.

    It records only calls made from the thread that owns it, so concurrent requests sharing one
    model never see each other's steps. With classifier-free guidance the denoiser sees a batch of
    [unconditional…, conditional…]; both halves are kept.

    The hook itself is installed once per denoiser and never removed; recorders only enter and
    leave its table. (Adding or removing a torch hook while another thread runs the module is a
    race: torch keeps a hook and its "takes kwargs" flag in two dicts, and a forward pass caught
    between the two writes calls the hook with the wrong arguments — seen once in 160 parallel
    generations.)"""

    def __init__(self, denoiser: torch.nn.Module, scheduler, count: int, guidance: float, prediction: str) -> None:
        self.steps: list[StepRecord] = []
        self.scheduler, self.count, self.guidance, self.prediction = scheduler, count, guidance, prediction
        self.thread = threading.get_ident()
        with _RECORDERS_LOCK:
            table = getattr(denoiser, "_step_recorders", None)
            if table is None:
                table = denoiser._step_recorders = {}
                denoiser.register_forward_hook(_dispatch_to_recorder, with_kwargs=True)
            table[self.thread] = self
        self._table = table

    def close(self) -> None:
        self._table.pop(self.thread, None)

    def _hook(self, module, args, kwargs, output) -> None:
        sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
        timestep = args[1] if len(args) > 1 else kwargs.get("timestep")
        out = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)
        if torch.is_tensor(sample) and torch.is_tensor(out) and out.shape[1] == 2 * sample.shape[1]:
            out = out[:, : sample.shape[1]]  # noise and its learned variance (Kandinsky): keep the noise
        if not torch.is_tensor(sample) or not torch.is_tensor(out) or out.shape != sample.shape:
            return
        t = float(timestep.flatten()[0]) if torch.is_tensor(timestep) else float(timestep)
        sample, out = sample.detach().float().cpu(), out.detach().float().cpu()
        cfg = sample.shape[0] == 2 * self.count
        # clones: views would keep the whole (2·count, C, h, w) batch alive for every step
        uncond, cond = (out[0].clone(), out[self.count].clone()) if cfg else (None, None)
        guided = uncond + self.guidance * (cond - uncond) if cfg else out[0].clone()
        x_t = sample[0].clone()
        a = None
        eps, x0 = guided, None
        if hasattr(self.scheduler, "alphas_cumprod"):
            a = float(alpha_bar(self.scheduler, [t])[0])
            if self.prediction == "v_prediction":  # v = √ᾱ·ε − √(1−ᾱ)·x₀
                x0 = math.sqrt(a) * x_t - math.sqrt(1 - a) * guided
                eps = math.sqrt(1 - a) * x_t + math.sqrt(a) * guided
            else:
                x0 = (x_t - math.sqrt(1 - a) * guided) / math.sqrt(a)
        self.steps.append(StepRecord(len(self.steps), t, a, x_t, eps, x0, uncond, cond))


_RECORDERS_LOCK = threading.Lock()


def _dispatch_to_recorder(module, args, kwargs, output) -> None:
    """The one hook on a denoiser: hands the call to the calling thread's recorder, if any."""
    recorder = module._step_recorders.get(threading.get_ident())
    if recorder is not None:
        recorder._hook(module, args, kwargs, output)


# --- one generation ------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    recipe: Recipe
    images: list[Image.Image]
    steps: list[StepRecord]
    seconds: float
    notices: list[str]
    stopped: bool = False


class _Stopped(Exception):
    """Raised from the step callback to end a pipeline that has no interrupt flag."""


def denoiser_of(pipe) -> torch.nn.Module | None:
    return getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)


def decoder_of(pipe):
    return getattr(pipe, "vae", None) or getattr(pipe, "movq", None)


def small_decoder(pipe) -> bool:
    """A decoder cheap enough to run for every preview (the bundled model's has 0.4 M parameters)."""
    vae = decoder_of(pipe)
    return vae is not None and sum(p.numel() for p in vae.parameters()) < 5_000_000


# Stable Diffusion 1.x/2.x latents → RGB by one linear map (a well-known approximation): previews
# for the big models cost a matrix product instead of a VAE decode.
SD_LATENT_RGB = torch.tensor(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
)


def latent_to_rgb(latent: torch.Tensor) -> np.ndarray:
    """A picture of a latent (C, h, w) without the decoder: SD's linear map for 4 channels,
    otherwise the first three channels, each stretched to its range. (h, w, 3) uint8."""
    latent = latent.float()
    if latent.shape[0] == 4:
        rgb = torch.einsum("chw,cr->hwr", latent, SD_LATENT_RGB)
        rgb = (rgb + 1) / 2
    else:
        rgb = latent[:3].permute(1, 2, 0)
        if rgb.shape[-1] < 3:
            rgb = rgb[..., :1].expand(-1, -1, 3)
        lo, hi = rgb.amin(dim=(0, 1)), rgb.amax(dim=(0, 1))
        rgb = (rgb - lo) / (hi - lo).clamp_min(1e-6)
    return (rgb.clamp(0, 1) * 255).round().byte().numpy()


def noise_to_rgb(latent: torch.Tensor) -> np.ndarray:
    """Noise (or any zero-centred latent) as a picture: channels 0-2 → RGB, ±2.5σ → 0-255."""
    latent = latent.float()
    rgb = latent[:3] if latent.shape[0] >= 3 else latent[:1].expand(3, -1, -1)
    rgb = (rgb / (2.5 * rgb.std().clamp_min(1e-6)) + 1) / 2
    return (rgb.clamp(0, 1).permute(1, 2, 0) * 255).round().byte().numpy()


@torch.inference_mode()
def decode_latent(pipe, latent: torch.Tensor) -> np.ndarray:
    """The VAE's picture of one latent (C, h, w) in the pipeline's scaled space. (H, W, 3) uint8."""
    vae = decoder_of(pipe)
    z = latent[None].to(vae.device, vae.dtype)
    if getattr(pipe, "movq", None) is vae:  # Kandinsky's MoVQ decodes its latents unscaled
        image = vae.decode(z, force_not_quantize=True).sample[0].float().cpu()
    else:
        scaling = getattr(vae.config, "scaling_factor", 1.0) or 1.0
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        image = vae.decode(z / scaling + shift).sample[0].float().cpu()
    return ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def preview_of(pipe, record: StepRecord) -> np.ndarray:
    """What the image will be, judging by this step: the decoded x̂₀ for small decoders, a linear
    latent → RGB guess for big ones."""
    latent = record.x0 if record.x0 is not None else record.x_t
    if small_decoder(pipe):
        return decode_latent(pipe, latent)
    return latent_to_rgb(latent)


_thread_state = threading.local()


def _thread_copy(tokenizer):
    """This thread's own copy of a tokenizer: the Rust-backed ones rewrite their truncation and
    padding settings on every call, so two threads sharing one can fail or mix settings."""
    if tokenizer is None:
        return None
    copies = _thread_state.__dict__.setdefault("tokenizers", {})
    if id(tokenizer) not in copies:
        copies[id(tokenizer)] = (tokenizer, copy.deepcopy(tokenizer))  # the original is kept so its id stays unique
    return copies[id(tokenizer)][1]


def request_pipeline(base, scheduler):
    """A pipeline object for one request: the cached one's components with its own scheduler.

    A shallow copy, so per-call state (``_interrupt``, ``_guidance_scale``…) lives on the copy and
    the weights are shared. (``from_pipe`` does the same in 13 ms; this takes microseconds.) The
    scheduler is set past ``__setattr__``, which would rewrite the shared config."""
    pipe = copy.copy(base)
    object.__setattr__(pipe, "scheduler", scheduler)
    for name in [n for n in getattr(base, "components", {}) if "tokenizer" in n]:
        object.__setattr__(pipe, name, _thread_copy(getattr(base, name)))
    for name, part in vars(base).items():  # a combined pipeline (prior + decoder) runs sub-pipelines
        if isinstance(part, DiffusionPipeline):
            own = (
                scheduler
                if part.scheduler is base.scheduler
                else make_scheduler(None, part.scheduler.config, type(part.scheduler))
            )
            object.__setattr__(pipe, name, request_pipeline(part, own))
    return pipe


def generate(
    entry: TextToImage,
    recipe: Recipe,
    *,
    on_step: Callable[[int, int, StepRecord | None], None] | None = None,
    stop: threading.Event | None = None,
) -> Run:
    """Run the stock pipeline call once for the recipe, recording each step of image 0.

    ``on_step(i, total, record)`` is called after every step (from this thread). The request gets
    its own scheduler and its own pipeline object around the shared, cached components."""

    scheduler = make_scheduler(recipe.scheduler, entry.pipe.scheduler.config)
    pipe = request_pipeline(entry.pipe, scheduler)
    notices = prompt_notices(pipe, recipe)
    denoiser = denoiser_of(pipe)
    prediction = getattr(scheduler.config, "prediction_type", "epsilon")
    recorder = StepRecorder(denoiser, scheduler, recipe.count, recipe.guidance_scale, prediction) if denoiser else None
    stopped = False

    def callback(p, i, t, kwargs):
        nonlocal stopped
        if on_step is not None:
            on_step(i, recipe.steps, recorder.steps[-1] if recorder and recorder.steps else None)
        if stop is not None and stop.is_set():
            stopped = True
            if not hasattr(type(p), "interrupt"):  # this pipeline never checks the flag: end it here
                raise _Stopped
            p._interrupt = True
        return kwargs

    generators = [torch.Generator("cpu").manual_seed(recipe.seed + i) for i in range(recipe.count)]
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            output = pipe(
                prompt=recipe.prompt,
                negative_prompt=recipe.negative_prompt or None,
                num_inference_steps=recipe.steps,
                guidance_scale=recipe.guidance_scale,
                width=recipe.width,
                height=recipe.height,
                num_images_per_prompt=recipe.count,
                generator=generators,
                output_type="np",
                callback_on_step_end=callback,
            )
    except _Stopped:
        raise ValueError("Stopped. (This pipeline can't return a half-finished image.)") from None
    finally:
        if recorder:
            recorder.close()
    pixels = np.asarray(output.images)
    if not np.isfinite(pixels).all():
        raise ValueError(
            "The model produced NaN or infinite values, so there is no image to show (on GPUs this is "
            "often fp16 overflow in the autoencoder). Nothing was saved; the next request starts clean."
        )
    black = [i + 1 for i in range(len(pixels)) if pixels[i].max() < 1 / 255]
    if black:
        notices.append(
            f"Image {', '.join(map(str, black))} came out completely black (a safety checker blanks images "
            "it flags; a model can also collapse). Try another seed or prompt."
        )
    if stopped:
        notices.append(
            f"Stopped after step {len(recorder.steps) if recorder else '?'} of {recipe.steps}: the PNGs' recipe "
            "describes the full run, so it will not reproduce these unfinished images."
        )
    images = [Image.fromarray((p * 255).round().astype(np.uint8)) for p in pixels]
    return Run(recipe, images, recorder.steps if recorder else [], time.perf_counter() - start, notices, stopped)


# --- reproducibility: the recipe rides in the PNG ------------------------------------------------


def a1111_parameters(recipe: Recipe, index: int) -> str:
    """The recipe in AUTOMATIC1111's "parameters" text, so other tools read it too."""
    negative = f"\nNegative prompt: {recipe.negative_prompt}" if recipe.negative_prompt else ""
    return (
        f"{recipe.prompt}{negative}\nSteps: {recipe.steps}, Sampler: {recipe.scheduler}, CFG scale: "
        f"{recipe.guidance_scale:g}, Seed: {recipe.seed + index}, Size: {recipe.width}x{recipe.height}, "
        f"Model: {recipe.model}"
    )


def png_bytes(image: Image.Image, recipe: Recipe, index: int) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text(RECIPE_KEY, json.dumps({**dataclasses.asdict(recipe), "index": index}, ensure_ascii=False))
    info.add_text("parameters", a1111_parameters(recipe, index))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def save_pngs(run: Run) -> list[str]:
    folder = Path(tempfile.mkdtemp(prefix="t2i-"))
    paths = []
    for i, image in enumerate(run.images):
        path = folder / f"{run.recipe.seed}-{i + 1}.png"
        path.write_bytes(png_bytes(image, run.recipe, i))
        paths.append(str(path))
    return paths


def read_recipe(source: str | bytes) -> dict:
    """The recipe stored in a PNG made here (text chunks only: the pixels are never decoded, so a
    decompression bomb costs nothing). Raises a clear ValueError for anything else."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            if image.format != "PNG":
                raise ValueError("Restore settings takes a PNG made by this app.")
            if image.width * image.height > MAX_RESTORE_PIXELS:
                raise ValueError(f"That PNG is {image.width}×{image.height}, past the cap; it was not read.")
            text = image.info.get(RECIPE_KEY)
    except ValueError:
        raise
    except Image.DecompressionBombError:
        raise ValueError("That image is far too large (a decompression bomb?); it was not read.") from None
    except Exception:
        raise ValueError("That file is not a readable PNG.") from None
    if not text:
        raise ValueError("That PNG carries no GenAI Playground recipe (made elsewhere, or its metadata was stripped).")
    try:
        data = json.loads(text)
        assert isinstance(data, dict)
    except Exception:
        raise ValueError("The recipe in that PNG is damaged.") from None
    return data


def recipe_from_png(source: str | bytes) -> Recipe:
    data = read_recipe(source)
    model = data.get("model")
    if not isinstance(model, str):
        raise ValueError("The recipe in that PNG names no model.")
    fields = {f.name for f in dataclasses.fields(Recipe)} - {"model", "revision"}
    missing = fields - data.keys()
    if missing:
        raise ValueError(f"The recipe in that PNG lacks {', '.join(sorted(missing))}.")
    return check_recipe(model=model, revision=data.get("revision"), **{k: data[k] for k in fields})


# --- the debugger and explainers --------------------------------------------------------------------


def enlarge(pixels: np.ndarray, px: int = PREVIEW_PX) -> Image.Image:
    """Small images scaled up by whole pixels (crisp), big ones as they are."""
    image = Image.fromarray(pixels)
    factor = max(1, px // max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST) if factor > 1 else image


@dataclasses.dataclass
class StepView:
    x_t: Image.Image
    x0: Image.Image | None
    eps: Image.Image
    guidance: list[tuple[Image.Image, str]]  # ε_uncond, ε_cond, their difference, ε used
    text: str


def step_view(pipe, run: Run, k: int) -> StepView:
    """Step k of image 0: the noisy latent, the clean image it implies, the noise it predicts."""
    if not run.steps:
        raise ValueError("This pipeline's denoiser could not be watched, so there are no steps to show.")
    k = check_int("step", k, 1, len(run.steps)) - 1
    record = run.steps[k]
    x0 = enlarge(decode_latent(pipe, record.x0)) if record.x0 is not None and decoder_of(pipe) else None
    guidance = []
    if record.eps_cond is not None:
        w = run.recipe.guidance_scale
        guidance = [
            (enlarge(noise_to_rgb(record.eps_uncond)), "ε_uncond (no prompt)"),
            (enlarge(noise_to_rgb(record.eps_cond)), "ε_cond (your prompt)"),
            (enlarge(noise_to_rgb(record.eps_cond - record.eps_uncond)), "ε_cond − ε_uncond (what the prompt adds)"),
            (enlarge(noise_to_rgb(record.eps)), f"ε = ε_uncond + {w:g}·(ε_cond − ε_uncond)"),
        ]
    signal = f" · ᾱ_t = {record.alpha_bar:.4f} (signal {100 * record.alpha_bar:.1f} %)" if record.alpha_bar else ""
    text = f"**Step {k + 1} of {len(run.steps)}** · timestep t = {record.timestep:.0f}{signal}"
    if record.eps_cond is None:
        text += " · no guidance branch at this scale (one pass per step)"
    return StepView(enlarge(latent_to_rgb(record.x_t)), x0, enlarge(noise_to_rgb(record.eps)), guidance, text)


def guidance_frame(run: Run) -> pd.DataFrame:
    """How hard the prompt pulls at each step: ‖ε_cond − ε_uncond‖ / ‖ε_uncond‖."""
    rows = [
        {"step": r.index + 1, "pull": float((r.eps_cond - r.eps_uncond).norm() / r.eps_uncond.norm())}
        for r in run.steps
        if r.eps_cond is not None
    ]
    return pd.DataFrame(rows, columns=["step", "pull"])


def schedule_plot_frame(pipe, run: Run | None, steps: int, k: int | None = None) -> pd.DataFrame:
    frame = schedule_frame(pipe.scheduler.config, steps)
    if run is not None and k:
        marker = pd.DataFrame([{"step": k, "alpha_bar": v, "scheduler": "← this step"} for v in (0.0, 1.0)])
        frame = pd.concat([frame, marker], ignore_index=True)
    return frame


def anatomy_markdown(entry: TextToImage) -> str:
    """The pipeline's parts: what each is, how big, what it does."""
    pipe = entry.pipe
    lines = [
        f"**{type(pipe).__name__}** · {entry.key}" + (f" @ `{entry.revision[:10]}`" if entry.revision else ""),
        "",
        "| part | class | parameters | what it does |",
        "|---|---|---|---|",
    ]
    total = 0
    for name, part in pipe.components.items():
        if part is None:
            continue
        count = sum(p.numel() for p in part.parameters()) if isinstance(part, torch.nn.Module) else 0
        total += count
        size = f"{count / 1e6:,.2f} M" if count else "—"
        lines.append(f"| {name} | {type(part).__name__} | {size} | {COMPONENT_ROLES.get(name, '')} |")
    lines += ["", f"Total: {total / 1e6:,.1f} M parameters. Flow: prompt → tokenizer → text encoder"]
    lines[-1] += (" → prior" if any("prior" in n for n in pipe.components) else "") + (
        " → denoiser × steps (scheduler) → decoder → image."
    )
    return "\n".join(lines)


@torch.inference_mode()
def branch(entry: TextToImage, run: Run, k: int, scheduler_name: str, guidance: float) -> Image.Image:
    """Re-run the end of the path from step k's x_t with another scheduler or guidance scale.

    For Stable-Diffusion-architecture pipelines (one text encoder, a UNet, a VAE)."""
    from diffusers import StableDiffusionPipeline

    pipe = entry.pipe
    if not isinstance(pipe, StableDiffusionPipeline):
        raise ValueError(
            "Branching works on Stable Diffusion 1.x/2.x-style pipelines (the bundled model, SD 1.5, sd-turbo)."
        )
    if not run.steps:
        raise ValueError("Generate an image first.")
    k = check_int("step", k, 1, len(run.steps)) - 1
    guidance = check_float("guidance scale", guidance, 0.0, MAX_GUIDANCE)
    if not isinstance(scheduler_name, str) or scheduler_name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {str(scheduler_name)[:40]!r}.")
    recipe, record = run.recipe, run.steps[k]
    scheduler = make_scheduler(scheduler_name, pipe.scheduler.config)
    scheduler.set_timesteps(recipe.steps)
    timesteps = scheduler.timesteps
    start = int(torch.argmin((timesteps.float() - record.timestep).abs()))
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    sigmas = getattr(scheduler, "sigmas", None)
    x = record.x_t[None].to(pipe.device, pipe.unet.dtype)
    if sigmas is not None and float(scheduler.init_noise_sigma) > 1:  # σ-space schedulers (Euler…)
        x = x * math.sqrt(float(sigmas[start]) ** 2 + 1)
    cfg = guidance > 1
    cond, uncond = pipe.encode_prompt(recipe.prompt, pipe.device, 1, cfg, recipe.negative_prompt or None)
    embeds = torch.cat([uncond, cond]) if cfg else cond
    generator = torch.Generator("cpu").manual_seed(recipe.seed)
    for t in timesteps[start:]:
        model_in = scheduler.scale_model_input(torch.cat([x] * 2) if cfg else x, t)
        eps = pipe.unet(model_in, t, encoder_hidden_states=embeds).sample
        if cfg:
            e_u, e_c = eps.chunk(2)
            eps = e_u + guidance * (e_c - e_u)
        x = scheduler.step(eps, t, x, generator=generator).prev_sample
    return enlarge(decode_latent(pipe, x[0].float().cpu()))


# --- Gradio glue ---------------------------------------------------------------------------------

_stop_events: dict[str, threading.Event] = {}
_stop_lock = threading.Lock()


_workers: ThreadPoolExecutor | None = None
_workers_lock = threading.Lock()


def on_worker(fn, *args, **kwargs) -> Future:
    """Run this tab's torch work on its own long-lived thread(s), as many as the gpu group admits.

    With GNU OpenMP (torch's CPU backend) every thread that runs torch ops keeps a team of OpenMP
    threads; once the teams hold more threads than there are cores, every wait between parallel
    regions sleeps instead of spinning, and the same 4-image generation takes 1.2 s instead of
    0.55 s on 2 cores. So loading, denoising, previews and debugger decodes all run here."""
    global _workers
    with _workers_lock:
        if _workers is None:
            _workers = ThreadPoolExecutor(max_workers=runtime.get().concurrency, thread_name_prefix="text-to-image")
        return _workers.submit(fn, *args, **kwargs)


def _entry(model: str) -> TextToImage:
    try:
        return on_worker(runtime.text_to_image, model).result()
    except (ValueError, ModelLoadError) as exc:
        raise gr.Error(str(exc)) from None
    except Exception as exc:  # out of memory while loading, a device error…
        raise _failure(exc) from None


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "no-session"


def _recipe(entry: TextToImage, **raw) -> Recipe:
    try:
        cap = MAX_PIXELS if runtime.get().device != "cpu" else CPU_MAX_PIXELS
        return check_recipe(model=entry.key, revision=entry.revision, max_pixels=cap, **raw)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def _failure(exc: BaseException) -> gr.Error:
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, ValueError):
        return gr.Error(str(exc))
    if isinstance(exc, torch.OutOfMemoryError):
        runtime.get().cache.clear()
        return gr.Error("Out of memory while generating: models were unloaded. Try fewer or smaller images.")
    return gr.Error(f"Generation failed ({type(exc).__name__}). The next request will try again.")


def stream(
    entry: TextToImage, recipe: Recipe, stop: threading.Event
) -> Iterator[tuple[int, np.ndarray | None, Run | None]]:
    """Run generate() on the worker; yield (step, preview, None) at most every STREAM_INTERVAL_S
    (the preview is drawn on the worker, from that step's x̂₀), then (steps, None, run) at the end."""
    events: queue.Queue = queue.Queue()
    last = [0.0]

    def on_step(i: int, total: int, record: StepRecord | None) -> None:
        now = time.perf_counter()
        if now - last[0] >= STREAM_INTERVAL_S or i == total - 1:
            last[0] = now
            events.put((i, preview_of(entry.pipe, record) if record is not None else None))

    def work() -> Run:
        try:
            return generate(entry, recipe, on_step=on_step, stop=stop)
        finally:
            events.put(None)

    future = on_worker(work)
    try:
        while (item := events.get()) is not None:
            yield item[0], item[1], None
    finally:
        if not future.done():  # the consumer left early (a closed tab, a cancelled job): end the work too
            stop.set()
    yield recipe.steps, None, future.result()


def generate_ui(
    model,
    prompt,
    negative,
    seed,
    steps,
    guidance,
    scheduler,
    width,
    height,
    count,
    request: gr.Request,
    progress=gr.Progress(),
):
    entry = _entry(model)
    recipe = _recipe(
        entry,
        prompt=prompt,
        negative_prompt=negative,
        seed=seed,
        steps=steps,
        guidance_scale=guidance,
        scheduler=scheduler,
        width=width,
        height=height,
        count=count,
    )
    stop = threading.Event()
    session = _session(request)
    with _stop_lock:
        _stop_events[session] = stop
    start = time.perf_counter()
    skip = [gr.skip()] * 7
    try:
        for i, picture, run in stream(entry, recipe, stop):
            if run is None:
                done = i + 1
                per_step = (time.perf_counter() - start) / done
                progress((done, recipe.steps), desc="denoising")
                status = (
                    f"Step {done}/{recipe.steps} · {per_step:.2f} s/step · ETA {per_step * (recipe.steps - done):.1f} s"
                )
                preview = enlarge(picture) if picture is not None else gr.skip()
                yield preview, status, *skip
                continue
            paths = save_pngs(run)
            notes = "".join(f"\n\n⚠️ {n}" for n in run.notices)
            verb = "Stopped" if run.stopped else "Done"
            status = f"{verb}: {len(paths)} image(s) in {run.seconds:.2f} s ({recipe.steps / max(run.seconds, 1e-9):.1f} steps/s).{notes}"
            last = len(run.steps) or 1
            middle = (last + 1) // 2  # the debugger opens halfway: noise and picture both visible
            yield (
                enlarge(np.asarray(run.images[0])),
                status,
                paths,
                json.dumps(dataclasses.asdict(recipe), indent=1, ensure_ascii=False),
                run,
                gr.Slider(minimum=1, maximum=max(last, 2), value=middle, step=1, interactive=bool(run.steps)),
                schedule_plot_frame(entry.pipe, run, recipe.steps, middle),
                guidance_frame(run),
                anatomy_markdown(entry),
            )
    except BaseException as exc:
        if isinstance(exc, GeneratorExit):
            raise
        raise _failure(exc) from None
    finally:
        stop.set()
        with _stop_lock:
            if _stop_events.get(session) is stop:
                del _stop_events[session]


def stop_generation(request: gr.Request) -> None:
    with _stop_lock:
        event = _stop_events.get(_session(request))
    if event is not None:
        event.set()


def show_step(model: str, run: Run | None, k: int):
    if run is None:
        raise gr.Error("Generate an image first: the debugger shows its steps.")
    if not run.steps:  # a denoiser the recorder couldn't watch: nothing to show, and nothing to complain about
        return (gr.skip(),) * 4 + (
            "This pipeline's denoiser could not be watched, so there are no steps to show.",
            gr.skip(),
        )
    entry = _entry(run.recipe.model)
    try:
        k = min(int(k), len(run.steps)) if isinstance(k, (int, float)) and math.isfinite(k) else k
        view = on_worker(step_view, entry.pipe, run, k).result()
    except Exception as exc:
        raise _failure(exc) from None
    return (
        view.x_t,
        view.x0,
        view.eps,
        view.guidance,
        view.text,
        schedule_plot_frame(entry.pipe, run, run.recipe.steps, int(k)),
    )


def branch_ui(run: Run | None, k: int, scheduler: str, guidance: float):
    if run is None:
        raise gr.Error("Generate an image first, then branch from one of its steps.")
    entry = _entry(run.recipe.model)
    try:
        image = on_worker(branch, entry, run, k, scheduler, guidance).result()
    except Exception as exc:
        raise _failure(exc) from None
    final = enlarge(np.asarray(run.images[0]))
    return [
        (final, f"original: {run.recipe.scheduler}, w = {run.recipe.guidance_scale:g}"),
        (image, f"branch from step {int(k)}: {scheduler}, w = {guidance:g}"),
    ]


def restore(path: str | None):
    """Settings from a PNG made here: model, prompt, seed, steps, guidance, scheduler, size, count."""
    if not path:
        return [gr.skip()] * 10 + [""]
    try:
        recipe = recipe_from_png(path)
        catalog.resolve(recipe.model, "text-to-image", allow_any_model=runtime.get().settings.allow_any_model)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    return (
        recipe.model,
        recipe.prompt,
        recipe.negative_prompt,
        recipe.seed,
        recipe.steps,
        recipe.guidance_scale,
        recipe.scheduler,
        gr.Slider(value=recipe.width, maximum=recommended(recipe.model)["max_side"]),
        gr.Slider(value=recipe.height, maximum=recommended(recipe.model)["max_side"]),
        recipe.count,
        f"Settings restored from the PNG (seed {recipe.seed}, {recipe.steps} steps, {recipe.scheduler}). Press Generate.",
    )


def model_note(model: str) -> str:
    r = recommended(model)
    spec = catalog.CATALOG.get(model)
    return (
        f"{spec.description if spec else ''} Recommended: {r['steps']} steps, guidance {r['guidance_scale']:g}, "
        f"{r['width']}×{r['height']}, {r['scheduler']}."
    )


def model_defaults(model: str):
    """Picking a model loads its recommended settings."""
    r = recommended(model)
    return (
        r["steps"],
        r["guidance_scale"],
        r["scheduler"],
        gr.Slider(value=r["width"], maximum=r["max_side"]),
        gr.Slider(value=r["height"], maximum=r["max_side"]),
        model_note(model),
    )


def text_to_image(
    prompt: str,
    negative_prompt: str = "",
    model: str = "",
    seed: int = 0,
    steps: int | None = None,
    guidance_scale: float | None = None,
    scheduler: str = "",
    width: int | None = None,
    height: int | None = None,
    count: int = 1,
) -> dict:
    """Generate `count` images for `prompt`. Unset settings take the model's recommended values.
    Returns {"images": [base64 PNG, each carrying its recipe], "recipe": {...}, "notices": [...],
    "seconds": float}. An empty prompt runs unconditionally (with a notice)."""
    model = model or catalog.default_model("text-to-image", runtime.get().settings.models)
    entry = _entry(model)
    r = recommended(entry.key)
    recipe = _recipe(
        entry,
        prompt=prompt,
        negative_prompt=negative_prompt,
        seed=seed,
        steps=r["steps"] if steps is None else steps,
        guidance_scale=r["guidance_scale"] if guidance_scale is None else guidance_scale,
        scheduler=scheduler or r["scheduler"],
        width=r["width"] if width is None else width,
        height=r["height"] if height is None else height,
        count=count,
    )
    try:
        run = on_worker(generate, entry, recipe).result()
    except Exception as exc:
        raise _failure(exc) from None
    return {
        "images": [base64.b64encode(png_bytes(image, recipe, i)).decode() for i, image in enumerate(run.images)],
        "recipe": dataclasses.asdict(recipe),
        "notices": run.notices,
        "seconds": round(run.seconds, 3),
    }


def build_ui() -> None:
    rt = runtime.get()
    heavy = dict(concurrency_id="gpu", concurrency_limit=rt.concurrency, api_visibility="private")
    light = dict(api_visibility="private")
    default = catalog.default_model("text-to-image", rt.settings.models)
    r = recommended(default)
    names = list(SCHEDULERS)

    gr.Markdown(
        "Type a prompt and watch the picture form out of noise. The bundled model was trained by this "
        "project on 32×32 scenes of coloured shapes (try *a large red circle at the top*); hub models "
        "such as sd-turbo work the same way when online."
    )
    with gr.Row():
        model = gr.Dropdown(
            [(s.label(), s.key) for s in catalog.models_for("text-to-image")],
            value=default,
            label="Model",
            scale=2,
            allow_custom_value=rt.settings.allow_any_model,  # a hub id or path, when the operator allows them
        )
        scheduler = gr.Dropdown(names, value=r["scheduler"], label="Scheduler", scale=1)
    note = gr.Markdown(model_note(default))
    scheduler_note = gr.Markdown(SCHEDULER_NOTES.get(r["scheduler"], ""))
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(
                elem_id="t2i-prompt",
                label="Prompt",
                value="a large red circle at the top",
                lines=2,
                max_length=MAX_PROMPT_CHARS,
            )
            negative = gr.Textbox(
                label="Negative prompt", placeholder="what to steer away from", max_length=MAX_PROMPT_CHARS
            )
            with gr.Row():
                seed = gr.Number(elem_id="t2i-seed", label="Seed", value=0, precision=0, minimum=0, maximum=MAX_SEED)
                dice = gr.Button("🎲", scale=0, min_width=48)
                count = gr.Slider(1, MAX_COUNT, value=4, step=1, label="Images")
            with gr.Row():
                steps = gr.Slider(1, MAX_STEPS, elem_id="t2i-steps", value=r["steps"], step=1, label="Steps")
                guidance = gr.Slider(0, MAX_GUIDANCE, value=r["guidance_scale"], step=0.5, label="Guidance scale (w)")
            with gr.Row():
                width = gr.Slider(8, r["max_side"], value=r["width"], step=8, label="Width")
                height = gr.Slider(8, r["max_side"], value=r["height"], step=8, label="Height")
            with gr.Row():
                go = gr.Button("Generate", variant="primary", elem_id="t2i-generate")
                stop = gr.Button("Stop", elem_id="t2i-stop")
            restore_file = gr.File(
                elem_id="t2i-restore",
                label="Restore settings from a PNG made here",
                file_types=[".png"],
                type="filepath",
            )
        with gr.Column(scale=2):
            preview = gr.Image(
                elem_id="t2i-preview",
                label="Live: the image it is heading for (x̂₀)",
                format="png",
                elem_classes="pixelated",
            )
            status = gr.Markdown(elem_id="t2i-status")
    gallery = gr.Gallery(
        label="Images (PNG with the full recipe inside)",
        elem_id="t2i-gallery",
        columns=4,
        format="png",
        elem_classes="pixelated",
    )
    recipe_box = gr.Code(label="Recipe", language="json")
    run_state = gr.State(None)

    with gr.Accordion("Step debugger: scrub through every step", open=False):
        k = gr.Slider(1, 2, value=1, step=1, label="Step", interactive=False)
        step_text = gr.Markdown(elem_id="t2i-step-text")
        with gr.Row():
            x_t = gr.Image(label="x_t: the noisy latent", elem_classes="pixelated")
            x0 = gr.Image(elem_id="t2i-x0", label="x̂₀: the clean image it implies (decoded)", elem_classes="pixelated")
            eps = gr.Image(label="ε: the noise the model predicts", elem_classes="pixelated")
        cfg = gr.Gallery(label="Classifier-free guidance on your prompt", columns=4, elem_classes="pixelated")
        pull = gr.LinePlot(x="step", y="pull", label="‖ε_cond − ε_uncond‖ / ‖ε_uncond‖ at each step", height=220)
        gr.Markdown("**Branch:** continue from this step's x_t with another scheduler or guidance scale.")
        with gr.Row():
            branch_scheduler = gr.Dropdown(names, value="Euler", label="Scheduler")
            branch_guidance = gr.Slider(0, MAX_GUIDANCE, value=1.0, step=0.5, label="Guidance scale")
            branch_go = gr.Button("Branch from this step", elem_id="t2i-branch")
        branched = gr.Gallery(elem_id="t2i-branched", label="Original vs branch", columns=2, elem_classes="pixelated")
    with gr.Accordion("Noise schedule: ᾱ_t per step for each scheduler", open=False):
        schedule = gr.LinePlot(x="step", y="alpha_bar", color="scheduler", height=300)
    with gr.Accordion("Pipeline anatomy", open=False):
        anatomy = gr.Markdown("Generate once to see the loaded pipeline's parts.", elem_id="t2i-anatomy")
    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS)

    settings = [model, prompt, negative, seed, steps, guidance, scheduler, width, height, count]
    model.input(model_defaults, model, [steps, guidance, scheduler, width, height, note], **light)
    scheduler.change(lambda name: SCHEDULER_NOTES.get(name, ""), scheduler, scheduler_note, **light)
    dice.click(lambda: int(np.random.default_rng().integers(0, MAX_SEED)), None, seed, **light)
    go_event = gr.on(
        [go.click, prompt.submit],
        generate_ui,
        settings,
        [preview, status, gallery, recipe_box, run_state, k, schedule, pull, anatomy],
        show_progress_on=[status],  # the bar (with its ETA) sits on the status line; the preview stays in view
        **heavy,
    )
    stop.click(stop_generation, None, None, **light)
    k.release(show_step, [model, run_state, k], [x_t, x0, eps, cfg, step_text, schedule], **heavy)
    go_event.success(show_step, [model, run_state, k], [x_t, x0, eps, cfg, step_text, schedule], **heavy)
    branch_go.click(branch_ui, [run_state, k, branch_scheduler, branch_guidance], branched, **heavy)
    restore_file.upload(restore, restore_file, [*settings, status], **light).then(
        lambda: None, None, restore_file, **light
    )  # emptied again, ready for the next PNG (also after an error)
    gr.api(text_to_image, api_name="text_to_image", concurrency_id="gpu", concurrency_limit=rt.concurrency)
