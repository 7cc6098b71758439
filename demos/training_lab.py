"""The live training lab: a small GAN or VAE learning the digits while you watch.

Each browser session may run one training run; the grid decodes the same 16 latent points after
every few steps, so you watch *them* turn into digits, and the loss curves grow beside it. The
Latent sampling tab shows this as its "Training lab" sub-tab.

A run holds one of the app's LAB_MAX_RUNS slots only while someone looks at it: each view (the
page's 2 s timer) and each lab action renews its lease, and a run whose lease has run out stops
itself and gives its slot up, so a client that starts a run and leaves (an API call, a browser
that never says goodbye) cannot keep a slot. A run that finished (LAB_MAX_STEPS reached, or a
failed step) no longer counts against the slots either.

Every random draw of a run (initial weights, batches, noise, dropout masks) comes from the run's
own ``torch.Generator``: torch's global generator is never read or reseeded, so a lab running
next to other requests never changes their seeded results. Each step runs on a model worker
(``shared.compute``), like every other tab's model work.

Run alone: ``python -m demos.training_lab``.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable

import gradio as gr
import pandas as pd
import torch
from torch import nn

from demos import _glue
from demos._glue import session_id, user_error
from shared import compute
from shared.datasets import digits
from shared.images import grid_image
from shared.latent_models import ConvVAE, Discriminator, Generator, gan_step
from shared.validation import check_choice

# --- knobs ----------------------------------------------------------------------------------

SEED = 0
LAB_KINDS = ("vae", "gan")
LAB_BATCH = 64
LAB_MAX_RUNS = 2  # training runs at once in the whole app (each keeps a model worker busy)
LAB_MAX_STEPS = 20_000  # a run stops itself here
LAB_LEASE_S = 90.0  # a run nobody looked at for this long stops and frees its slot (the page looks every 2 s;
# a hidden browser tab's timers may slow to one a minute, so the lease outlasts that)
FIXED_LATENTS = 16  # the points decoded after each step, to show progress
SHOW_EVERY = 5  # steps between redrawing those points (the view reads the last drawing)


# --- building models from a generator of their own ------------------------------------------


def built(make: Callable[[], nn.Module], generator: torch.Generator) -> nn.Module:
    """``make()``'s module, initialised from ``generator`` alone.

    It is made on the meta device (shapes only, so nothing is drawn from torch's global
    generator), materialised on the CPU and given PyTorch's own default initialisation, drawn from
    ``generator``: Kaiming-uniform weights and uniform biases for linear and convolutional layers,
    ones and zeros for BatchNorm, Gaussian starting vectors for spectral norm's power iteration."""
    with torch.device("meta"):
        module = make()
    module.to_empty(device="cpu")
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                weight = getattr(layer, "weight_orig", layer.weight)  # spectral norm keeps the learned weight here
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
                if layer.bias is not None:
                    bound = 1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(weight)[0])
                    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
                for name in ("weight_u", "weight_v"):  # spectral norm's singular-vector estimates
                    if hasattr(layer, name):
                        vector = getattr(layer, name)
                        vector.copy_(nn.functional.normalize(torch.randn(vector.shape, generator=generator), dim=0))
            elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.reset_parameters()  # weight 1, bias 0, running statistics reset: no randomness
    return module


class SeededDropout(nn.Module):
    """``nn.Dropout`` whose masks come from a given generator instead of torch's global one."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p, self.generator = p, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, generator=self.generator) >= self.p
        return x * keep / (1 - self.p)


def own_dropout(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Every ``nn.Dropout`` inside ``module`` replaced by a SeededDropout drawing from ``generator``."""
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Dropout):
                setattr(parent, name, SeededDropout(child.p, generator))
    return module


def vae_loss(vae: ConvVAE, x: torch.Tensor, generator: torch.Generator):
    """(loss, reconstruction, KL) per image, as ``shared.latent_models.vae_loss``, with the
    reparameterisation noise ε drawn from ``generator``: z = μ + σ·ε, (N, latent_dim)."""
    mu, logvar = vae.encode(x)
    z = mu + torch.randn(mu.shape, generator=generator) * (0.5 * logvar).exp()
    recon = nn.functional.binary_cross_entropy_with_logits(vae.decode_logits(z), x, reduction="sum") / len(x)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
    return recon + vae.beta * kl, recon, kl


# --- a training run ---------------------------------------------------------------------------


class TrainingRun:
    """A small GAN or VAE learning the digits, one step at a time; fixed latents show progress.

    ``step()`` is the whole training step and is what the tests drive; ``start()``/``pause()``
    run it in a background thread (each step on a model worker), and ``stop()`` ends that thread.
    """

    def __init__(self, kind: str, seed: int = SEED) -> None:
        self.kind = check_choice("model to train", kind, LAB_KINDS)
        self.rng = torch.Generator().manual_seed(seed)  # every random draw of this run
        self.data = digits()["x_train"]  # (1347, 1, 16, 16)
        if kind == "gan":
            self.model = built(lambda: Generator(latent_dim=32, width=32), self.rng)
            self.critic = own_dropout(built(lambda: Discriminator(width=32), self.rng), self.rng)
            self.opt = torch.optim.Adam(self.model.parameters(), 2e-4, betas=(0.5, 0.999))
            self.opt_d = torch.optim.Adam(self.critic.parameters(), 2e-4, betas=(0.5, 0.999))
        else:
            self.model = built(lambda: ConvVAE(latent_dim=8), self.rng)
            self.opt = torch.optim.Adam(self.model.parameters(), 1e-3)
        self.fixed_z = torch.randn(FIXED_LATENTS, self.model.latent_dim, generator=self.rng)  # the same points
        self.steps = 0
        self.history: list[dict] = []
        self.error: str | None = None  # why the background loop stopped, if it failed
        self.seen_at = time.monotonic()  # the lease: renewed by every view and action of its session
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.shown = self.samples()  # the last drawing of them, which the view shows without model work

    def step(self) -> dict:
        """One optimiser step on a random batch of LAB_BATCH digits: the losses."""
        with self._lock:
            self.model.train()
            real = self.data[torch.randint(len(self.data), (LAB_BATCH,), generator=self.rng)]
            if self.kind == "gan":
                z = torch.randn(LAB_BATCH, self.model.latent_dim, generator=self.rng)
                d_loss, g_loss = gan_step(self.model, self.critic, self.opt, self.opt_d, real, z)
                losses = {"discriminator": d_loss, "generator": g_loss}
            else:
                loss, recon, kl = vae_loss(self.model, real, self.rng)
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                losses = {"loss": loss.item(), "reconstruction": recon.item(), "KL": kl.item()}
            self.steps += 1
            self.history.append({"step": self.steps, **losses})
        if self.steps % SHOW_EVERY == 0 or self.steps == 1:
            self.shown = self.samples()
        return losses

    @torch.no_grad()
    def samples(self) -> torch.Tensor:
        """The fixed latents decoded: (16, 1, 16, 16) in [0, 1]."""
        with self._lock:
            self.model.eval()
            return (self.model(self.fixed_z) if self.kind == "gan" else self.model.decode(self.fixed_z)).clone()

    def loss_frame(self, every: int = 10) -> pd.DataFrame:
        rows = [
            {"step": h["step"], "loss": value, "curve": name}
            for h in self.history[::every]
            for name, value in h.items()
            if name != "step"
        ]
        return pd.DataFrame(rows, columns=["step", "loss", "curve"])

    @property
    def running(self) -> bool:
        return self._running.is_set()

    @property
    def finished(self) -> bool:
        """It will train no more: LAB_MAX_STEPS reached, or a step failed."""
        return self.error is not None or self.steps >= LAB_MAX_STEPS

    def renew(self) -> None:
        self.seen_at = time.monotonic()

    @property
    def expired(self) -> bool:
        """Nobody has looked at it for LAB_LEASE_S: its slot is free for others."""
        return time.monotonic() - self.seen_at > LAB_LEASE_S

    def start(self) -> None:
        self._running.set()
        if self._thread is None or not self._thread.is_alive():  # a loop that ended (its lease ran out) starts again
            self._thread = threading.Thread(target=self._loop, name="training-lab", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        self._running.clear()

    def stop(self) -> None:
        self._stopped.set()
        self._running.set()  # wake the loop so it can see the stop
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stopped.is_set() and not self.expired:  # a run nobody watches stops by itself
            if not self._running.wait(timeout=0.5):
                continue
            if self._stopped.is_set() or self.steps >= LAB_MAX_STEPS:
                break
            try:
                compute.run(self.step)  # on a model worker, between other requests' work
            except Exception as exc:  # a failed step ends the run; the status line says why
                self.error = user_error(exc, "The training step").message
                break
        self._running.clear()


# --- sessions and their runs ------------------------------------------------------------------

_runs: dict[str, TrainingRun] = {}  # session → its training run
_runs_lock = threading.Lock()


def _run_of(request: gr.Request | None) -> TrainingRun | None:
    """This session's run, its lease renewed (None if it has none, or its lease ran out)."""
    with _runs_lock:
        run = _runs.get(session_id(request))
        if run is None or run.expired:
            return None
        run.renew()
        return run


def _sweep() -> None:
    """Forget the runs whose lease ran out, stopping them (called on every claim and every view)."""
    with _runs_lock:
        gone = [session for session, run in _runs.items() if run.expired]
        stale = [_runs.pop(session) for session in gone]
    for run in stale:
        run.stop()


def _claim(request: gr.Request | None, kind: str, *, replace: bool) -> TrainingRun:
    """This session's run, its lease renewed, made if it has none (within the app's LAB_MAX_RUNS
    unfinished runs). With ``replace``, a run of another kind is stopped and a fresh one of
    ``kind`` takes its place; a finished run is always replaced."""
    _sweep()
    session, old = session_id(request), None
    with _runs_lock:
        run = _runs.get(session)
        if run is not None and (run.finished or (replace and run.kind != kind)):
            old, run = _runs.pop(session), None
        if run is None:
            if sum(not other.finished for other in _runs.values()) >= LAB_MAX_RUNS:
                raise ValueError(f"{LAB_MAX_RUNS} training runs are going already; try again when one stops.")
            run = _runs[session] = compute.run(TrainingRun, kind)  # building runs torch ops too
        run.renew()
    if old is not None:
        old.stop()
    return run


def lab_view(request: gr.Request):
    """The current run's sample grid (fixed latents), loss curves and status (the 2 s timer: it
    renews this session's lease and frees the slots of runs nobody looks at)."""
    _sweep()
    run = _run_of(request)
    if run is None:
        return gr.skip(), gr.skip(), "No training run. Pick GAN or VAE and press **Start**."
    samples = run.shown  # drawn by the run itself on the worker: the view never waits behind other jobs
    if run.error:
        state = f"stopped: {run.error}"
    elif run.steps >= LAB_MAX_STEPS:
        state = f"finished at {LAB_MAX_STEPS:,} steps (press Start for a fresh run)"
    else:
        state = "training" if run.running else "paused"
    last = ", ".join(f"{k} {v:.3f}" for k, v in run.history[-1].items() if k != "step") if run.history else ""
    return (
        grid_image(samples, columns=8),
        run.loss_frame(),
        f"**{run.kind.upper()}** · step {run.steps:,} · {state} · {last}",
    )


def lab_start(kind: str, request: gr.Request):
    try:
        run = _claim(request, kind, replace=True)
    except Exception as exc:
        raise user_error(exc, "Starting the training run") from None
    run.start()
    return lab_view(request)


def lab_pause(request: gr.Request):
    run = _run_of(request)
    if run is not None:
        run.pause()
    return lab_view(request)


def lab_step(kind: str, request: gr.Request):
    try:
        run = _claim(request, kind, replace=False)
        run.pause()
        compute.run(run.step)
        run.shown = compute.run(run.samples)  # a single step is always drawn
    except Exception as exc:
        raise user_error(exc, "The training step") from None
    return lab_view(request)


def lab_stop(request: gr.Request):
    """Stop and free this session's run (also called when the browser tab closes)."""
    with _runs_lock:
        run = _runs.pop(session_id(request), None)
    if run is not None:
        run.stop()
    return None, None, "Stopped. The worker is freed."


def stop_session_runs(request: gr.Request) -> None:
    """When a browser tab closes, its training run stops and frees its worker (``demo.unload``)."""
    lab_stop(request)


def stop_all() -> None:
    """Stop every session's run (the app closing; tests, between modules)."""
    with _runs_lock:
        runs = list(_runs.values())
        _runs.clear()
    for run in runs:
        run.stop()


# --- the sub-tab --------------------------------------------------------------------------------


@dataclasses.dataclass
class LabUI:
    kind: gr.Radio
    status: gr.Markdown
    grid: gr.Image
    losses: gr.LinePlot


def build_ui() -> LabUI:
    """The lab's controls, grid and loss curves, wired; the status refreshes every 2 s."""
    gr.Markdown(
        "Train a small GAN or VAE on the digits right here, on the CPU. The grid decodes the same 16 "
        "latent points every time, so you watch *them* turn into digits."
    )
    with gr.Row():
        kind = gr.Radio(list(LAB_KINDS), value="vae", label="model to train")
        start = gr.Button("Start", variant="primary", elem_id="lab-start")
        pause = gr.Button("Pause", elem_id="lab-pause")
        one_step = gr.Button("Single step", elem_id="lab-step")
        stop = gr.Button("Stop", variant="stop", elem_id="lab-stop")
    status = gr.Markdown("No training run.", elem_id="lab-status")
    with gr.Row():
        grid = gr.Image(label="Samples from fixed latents", type="pil", interactive=False)
        losses = gr.LinePlot(x="step", y="loss", color="curve", label="Losses", height=260)
    timer = gr.Timer(2.0)

    outputs = [grid, losses, status]
    light = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
    start.click(lab_start, kind, outputs, **light)
    pause.click(lab_pause, None, outputs, **light)
    one_step.click(lab_step, kind, outputs, **light)
    stop.click(lab_stop, None, outputs, **light)
    timer.tick(lab_view, None, outputs, **light)
    return LabUI(kind, status, grid, losses)


if __name__ == "__main__":
    _glue.run_alone(build_ui, "Training lab")
