"""The running app's model layer: settings → device, dtype and one cache; tabs ask here for models.

``configure()`` is called once by ``app.py`` (and by tests); everything else reads from it.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import torch

from shared import catalog, compute, engines, llama_server, loaders, zerogpu
from shared import device as device_policy
from shared.cache import CacheKey, ModelCache
from shared.catalog import ModelSpec
from shared.loaders import (
    AttentionModel,
    CausalLM,
    Clip,
    LatentModel,
    ModelLoadError,
    TextToImage,
    load_attention_model,
    load_causal_lm,
    load_clip,
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
    chat_engine: str = "transformers"  # what runs the bundled chat model by default ("auto" resolved)


_runtime: Runtime | None = None
_lock = threading.Lock()


NO_EVICTION = 2**62  # ZeroGPU: the cache reads an emulated device, and evicting there frees nothing


def configure(settings: Settings) -> Runtime:
    global _runtime, _gpu_models_loaded
    zerogpu.configure(settings.zero_gpu)
    _gpu_models_loaded = False
    device = device_policy.pick_device(settings.device)
    dtype = device_policy.pick_dtype(device)
    budget = int(settings.cache_gb * 2**30) if settings.cache_gb else device_policy.default_budget_bytes(device)
    if settings.zero_gpu:  # every GPU model loads at startup (preload_gpu_models) and stays
        budget = NO_EVICTION
    concurrency = settings.gpu_concurrency or device_policy.default_concurrency(device)
    chat_engine = settings.chat_engine
    if chat_engine == "auto":
        chat_engine = "llama.cpp" if llama_server.find_binary(settings.llama_server) else "transformers"
    catalog.set_operator_models(operator_models(settings))
    with _lock:
        if _runtime is not None:
            _runtime.cache.clear()
        _runtime = Runtime(settings, device, dtype, ModelCache(budget), concurrency, chat_engine)
    # On a CPU two jobs at once only share its cores.
    compute.configure(concurrency, preempt=device == "cpu", allow_any_model=settings.allow_any_model)
    return _runtime


def operator_models(settings: Settings) -> list[ModelSpec]:
    """The chat models the operator's settings add: GGUFs for llama.cpp, an OpenAI-compatible server's models."""
    specs = [
        ModelSpec.unlisted(
            f"{path.stem}-llama.cpp", "chat", str(path), f"{path.name}, served by llama.cpp", engine="llama.cpp"
        )
        for path in settings.gguf
    ]
    host = settings.openai_url.split("//", 1)[-1].split("/", 1)[0]
    specs += [
        ModelSpec.unlisted(f"{name}@server", "chat", f"openai:{name}", f"{name} on {host}", engine="openai")
        for name in settings.openai_models
    ]
    return specs


def device_for(spec: ModelSpec) -> str:
    """Where a model runs: the runtime's device, except the tiny bundled models on ZeroGPU (the CPU:
    they cost visitors no GPU quota)."""
    rt = get()
    return "cpu" if rt.settings.zero_gpu and spec.bundled and zerogpu.BUNDLED_ON_CPU else rt.device


def dtype_for(spec: ModelSpec) -> torch.dtype:
    """fp32 for the project's own small models and on the CPU; the device policy's dtype otherwise."""
    rt = get()
    return torch.float32 if spec.bundled or device_for(spec) == "cpu" else rt.dtype


def _lm_placement(spec: ModelSpec) -> tuple[str, torch.dtype]:
    """A language model's device and dtype (the runtime's, unless ZeroGPU keeps it on the CPU)."""
    rt = get()
    device = device_for(spec)
    return device, rt.dtype if device == rt.device else torch.float32


GPU_TASKS = {
    "chat": "causal_lm",
    "attention": "attention_model",
    "text-to-image": "text_to_image",
    "latent": "latent_model",
}


_gpu_models_loaded = False  # ZeroGPU: after startup no GPU model loads (a worker thread can't place it there)


def _check_zero_gpu(spec: ModelSpec, key: CacheKey) -> None:
    rt = get()
    if _gpu_models_loaded and zerogpu.wants_gpu(spec) and key not in dict(rt.cache.snapshot()):
        raise ModelLoadError(
            f"{spec.key} isn't loaded on this ZeroGPU Space: only the models it loads at startup (the "
            f"{rt.settings.models!r} preset's) and the bundled ones run here."
        )


def preload_gpu_models(models: list[tuple[str, str]] | None = None) -> list[str]:
    """ZeroGPU: load the preset's GPU models (or ``models``: (tab's task, key)) now, on the main thread:
    spaces packs what is on ``cuda`` at startup and moves it into each worker; a load on another thread,
    or later, fails there. The attention tab gets its own (eager) build."""
    rt = get()
    loaded = []
    for task, key in models or catalog.preset_models(rt.settings.models):
        spec = catalog.resolve(key, catalog.TASKS)
        if task in GPU_TASKS and zerogpu.wants_gpu(spec):
            globals()[GPU_TASKS[task]](spec.key)
            loaded.append(f"{spec.key} ({task})")
    global _gpu_models_loaded
    _gpu_models_loaded = True
    return loaded


def default_model(task: str) -> str:
    """The preset's model for a tab; the bundled chat model runs on llama.cpp when that engine is chosen."""
    rt = get()
    key = catalog.default_model(task, rt.settings.models)
    llama = f"{key}-llama.cpp"
    return llama if task == "chat" and rt.chat_engine == "llama.cpp" and llama in catalog.CATALOG else key


def unavailable(spec: ModelSpec) -> str | None:
    """Why a model can't be used now (None if it can), for the pickers."""
    if spec.engine == "llama.cpp":
        rt = get()
        if llama_server.find_binary(rt.settings.llama_server) is None:
            return "llama.cpp isn't built (make llama-server)"
        if not spec.bundled:
            return None if Path(spec.source).is_file() else "no such GGUF file"
    if spec.engine == "openai":
        return None  # its health is on the System panel; a request to it says what is wrong
    if _gpu_models_loaded and zerogpu.wants_gpu(spec) and spec.key not in {k.model for k, _ in get().cache.snapshot()}:
        return "ZeroGPU: only the models loaded at startup run here"
    return loaders.unavailable(spec)


def endpoint(spec: ModelSpec) -> engines.Endpoint:
    """The server a llama.cpp or OpenAI-compatible catalog entry streams from (llama-server started if needed)."""
    rt = get()
    if spec.engine == "openai":
        settings = rt.settings
        return engines.Endpoint(
            url=settings.openai_url,
            model=spec.source.removeprefix("openai:"),
            flavor=settings.openai_flavor,
            api_key=settings.openai_api_key,
            context_window=settings.openai_context,
        )
    if spec.engine != "llama.cpp":
        raise ValueError(f"{spec.key} runs in this app (transformers), not on a server.")
    binary = llama_server.find_binary(rt.settings.llama_server)
    if binary is None:
        raise ModelLoadError(
            f"{spec.key} needs llama.cpp's server, which isn't built here: run `make llama-server` once (about 20 min)."
        )
    from shared.loaders import smollm2_gguf_path

    gguf = smollm2_gguf_path() if spec.bundled else Path(spec.source)
    server = llama_server.server_for(binary, gguf, spec.key, context=rt.settings.llama_context)
    try:
        return server.ensure()
    except RuntimeError as exc:
        raise ModelLoadError(f"llama.cpp's server could not start for {spec.key}: {exc}") from None


def capped(value: int, kind: str) -> int:
    """A per-request cap as this app runs: lowered on a public demo (settings.PUBLIC_CAPS); ``value``
    itself when no runtime is configured (pure functions called on their own)."""
    with _lock:
        rt = _runtime
    return rt.settings.capped(value, kind) if rt is not None else value


def get() -> Runtime:
    with _lock:
        if _runtime is None:
            raise RuntimeError("shared.runtime.configure(settings) has not been called")
        return _runtime


def causal_lm(choice: str, *, task: str = "chat", attn_implementation: str | None = None) -> CausalLM:
    """The cached causal LM for a user's model choice (a catalog key; any id/path if allowed)."""
    rt = get()
    spec = catalog.resolve(choice, task, allow_any_model=rt.settings.allow_any_model)
    spec = _transformers_weights(spec)
    device, dtype = _lm_placement(spec)
    key = CacheKey(spec.key, device, str(dtype).removeprefix("torch."), attn_implementation or "")
    _check_zero_gpu(spec, key)
    return rt.cache.get(
        key,
        lambda: load_causal_lm(
            spec,
            device=device,
            dtype=dtype,
            cache_dir=rt.settings.cache_dir,
            attn_implementation=attn_implementation,
        ),
    )


def _transformers_weights(spec: ModelSpec) -> ModelSpec:
    """The entry whose weights transformers loads: a bundled model's llama.cpp entry shares them;
    a model on a server has none here."""
    if spec.engine == "openai" or (spec.engine == "llama.cpp" and not spec.bundled):
        raise ValueError(f"{spec.key} runs on a server ({spec.engine}); its weights aren't loaded in this app.")
    return catalog.CATALOG[spec.weights] if spec.weights != spec.key else spec


def attention_model(choice: str) -> AttentionModel:
    """The cached eager-attention build of a model (its own entry: the chat's uses SDPA)."""
    rt = get()
    spec = _transformers_weights(
        catalog.resolve(choice, ("attention", "chat"), allow_any_model=rt.settings.allow_any_model)
    )
    device, dtype = _lm_placement(spec)
    key = CacheKey(spec.key, device, str(dtype).removeprefix("torch."), "eager-attention")
    _check_zero_gpu(spec, key)
    return rt.cache.get(
        key, lambda: load_attention_model(spec, device=device, dtype=dtype, cache_dir=rt.settings.cache_dir)
    )


def _cached(choice: str, task: str, loader):
    """The cached model for a choice; the project's own models are small, so fp32 everywhere."""
    rt = get()
    spec = catalog.resolve(choice, task, allow_any_model=rt.settings.allow_any_model)
    device, dtype = device_for(spec), dtype_for(spec)
    key = CacheKey(spec.key, device, str(dtype).removeprefix("torch."))
    _check_zero_gpu(spec, key)
    return rt.cache.get(key, lambda: loader(spec, device=device, dtype=dtype, cache_dir=rt.settings.cache_dir))


def latent_model(choice: str) -> LatentModel:
    """A cached GAN / VAE / AutoencoderKL."""
    return _cached(choice, "latent", load_latent_model)


def clip_model(choice: str) -> Clip:
    """A cached CLIP model (text and image encoders)."""
    return _cached(choice, "clip", load_clip)


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
    lines += engine_rows(rt)
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


def engine_rows(rt: Runtime) -> list[str]:
    """The System panel's engines: each server's URL (never its key), health and model."""
    rows = [f"**Chat engine** {rt.chat_engine} for the bundled model", ""]
    servers = [
        (s.endpoint, f"llama.cpp (managed, pid {s.proc.pid}, restarts {s.restarts})")
        for s in llama_server.servers()
        if s.running()
    ]
    if rt.settings.openai_url:
        for spec in catalog.OPERATOR.values():
            if spec.engine == "openai":
                servers.append((endpoint(spec), engines.FLAVORS[rt.settings.openai_flavor].label))
    if not servers:
        return rows
    rows += ["| engine | URL | model | health |", "|---|---|---|---|"]
    rows += [f"| {kind} | {e.url} | {e.model} | {engines.health(e)} |" for e, kind in servers]
    return [*rows, ""]
