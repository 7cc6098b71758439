"""The live training lab: a small GAN or VAE learning the digits while you watch.

Each browser session may run one training run; the grid decodes the same 16 latent points after
every few steps, so you watch *them* turn into digits, and the loss curves grow beside it. The
Latent sampling tab shows this as its "Training lab" sub-tab, and its other sub-tabs can decode
with the session's lab model (``lab_model``): a copy of the live run's weights, or the copy kept
when the run ended (at most LAB_KEPT_SESSIONS sessions' models, each for LAB_KEPT_S, never
reachable from another session; a closed tab's are forgotten at once).

A run holds one of the app's LAB_MAX_RUNS slots only while someone looks at it: each view (the
page's 2 s timer) and each lab action renews its lease, and a run whose lease has run out stops
itself and gives its slot up, so a client that starts a run and leaves (an API call, a browser
that never says goodbye) cannot keep a slot. A run that finished (LAB_MAX_STEPS reached, or a
failed step) no longer counts against the slots either.

Every random draw of a run (initial weights, batches, noise, dropout masks) comes from the run's
own ``torch.Generator``: torch's global generator is never read or reseeded, so a lab running
next to other requests never changes their seeded results. Each step runs on a model worker
(``shared.compute``), like every other tab's model work.

Run alone: ``python -m demos.latent.lab``.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import math
import threading
import time
from collections.abc import Callable

import gradio as gr
import pandas as pd
import torch
from torch import nn

from demos import server
from demos.glue import session_id, user_error
from shared import compute, runtime
from shared.datasets import digits
from shared.images import grid_image
from shared.latent_models import ConvVAE, Discriminator, Generator, gan_step
from shared.loaders import LatentModel
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
LOSS_POINTS = 200  # steps per loss curve on the plot at most (evenly spaced, the last one always)
DATASET = "digits"  # what every lab model learns
LAB_KEPT_SESSIONS = 32  # sessions whose lab models outlive their runs (≤ 2 models each: a VAE ~2.3 MiB, a GAN ~0.3)
LAB_KEPT_S = 60 * 60  # …for at most this long unused
CURVE_COLOURS = {  # each kind's loss curves (matplotlib's tab10)
    "vae": {"loss": "#1f77b4", "reconstruction": "#ff7f0e", "KL": "#2ca02c"},
    "gan": {"discriminator": "#d62728", "generator": "#9467bd"},
}


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


@dataclasses.dataclass
class LabModel:
    """A lab model as other sub-tabs use it: a copy of a run's weights at one step."""

    kind: str  # "vae" | "gan"
    steps: int  # the training steps behind it
    model: nn.Module  # ConvVAE or Generator, eval mode, no gradients

    def latent_model(self) -> LatentModel:
        key = f"lab:{self.kind}"
        return LatentModel(key=key, kind=self.kind, model=self.model, latent_dim=self.model.latent_dim, dataset=DATASET)


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
        self._stepping = threading.Lock()  # held by the loop across "still running?" and its step
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

    def checkpoint(self) -> LabModel:
        """A copy of the model as it is now, for decoding elsewhere: training on never changes it."""
        with self._lock:
            model, steps = copy.deepcopy(self.model), self.steps
        return LabModel(self.kind, steps, model.eval().requires_grad_(False))

    def loss_frame(self, points: int = LOSS_POINTS) -> pd.DataFrame:
        """The losses, one row per curve and step (step, loss, curve): at most ``points`` steps, evenly
        spaced, always with the last one (the curves end where the status line says the run is)."""
        history = self.history[:]  # the loop appends while a view reads
        shown = history[:: max(1, math.ceil(len(history) / points))]
        if history and shown[-1] is not history[-1]:
            shown.append(history[-1])
        rows = [
            {"step": h["step"], "loss": value, "curve": name}
            for h in shown
            for name, value in h.items()
            if name != "step"
        ]
        frame = pd.DataFrame(rows, columns=["step", "loss", "curve"])
        return frame.astype({"step": "int64", "loss": "float64", "curve": "str"})  # typed when empty too

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
        """No step starts from now on, and the one in flight (if any) has ended when this returns:
        the step count a view shows next is where the run stays."""
        self._running.clear()
        with self._stepping:
            pass

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
            with self._stepping:
                if not self._running.is_set():  # paused while this loop was waking
                    continue
                try:
                    compute.run(self.step)  # on a model worker, between other requests' work
                except Exception as exc:  # a failed step ends the run; the status line says why
                    self.error = user_error(exc, "The training step").message
                    break
        self._running.clear()


# --- sessions, their runs and the models they keep ----------------------------------------------

_runs: dict[str, TrainingRun] = {}  # session → its training run
_runs_lock = threading.Lock()  # guards _runs and _kept


@dataclasses.dataclass
class Kept:
    """What a session keeps after its runs end: their models (for the other sub-tabs' pickers) and
    the status line of the last one, so that stopping a run never blanks what the lab showed."""

    models: dict[str, LabModel] = dataclasses.field(default_factory=dict)  # kind → the latest model
    ended: str | None = None  # the last run's final status line
    used_at: float = dataclasses.field(default_factory=time.monotonic)


_kept: collections.OrderedDict[str, Kept] = collections.OrderedDict()  # session → Kept, least recently used first


def _trim_kept() -> None:
    """Forget sessions unused for LAB_KEPT_S, then the least recently used past LAB_KEPT_SESSIONS (lock held)."""
    now = time.monotonic()
    for session in [s for s, kept in _kept.items() if now - kept.used_at > LAB_KEPT_S]:
        del _kept[session]
    while len(_kept) > LAB_KEPT_SESSIONS:
        _kept.popitem(last=False)


def _keep(session: str, run: TrainingRun, ended: str | None) -> None:
    """Keep a run's model (once it has trained a step) and, if it ended, its last status line."""
    model = run.checkpoint() if run.steps else None  # copied outside _runs_lock: a step may hold the run's lock
    with _runs_lock:
        kept = _kept.pop(session, None) or Kept()
        if model is not None:
            kept.models[run.kind] = model
        kept.ended, kept.used_at = ended, time.monotonic()
        _kept[session] = kept
        _trim_kept()


def _kept_of(session: str) -> Kept | None:
    with _runs_lock:
        _trim_kept()
        kept = _kept.get(session)
        if kept is not None:
            kept.used_at = time.monotonic()
            _kept.move_to_end(session)
        return kept


def _run_of(request: gr.Request | None) -> TrainingRun | None:
    """This session's run, its lease renewed (None if it has none, or its lease ran out)."""
    with _runs_lock:
        run = _runs.get(session_id(request))
        if run is None or run.expired:
            return None
        run.renew()
        return run


def _sweep() -> None:
    """Forget the runs whose lease ran out, stopping them and keeping their models (called on every
    claim and every view)."""
    with _runs_lock:
        gone = [session for session, run in _runs.items() if run.expired]
        stale = [(session, _runs.pop(session)) for session in gone]
    for session, run in stale:
        run.stop()
        why = f"nobody looked at it for {LAB_LEASE_S:.0f} s, so it gave its slot up"
        _keep(session, run, ended=_status(run, f"stopped at step {run.steps:,} ({why})"))


def _claim(request: gr.Request | None, kind: str, *, replace: bool) -> TrainingRun:
    """This session's run, its lease renewed, made if it has none (within the app's LAB_MAX_RUNS
    unfinished runs). With ``replace``, a run of another kind is stopped and a fresh one of
    ``kind`` takes its place; a finished run is always replaced. A replaced run's model is kept."""
    if runtime.get().settings.public_demo:  # a run holds a worker for minutes: not for every visitor of a public demo
        raise ValueError(LAB_OFF)
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
        _keep(session, old, ended=None)
    return run


def lab_kinds(request: gr.Request | None) -> tuple[str, ...]:
    """The kinds of lab model this session can decode with: its live run's (once it has trained a
    step) and those kept from its earlier runs, in LAB_KINDS order."""
    run, kept = _run_of(request), _kept_of(session_id(request))
    have = set(kept.models if kept else ()) | ({run.kind} if run is not None and run.steps else set())
    return tuple(kind for kind in LAB_KINDS if kind in have)


def lab_model(request: gr.Request | None, kind: str) -> LatentModel:
    """This session's lab model of ``kind`` as a latent model: a copy of its live run's weights as they
    are now, or the one kept when its run ended. Only the session that trained it can reach it."""
    kind = check_choice("lab model", kind, LAB_KINDS)
    run = _run_of(request)
    if run is not None and run.kind == kind and run.steps:
        return run.checkpoint().latent_model()
    kept = _kept_of(session_id(request))
    if kept is None or kind not in kept.models:
        raise ValueError(
            f"This browser tab has no lab {kind.upper()}: train one in the Training lab first "
            "(a lab model belongs to the tab that trained it, for an hour at most)."
        )
    return kept.models[kind].latent_model()


# --- Gradio glue: every view is (grid, losses, status, the Pause/Resume button) -------------------


def _status(run: TrainingRun, state: str) -> str:
    last = ", ".join(f"{k} {v:.3f}" for k, v in run.history[-1].items() if k != "step") if run.history else ""
    return " · ".join(part for part in (f"**{run.kind.upper()}**", state, last) if part)


def pause_label(run: TrainingRun | None) -> tuple[str, bool]:
    """What the Pause button shows, and whether it can be pressed: "Resume" while a run is paused."""
    if run is None or run.finished:
        return "Pause", False
    return ("Pause" if run.running else "Resume"), True


def _button(run: TrainingRun | None) -> gr.Button:
    label, live = pause_label(run)
    return gr.Button(value=label, interactive=live)


def loss_plot(run: TrainingRun):
    """The loss curves as an update of the plot, or no update before the first step. Gradio 6.31's
    plot fixes its series (colours, legend) when first drawn and only swaps the data after: an empty
    first frame would leave it blank for good, and a GAN's curves after a VAE's would never show. So
    the first frame has every curve, and each kind has its own colour map, whose change redraws."""
    if not run.history:
        return gr.skip()
    return gr.LinePlot(value=run.loss_frame(), color_map=CURVE_COLOURS[run.kind])


def lab_view(request: gr.Request):
    """The current run's sample grid (fixed latents), loss curves, status and Pause/Resume button (the
    2 s timer: it renews this session's lease and frees the slots of runs nobody looks at). After a
    run stops, its grid and curves stay as they were and the status says where it stopped."""
    _sweep()
    run = _run_of(request)
    if run is None:
        kept = _kept_of(session_id(request))
        ended = kept.ended if kept is not None and kept.ended else None
        return gr.skip(), gr.skip(), ended or "No training run. Pick GAN or VAE and press **Start**.", _button(None)
    samples = run.shown  # drawn by the run itself on the worker: the view never waits behind other jobs
    if run.error:
        state = f"stopped: {run.error}"
    elif run.steps >= LAB_MAX_STEPS:
        state = f"finished at {LAB_MAX_STEPS:,} steps (press Start for a fresh run)"
    else:
        state = "training" if run.running else "paused"
    return grid_image(samples, columns=8), loss_plot(run), _status(run, f"step {run.steps:,} · {state}"), _button(run)


def lab_start(kind: str, request: gr.Request):
    try:
        run = _claim(request, kind, replace=True)
    except Exception as exc:
        raise user_error(exc, "Starting the training run") from None
    run.start()
    return lab_view(request)


def lab_pause(label: str, request: gr.Request):
    """The Pause button pauses a training run; while the run is paused it reads Resume and resumes it.
    It does what its label said when pressed (a label a moment old never does the opposite)."""
    try:
        label = check_choice("button", label, ("Pause", "Resume"))
    except Exception as exc:
        raise user_error(exc, "Pausing") from None
    run = _run_of(request)
    if run is not None and not run.finished:
        run.pause() if label == "Pause" else run.start()
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
    """Stop and free this session's run. Its grid and loss curves stay on the page, the status says
    where it stopped, and its model stays in the other sub-tabs' pickers."""
    session = session_id(request)
    with _runs_lock:
        run = _runs.pop(session, None)
    if run is None:
        return lab_view(request)
    run.stop()
    note = "worker freed; **Start** trains a fresh one"
    if run.steps:
        note += f", and the pickers keep this one as *lab: {run.kind.upper()} (this session)*"
    ended = _status(run, f"stopped at step {run.steps:,}") + f" · {note}"
    _keep(session, run, ended=ended)
    return gr.skip(), gr.skip(), ended, _button(None)


def stop_session_runs(request: gr.Request) -> None:
    """When a browser tab closes, its training run stops and frees its worker, and its lab models
    are forgotten (``demo.unload``)."""
    session = session_id(request)
    with _runs_lock:
        run = _runs.pop(session, None)
        _kept.pop(session, None)
    if run is not None:
        run.stop()


def stop_all() -> None:
    """Stop every session's run and forget every kept model (the app closing; tests, between modules)."""
    with _runs_lock:
        runs = list(_runs.values())
        _runs.clear()
        _kept.clear()
    for run in runs:
        run.stop()


# --- the sub-tab --------------------------------------------------------------------------------


@dataclasses.dataclass
class LabUI:
    kind: gr.Radio
    status: gr.Markdown
    grid: gr.Image
    losses: gr.LinePlot
    timer: gr.Timer  # every 2 s: what other sub-tabs hang their lab-dependent views on


LAB_OFF = (
    "The training lab is off on this public demo (it would hold a worker for minutes): run the app yourself to train."
)


def build_ui() -> LabUI:
    """The lab's controls, grid and loss curves, wired; the status refreshes every 2 s."""
    if runtime.get().settings.public_demo:
        gr.Markdown(f"**{LAB_OFF}**", elem_id="lab-off")
    gr.Markdown(
        "Train a small GAN or VAE on the digits right here, on the CPU. The grid decodes the same 16 "
        "latent points every time, so you watch *them* turn into digits. Once it has trained, the model "
        "is in the other sub-tabs' model picker as *lab: VAE (this session)* (or GAN)."
    )
    with gr.Row():
        kind = gr.Radio(list(LAB_KINDS), value="vae", label="model to train")
        start = gr.Button("Start", variant="primary", elem_id="lab-start")
        pause = gr.Button("Pause", interactive=False, elem_id="lab-pause")
        one_step = gr.Button("Single step", elem_id="lab-step")
        stop = gr.Button("Stop", variant="stop", elem_id="lab-stop")
    status = gr.Markdown("No training run.", elem_id="lab-status")
    with gr.Row():
        grid = gr.Image(label="Samples from fixed latents", type="pil", interactive=False, elem_id="lab-grid")
        # no fixed height: Gradio 6's plots clip a legend below a plot of fixed height
        losses = gr.LinePlot(x="step", y="loss", color="curve", label="Losses", elem_id="lab-losses")
    timer = gr.Timer(2.0)

    outputs = [grid, losses, status, pause]
    light = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
    start.click(lab_start, kind, outputs, **light)
    pause.click(lab_pause, pause, outputs, **light)
    one_step.click(lab_step, kind, outputs, **light)
    stop.click(lab_stop, None, outputs, **light)
    timer.tick(lab_view, None, outputs, **light)
    return LabUI(kind, status, grid, losses, timer)


if __name__ == "__main__":
    server.run_alone(build_ui, "Training lab")
