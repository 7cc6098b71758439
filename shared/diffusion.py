"""Diffusers pieces every user of a pipeline needs: the schedulers on offer, a fresh scheduler per
request, and a per-request pipeline object around the cached, shared components."""

from __future__ import annotations

import copy
import inspect
import threading

import numpy as np

# The schedulers on offer: the name people know → diffusers' class, imported when first used (diffusers
# takes seconds to import, and the page is served before anyone asks for an image).
SCHEDULERS = {
    "DPM++ 2M": "DPMSolverMultistepScheduler",
    "Euler": "EulerDiscreteScheduler",
    "Euler ancestral": "EulerAncestralDiscreteScheduler",
    "DDIM": "DDIMScheduler",
    "DDPM": "DDPMScheduler",
    "LCM": "LCMScheduler",
}
SCHEDULER_NOTES = {
    "LCM": "LCM is made for models distilled to run in 1–8 steps (LCM / turbo); on others it blurs.",
    "DDPM": "DDPM adds fresh noise at every step: it needs many steps (50+) to look clean.",
}


def make_scheduler(name: str | None, config, scheduler_class: type | None = None):
    """A fresh scheduler for one request: schedulers keep state between steps, so they are never shared.

    A config that doesn't say otherwise gets ``clip_sample=False``: DDIM and DDPM default to clipping
    x̂₀ to [-1, 1], which suits pixel-space models and wrecks latent ones (every model here)."""
    if scheduler_class is None:
        import diffusers

        scheduler_class = getattr(diffusers, SCHEDULERS[name])
    extra = {}
    if "clip_sample" not in config and "clip_sample" in inspect.signature(scheduler_class.__init__).parameters:
        extra["clip_sample"] = False
    return scheduler_class.from_config(config, **extra)


def alpha_bar(scheduler, timesteps) -> np.ndarray:
    """ᾱ_t (the share of signal variance left) at each of these timesteps, from the training schedule."""
    table = np.asarray(scheduler.alphas_cumprod, dtype=np.float64)
    t = np.asarray([float(x) for x in timesteps], dtype=np.float64)
    return np.interp(t, np.arange(len(table)), table)


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
    import diffusers

    pipe = copy.copy(base)
    object.__setattr__(pipe, "scheduler", scheduler)
    for name in [n for n in getattr(base, "components", {}) if "tokenizer" in n]:
        object.__setattr__(pipe, name, _thread_copy(getattr(base, name)))
    for name, part in vars(base).items():  # a combined pipeline (prior + decoder) runs sub-pipelines
        if isinstance(part, diffusers.DiffusionPipeline):
            own = (
                scheduler
                if part.scheduler is base.scheduler
                else make_scheduler(None, part.scheduler.config, type(part.scheduler))
            )
            object.__setattr__(pipe, name, request_pipeline(part, own))
    return pipe
