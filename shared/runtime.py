"""The running app's model layer: settings → device, dtype and one cache; tabs ask here for models.

``configure()`` is called once by ``app.py`` (and by tests); everything else reads from it.
"""

from __future__ import annotations

import dataclasses
import threading

import torch

from shared import catalog, compute
from shared import device as device_policy
from shared.cache import CacheKey, ModelCache
from shared.loaders import (
    AttentionModel,
    CausalLM,
    LatentModel,
    TextToImage,
    load_attention_model,
    load_causal_lm,
    load_latent_model,
    load_text_to_image,
)
from shared.settings import Settings


@dataclasses.dataclass(frozen=True)
class Runtime:
    settings: Settings
    device: str
    dtype: torch.dtype
    cache: ModelCache
    concurrency: int  # heavy (model) events running at once


_runtime: Runtime | None = None
_lock = threading.Lock()


def configure(settings: Settings) -> Runtime:
    global _runtime
    device = device_policy.pick_device(settings.device)
    dtype = device_policy.pick_dtype(device)
    budget = int(settings.cache_gb * 2**30) if settings.cache_gb else device_policy.default_budget_bytes(device)
    concurrency = settings.gpu_concurrency or device_policy.default_concurrency(device)
    with _lock:
        if _runtime is not None:
            _runtime.cache.clear()
        _runtime = Runtime(settings, device, dtype, ModelCache(budget), concurrency)
    compute.configure(concurrency, preempt=device == "cpu")  # on a CPU two jobs at once only share its cores
    return _runtime


def get() -> Runtime:
    with _lock:
        if _runtime is None:
            raise RuntimeError("shared.runtime.configure(settings) has not been called")
        return _runtime


def causal_lm(choice: str, *, task: str = "chat", attn_implementation: str | None = None) -> CausalLM:
    """The cached causal LM for a user's model choice (a catalog key; any id/path if allowed)."""
    rt = get()
    spec = catalog.resolve(choice, task, allow_any_model=rt.settings.allow_any_model)
    key = CacheKey(spec.key, rt.device, str(rt.dtype).removeprefix("torch."), attn_implementation or "")
    return rt.cache.get(
        key,
        lambda: load_causal_lm(
            spec,
            device=rt.device,
            dtype=rt.dtype,
            cache_dir=rt.settings.cache_dir,
            attn_implementation=attn_implementation,
        ),
    )


def attention_model(choice: str) -> AttentionModel:
    """The cached eager-attention build of a model (its own entry: the chat's uses SDPA)."""
    rt = get()
    spec = catalog.resolve(choice, ("attention", "chat"), allow_any_model=rt.settings.allow_any_model)
    key = CacheKey(spec.key, rt.device, str(rt.dtype).removeprefix("torch."), "eager-attention")
    return rt.cache.get(
        key, lambda: load_attention_model(spec, device=rt.device, dtype=rt.dtype, cache_dir=rt.settings.cache_dir)
    )


def _cached(choice: str, task: str, loader):
    """The cached model for a choice; the project's own models are small, so fp32 everywhere."""
    rt = get()
    spec = catalog.resolve(choice, task, allow_any_model=rt.settings.allow_any_model)
    dtype = torch.float32 if spec.bundled else rt.dtype
    key = CacheKey(spec.key, rt.device, str(dtype).removeprefix("torch."))
    return rt.cache.get(key, lambda: loader(spec, device=rt.device, dtype=dtype, cache_dir=rt.settings.cache_dir))


def latent_model(choice: str) -> LatentModel:
    """A cached GAN / VAE / AutoencoderKL."""
    return _cached(choice, "latent", load_latent_model)


def text_to_image(choice: str) -> TextToImage:
    """A cached diffusers pipeline."""
    return _cached(choice, "text-to-image", load_text_to_image)


def status_markdown() -> str:
    """The System panel: device, dtype, cache budget, and each loaded model with memory and load time."""
    rt = get()
    lines = [
        f"**Device** {device_policy.describe(rt.device)} · **dtype** {str(rt.dtype).removeprefix('torch.')}"
        f" · **cache** {rt.cache.used_bytes() / 2**20:,.0f} / {rt.cache.budget_bytes / 2**20:,.0f} MiB"
        f" · **heavy jobs at once** {rt.concurrency}",
        "",
    ]
    entries = rt.cache.snapshot()
    loading = rt.cache.loading()
    if not entries and not loading:
        lines.append("No model loaded yet: the first request loads one.")
    else:
        lines += ["| model | device | dtype | memory | load time |", "|---|---|---|---|---|"]
        for key, entry in reversed(entries):
            lines.append(
                f"| {key.model}{' · ' + key.variant if key.variant else ''} | {key.device} | {key.dtype}"
                f" | {entry.nbytes / 2**20:,.0f} MiB | {entry.load_seconds:.1f} s |"
            )
        for key in loading:
            lines.append(f"| {key.model} | {key.device} | {key.dtype} | loading… | |")
    return "\n".join(lines)
