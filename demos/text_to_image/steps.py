"""The text-to-image tab's step debugger and explainers: what the denoiser predicted at each step.

A forward hook on the denoiser records, for image 0 of each request, the input x_t of every step
and the noise prediction ε (both halves of a classifier-free-guidance batch). From those records
this module draws the live preview, the debugger's frames (x_t, x̂₀, ε and the guidance branches),
the noise-schedule and guidance plots, and re-runs the end of the path from any step with another
scheduler or guidance scale (a *branch*). The pipeline's anatomy and "How it works" live here too.

Reads top to bottom: recording → pictures of latents → the debugger's views → branching →
explainers → model work and Gradio glue → the accordions (``build_debugger``), which the tab
(``demos/text_to_image/``) places under its gallery.

A finished run (every step's latents) is kept in ``RUNS``, a store with a byte budget and an age
limit; the session's ``gr.State`` holds only its key, so a client that never comes back holds no
memory, and a dropped run says "run it again".
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

from demos.glue import user_error
from demos.numbers import Box, fit_number
from demos.text_to_image.core import Run, StepRecord
from demos.text_to_image.recipe import MAX_GUIDANCE, check_scheduler_steps
from shared import compute, runtime
from shared.diffusion import SCHEDULERS, alpha_bar, make_scheduler
from shared.images import enlarge
from shared.loaders import TextToImage
from shared.results import ResultStore
from shared.validation import check_choice, check_float, check_int

PREVIEW_PX = 256  # live preview and debugger frames are shown at least this large
RUNS_MAX_BYTES = 256 * 2**20  # every session's last run together (an SD 1.5 run of 50 steps at 512² is ~17 MB)
RUNS_MAX_AGE_S = 60 * 60  # a run nobody has looked at for an hour is dropped
RUNS = ResultStore(RUNS_MAX_BYTES, RUNS_MAX_AGE_S)  # key (in the session's gr.State) → Run

HOW_IT_WORKS = (Path(__file__).parent / "how_it_works.md").read_text()  # also chat's retrieval corpus


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

# Stable Diffusion 1.x/2.x latents → RGB by one linear map (a well-known approximation): previews
# for the big models cost a matrix product instead of a VAE decode.
SD_LATENT_RGB = torch.tensor(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
)


# --- recording what the denoiser predicts -----------------------------------------------------------


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

    def __init__(
        self,
        denoiser: torch.nn.Module,
        scheduler,
        num_images_per_prompt: int,
        guidance_scale: float,
        prediction: str,
    ) -> None:
        self.steps: list[StepRecord] = []
        self.scheduler, self.prediction = scheduler, prediction
        self.num_images_per_prompt, self.guidance_scale = num_images_per_prompt, guidance_scale
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
        n = self.num_images_per_prompt
        cfg = sample.shape[0] == 2 * n
        # clones: views would keep the whole (2·n, C, h, w) batch alive for every step
        uncond, cond = (out[0].clone(), out[n].clone()) if cfg else (None, None)
        guided = uncond + self.guidance_scale * (cond - uncond) if cfg else out[0].clone()
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


# --- pictures of latents ----------------------------------------------------------------------------


def denoiser_of(pipe) -> torch.nn.Module | None:
    return getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)


def decoder_of(pipe):
    return getattr(pipe, "vae", None) or getattr(pipe, "movq", None)


def small_decoder(pipe) -> bool:
    """A decoder cheap enough to run for every preview (the bundled model's has 0.4 M parameters)."""
    vae = decoder_of(pipe)
    return vae is not None and sum(p.numel() for p in vae.parameters()) < 5_000_000


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


# --- the debugger's views ---------------------------------------------------------------------------


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
    x0 = None
    if record.x0 is not None and decoder_of(pipe) is not None:
        x0 = enlarge(decode_latent(pipe, record.x0), PREVIEW_PX)
    guidance = []
    if record.eps_cond is not None:
        guidance = [
            (record.eps_uncond, "ε_uncond (no prompt)"),
            (record.eps_cond, "ε_cond (your prompt)"),
            (record.eps_cond - record.eps_uncond, "ε_cond − ε_uncond (what the prompt adds)"),
            (record.eps, f"ε = ε_uncond + {run.recipe.guidance_scale:g}·(ε_cond − ε_uncond)"),
        ]
        guidance = [(enlarge(noise_to_rgb(noise), PREVIEW_PX), caption) for noise, caption in guidance]
    signal = f" · ᾱ_t = {record.alpha_bar:.4f} (signal {100 * record.alpha_bar:.1f} %)" if record.alpha_bar else ""
    text = f"**Step {k + 1} of {len(run.steps)}** · timestep t = {record.timestep:.0f}{signal}"
    if record.eps_cond is None:
        text += " · no guidance branch at this scale (one pass per step)"
    x_t = enlarge(latent_to_rgb(record.x_t), PREVIEW_PX)
    return StepView(x_t, x0, enlarge(noise_to_rgb(record.eps), PREVIEW_PX), guidance, text)


def guidance_frame(run: Run) -> pd.DataFrame:
    """How hard the prompt pulls at each step: ‖ε_cond − ε_uncond‖ / ‖ε_uncond‖."""
    rows = [
        {"step": r.index + 1, "pull": float((r.eps_cond - r.eps_uncond).norm() / r.eps_uncond.norm())}
        for r in run.steps
        if r.eps_cond is not None
    ]
    return pd.DataFrame(rows, columns=["step", "pull"])


def schedule_frame(config, num_inference_steps: int) -> pd.DataFrame:
    """ᾱ_t against step for each scheduler (for the noise-schedule plot)."""
    return _schedule_frame(json.dumps(dict(config), sort_keys=True, default=str), num_inference_steps).copy()


@functools.lru_cache(maxsize=64)
def _schedule_frame(config_json: str, num_inference_steps: int) -> pd.DataFrame:
    config = json.loads(config_json)
    rows = []
    for name in SCHEDULERS:
        scheduler = make_scheduler(name, config)
        try:
            scheduler.set_timesteps(num_inference_steps)
        except Exception:  # e.g. LCM refusing more steps than its distillation grid
            continue
        for i, a in enumerate(alpha_bar(scheduler, scheduler.timesteps)):
            rows.append({"step": i + 1, "alpha_bar": float(a), "scheduler": name})
    return pd.DataFrame(rows)


def log_snr(alpha_bar: np.ndarray) -> np.ndarray:
    """ln(ᾱ / (1 − ᾱ)): signal over noise, in nats. 0 is half of each; every +2.3 is ten times more
    signal. (ᾱ is kept inside [1e-6, 1 − 1e-6], so a zero-terminal-SNR schedule stays on the plot.)"""
    a = np.clip(np.asarray(alpha_bar, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(a / (1 - a))


STEP_SHOWN = "the step the debugger shows"


def schedule_plot_frame(pipe, run: Run | None, num_inference_steps: int, k: int | None = None) -> pd.DataFrame:
    """The schedule plot's data: one row of dots per scheduler (its own axis, so schedulers that
    take the same steps never hide each other), each dot a step at its log-SNR; step k marked."""
    frame = schedule_frame(pipe.scheduler.config, num_inference_steps)
    frame["log_snr"] = log_snr(frame["alpha_bar"].to_numpy())
    marked = frame["step"] == k if run is not None and k else np.zeros(len(frame), dtype=bool)
    frame["dot"] = np.where(marked, STEP_SHOWN, "a step")
    return frame[["step", "log_snr", "alpha_bar", "scheduler", "dot"]]


# --- branching: the same path from step k, with another scheduler or guidance scale ----------------


@torch.inference_mode()
def branch(entry: TextToImage, run: Run, k: int, scheduler_name: str, guidance_scale: float) -> Image.Image:
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
    guidance_scale = check_float("guidance_scale", guidance_scale, 0.0, MAX_GUIDANCE)
    check_choice("scheduler", scheduler_name, SCHEDULERS)
    recipe, record = run.recipe, run.steps[k]
    # 1. the new scheduler's timesteps, entered at the one nearest step k's
    scheduler = make_scheduler(scheduler_name, pipe.scheduler.config)
    check_scheduler_steps(scheduler, recipe.num_inference_steps, "the run's steps")
    scheduler.set_timesteps(recipe.num_inference_steps)
    timesteps = scheduler.timesteps
    start = int(torch.argmin((timesteps.float() - record.timestep).abs()))
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    # 2. x_t in the scheduler's own scale: (1, C, h, w)
    sigmas = getattr(scheduler, "sigmas", None)
    x = record.x_t[None].to(pipe.device, pipe.unet.dtype)
    if sigmas is not None and float(scheduler.init_noise_sigma) > 1:  # σ-space schedulers (Euler…)
        x = x * math.sqrt(float(sigmas[start]) ** 2 + 1)
    # 3. the prompt's embeddings, with the unconditional half when guiding
    cfg = guidance_scale > 1
    cond, uncond = pipe.encode_prompt(recipe.prompt, pipe.device, 1, cfg, recipe.negative_prompt or None)
    embeds = torch.cat([uncond, cond]) if cfg else cond
    generator = torch.Generator("cpu").manual_seed(recipe.seed)
    # 4. denoise the rest of the way: predict ε (guided), then x_t → x_t-1
    for t in timesteps[start:]:
        model_in = scheduler.scale_model_input(torch.cat([x] * 2) if cfg else x, t)
        eps = pipe.unet(model_in, t, encoder_hidden_states=embeds).sample
        if cfg:
            eps_uncond, eps_cond = eps.chunk(2)
            eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
        x = scheduler.step(eps, t, x, generator=generator).prev_sample
    # 5. decode the final latent
    return enlarge(decode_latent(pipe, x[0].float().cpu()), PREVIEW_PX)


# --- explainers ------------------------------------------------------------------------------------


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


# --- model work (on a worker, through shared.compute) and Gradio glue --------------------------------


def run_nbytes(run: Run) -> int:
    """About how much memory a run holds: every step's tensors, and its images as RGB bytes."""
    tensors = (t for r in run.steps for t in (r.x_t, r.eps, r.x0, r.eps_uncond, r.eps_cond) if t is not None)
    return sum(t.nbytes for t in tensors) + sum(image.width * image.height * 3 for image in run.images)


def kept_run(key: object) -> Run:
    """The run a session's key names; a ValueError that says to run it again once it was dropped."""
    return RUNS.get(key, "That generation")


@dataclasses.dataclass
class RunPanels:
    preview: np.ndarray  # the final image, or for a stopped run the image its last step was heading for
    schedule: pd.DataFrame
    pull: pd.DataFrame
    anatomy: str


def work_run_panels(run: Run, k: int) -> RunPanels:
    """After a run: the preview to leave on screen, the schedule plot marked at step k, the
    guidance plot and the anatomy table. A stopped run's images are half-denoised latents, so the
    preview (labelled "the image it is heading for") is its last step's x̂₀ instead."""
    entry = runtime.text_to_image(run.recipe.model)
    schedule = schedule_plot_frame(entry.pipe, run, run.recipe.num_inference_steps, k)
    preview = np.asarray(run.images[0])
    if run.stopped and run.steps:
        preview = preview_of(entry.pipe, run.steps[-1])
    return RunPanels(preview, schedule, guidance_frame(run), anatomy_markdown(entry))


def work_step_panels(run: Run, k: object) -> tuple[StepView, pd.DataFrame]:
    """The debugger at step k: its frames, and the schedule plot marked there."""
    entry = runtime.text_to_image(run.recipe.model)
    k = check_int("step", k, 1, len(run.steps))
    return step_view(entry.pipe, run, k), schedule_plot_frame(entry.pipe, run, run.recipe.num_inference_steps, k)


def work_branch(run: Run, k: int, scheduler: str, guidance_scale: float) -> Image.Image:
    return branch(runtime.text_to_image(run.recipe.model), run, k, scheduler, guidance_scale)


def _step_panels(key: str | None, k: object, box_label: str | None = None) -> tuple:
    """show_step's outputs for step k of the session's run. A step past the run's ends (typed into
    the box) shows the nearest step, with a warning; a problem is said in the step's text, with no
    error badge left on the frames."""
    try:
        if key is None:
            raise ValueError("Generate an image first: the debugger shows its steps.")
        run = kept_run(key)
        if not run.steps:  # a denoiser the recorder couldn't watch: nothing to show, nothing to complain about
            return (gr.skip(),) * 4 + (
                "This pipeline's denoiser could not be watched, so there are no steps to show.",
                gr.skip(),
            )
        if box_label is not None:
            if k is None:  # the box emptied while typing: nothing to show yet
                return (gr.skip(),) * 6
            k, message = fit_number(Box(box_label, 1, len(run.steps), maximum_is="the last step"), k)
            if k is None:
                return (gr.skip(),) * 6
            if message:
                gr.Warning(message)
        elif isinstance(k, (int, float)) and math.isfinite(k):
            k = min(int(k), len(run.steps))  # Generate's own update of the slider, for a shorter run
        view, schedule = compute.run(work_step_panels, run, k)
    except Exception as exc:
        return (gr.skip(),) * 4 + (f"⚠️ {user_error(exc, 'The step debugger').message}", gr.skip())
    return view.x_t, view.x0, view.eps, view.guidance, view.text, schedule


def show_step(key: str | None, k: int):
    """After a run: the debugger's frames of step k (the slider's new value) and the schedule plot
    marked there."""
    return _step_panels(key, k)


def scrub_step(key: str | None, typed: object):
    """The step slider changed, dragged or typed into (``typed``: the number in its box, read in the
    page, None while it is empty): the frames of that step, the nearest one past either end of the run."""
    return _step_panels(key, typed, "Step")


def branch_ui(key: str | None, k: int, scheduler: str, guidance_scale: float):
    """Branch: the run's final image next to the same path continued from step k another way. A
    problem comes as a warning; the gallery keeps what it showed (no error badge over it)."""
    try:
        if key is None:
            raise ValueError("Generate an image first, then branch from one of its steps.")
        run = kept_run(key)
        image = compute.run(work_branch, run, k, scheduler, guidance_scale)
    except Exception as exc:
        gr.Warning(user_error(exc, "Branching").message)
        return gr.skip()
    final = enlarge(np.asarray(run.images[0]), PREVIEW_PX)
    return [
        (final, f"original: {run.recipe.scheduler}, w = {run.recipe.guidance_scale:g}"),
        (image, f"branch from step {int(k)}: {scheduler}, w = {guidance_scale:g}"),
    ]


# --- the accordions -----------------------------------------------------------------------------


TYPED_STEP_JS = """(key, _) => {
    const value = document.querySelector("#t2i-step input[type=number]")?.valueAsNumber;
    return [key, Number.isFinite(value) ? value : null];
}"""


def _debugger_accordion() -> tuple[gr.Slider, list, gr.LinePlot, list]:
    """The step debugger: its step slider, the frames show_step fills, the guidance plot, and
    branching's [scheduler, guidance scale, button, gallery]."""
    with gr.Accordion("Step debugger: scrub through every step", open=False):
        k = gr.Slider(1, 2, value=1, step=1, label="Step", interactive=False, elem_id="t2i-step")
        step_text = gr.Markdown(elem_id="t2i-step-text")
        with gr.Row():
            x_t = gr.Image(label="x_t: the noisy latent", elem_classes="pixelated")
            x0 = gr.Image(elem_id="t2i-x0", label="x̂₀: the clean image it implies (decoded)", elem_classes="pixelated")
            eps = gr.Image(label="ε: the noise the model predicts", elem_classes="pixelated")
        cfg = gr.Gallery(
            label="Classifier-free guidance on your prompt", columns=4, elem_id="t2i-cfg", elem_classes="pixelated"
        )
        pull = gr.LinePlot(x="step", y="pull", label="‖ε_cond − ε_uncond‖ / ‖ε_uncond‖ at each step", height=220)
        gr.Markdown("**Branch:** continue from this step's x_t with another scheduler or guidance scale.")
        with gr.Row():
            branch_scheduler = gr.Dropdown(list(SCHEDULERS), value="Euler", label="Scheduler")
            branch_guidance = gr.Slider(0, MAX_GUIDANCE, value=1.0, step=0.5, label="Guidance scale")
            branch_go = gr.Button("Branch from this step", elem_id="t2i-branch")
        branched = gr.Gallery(elem_id="t2i-branched", label="Original vs branch", columns=2, elem_classes="pixelated")
    return k, [x_t, x0, eps, cfg, step_text], pull, [branch_scheduler, branch_guidance, branch_go, branched]


def _explainer_accordions() -> tuple[gr.ScatterPlot, gr.Markdown]:
    """The noise schedule plot, the pipeline's anatomy and how it all works."""
    with gr.Accordion("Noise schedule: ᾱ_t per step for each scheduler", open=False):
        gr.Markdown(
            "Each dot is one step of that scheduler, placed at how much signal its input still holds: "
            "log-SNR = ln(ᾱ_t / (1 − ᾱ_t)), from noise (left) to clean (right); 0 is half and half. "
            "Schedulers in identical rows take the same steps. Orange: " + STEP_SHOWN + "."
        )
        schedule = gr.ScatterPlot(
            x="log_snr",
            y="scheduler",
            color="dot",
            color_map={"a step": "#9ca3af", STEP_SHOWN: "#ea580c"},
            colors_in_legend=[],  # the text above says what the colours mean; a legend would be cut on a phone
            x_title="log-SNR (nats): noise ← → signal",
            y_title="",
            tooltip="all",
            height=280,
            elem_id="t2i-schedule",
        )
    with gr.Accordion("Pipeline anatomy", open=False):
        anatomy = gr.Markdown("Generate once to see the loaded pipeline's parts.", elem_id="t2i-anatomy")
    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS)
    return schedule, anatomy


@dataclasses.dataclass
class DebuggerUI:
    """The debugger's and explainers' components that the tab's Generate fills."""

    step: gr.Slider  # which step the debugger shows
    step_outputs: list  # what show_step fills: x_t, x̂₀, ε, the guidance gallery, the step's text, the schedule
    pull: gr.LinePlot  # the guidance plot
    schedule: gr.ScatterPlot
    anatomy: gr.Markdown
    branched: gr.Gallery  # the last branch next to its run's image (a new run empties it)


def build_debugger(run_state: gr.State) -> DebuggerUI:
    """The step debugger, the noise schedule, the anatomy and "How it works", as accordions, with
    the debugger's own events wired (its slider and Branch). ``run_state`` holds the key of the
    session's last run in ``RUNS``."""
    heavy = dict(concurrency_id="gpu", concurrency_limit=runtime.get().concurrency, api_visibility="private")
    k, frames, pull, (branch_scheduler, branch_guidance, branch_go, branched) = _debugger_accordion()
    schedule, anatomy = _explainer_accordions()
    step_outputs = [*frames, schedule]
    # Any change of the step box (dragged, typed, clamped when left) shows that step. Its value is read
    # in the page (TYPED_STEP_JS) and sent in place of a box with no bounds: Gradio and the admission
    # check would refuse the slider's own value when it is past the run's ends (as a typed one is until
    # the box is left) or empty; scrub_step shows the nearest step instead. always_last: the last wins.
    typed = gr.Number(visible=False)
    k.change(
        scrub_step,
        [run_state, typed],
        step_outputs,
        js=TYPED_STEP_JS,
        trigger_mode="always_last",
        show_progress="hidden",
        **heavy,
    )
    branch_go.click(branch_ui, [run_state, k, branch_scheduler, branch_guidance], branched, **heavy)
    return DebuggerUI(k, step_outputs, pull, schedule, anatomy, branched)
