"""What a share link holds, for each tab: how a snapshot is taken, checked and shown again.

A snapshot is plain JSON (the recipe and the outputs that are text or numbers) plus PNG images.
The same checker takes snapshots from the tabs' Share buttons and from anyone calling the ``/share``
API, so nothing reaches the store, or a viewer's screen, that the app would not show itself:

- every string is bounded and shown as text (escaped, or in a component that sanitizes HTML);
- every number is finite and in range, every matrix the right shape;
- every image is decoded and written again as PNG by the server (so a file is only ever an image,
  and its pixels are exactly the ones decoded).

The views use the tabs' own renderers (token view, heatmaps), so a viewer sees what the sharer saw.
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import json
import time

import numpy as np
from PIL import Image

from demos.attention import views as attention_views
from demos.chat import view as chat_view
from demos.chat.core import LIMITS, MAX_MESSAGE_CHARS, MAX_MODEL_CHARS, normalize_history
from demos.chat.view import is_failure_note
from demos.text_to_image.recipe import MAX_IMAGES, Recipe, check_recipe, png_bytes
from demos.text_to_image.views import DOWNLOAD_PX
from shared import catalog
from shared.engines import TokenInfo
from shared.images import enlarge
from shared.validation import check_number, check_text

MAX_SIDE = 2048  # an image in a snapshot
MAX_TOKENS = 4096  # tokens in a chat reply's token view, or in an attention view's text
MAX_ALTERNATIVES = 20  # alternatives per token in the token view
MAX_TEXT = 100_000  # an attention view's text
MAX_NOTE = 2_000  # a status line (chat stats)
LATENT_VIEWS = {  # image name → caption, in the order a viewer sees them
    "samples": "Samples",
    "gan": "GAN",
    "vae": "VAE",
    "lerp": "Interpolation: lerp (straight line)",
    "slerp": "Interpolation: slerp (great circle)",
    "traversal": "Traversal (rows: dimensions; columns: −range … +range)",
}
LATENT_SETTINGS = {  # name → (low, high, integer?)
    "seed": (0, 2**32 - 1, True),
    "count": (1, 64, True),
    "truncation": (0.0, 10.0, False),
    "temperature": (0.0, 10.0, False),
    "seed_a": (0, 2**32 - 1, True),
    "seed_b": (0, 2**32 - 1, True),
    "walk_steps": (2, 16, True),
    "span": (0.5, 5.0, False),
    "traversal_steps": (3, 11, True),
}


# --- checking: the same for the UI and the API ------------------------------------------------


def _dict(name: str, value: object) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"A shared snapshot's {name} must be an object.")
    return value


def _list(name: str, value: object, limit: int) -> list:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"A shared snapshot's {name} must be a list.")
    if len(value) > limit:
        raise ValueError(f"A shared snapshot's {name} has {len(value):,} items; the limit is {limit:,}.")
    return value


def _model(payload: dict) -> tuple[str, str | None]:
    model = check_text("model", payload.get("model"), MAX_MODEL_CHARS, required=True)
    revision = payload.get("revision")
    revision = None if revision is None else check_text("revision", revision, 100)
    return model, revision


def _png(name: str, image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decode_image(name: str, data: object) -> Image.Image:
    """An image given as PNG bytes or a ``data:image/png;base64,…`` URL, decoded and checked."""
    if isinstance(data, str):
        head, _, body = data.partition(",")
        if not head.startswith("data:image/") or ";base64" not in head:
            raise ValueError(f"Image {name!r} must be a data URL: data:image/png;base64,…")
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"Image {name!r} is not valid base64.") from None
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"Image {name!r} must be an image.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width > MAX_SIDE or height > MAX_SIDE:
                raise ValueError(f"Image {name!r} is {width}×{height}; a shared image is at most {MAX_SIDE} px a side.")
            image = probe.convert("RGBA" if "A" in probe.getbands() else "RGB")
    except ValueError:
        raise
    except Exception:
        raise ValueError(f"Image {name!r} can't be read as an image.") from None
    return image


def _images(images: dict, allowed) -> dict[str, bytes]:
    """Each image decoded and written again as PNG, under one of the ``allowed`` names."""
    out = {}
    for name, image in _dict("images", images).items():
        if name not in allowed:
            raise ValueError(
                f"Unknown image {str(name)[:40]!r} in this snapshot; its images are: {', '.join(allowed)}."
            )
        if not isinstance(image, Image.Image):
            image = decode_image(name, image)
        out[name] = _png(name, image)
    return out


def _chat(payload: dict, images: dict) -> tuple[dict, dict]:
    if images:
        raise ValueError("A shared chat has no images.")
    model, revision = _model(payload)
    messages = normalize_history(payload.get("messages"))
    if not messages:
        raise ValueError("There is no conversation to share yet.")
    settings = _dict("settings", payload.get("settings") or {})
    checked = {}
    for name, (low, high, integer) in LIMITS.items():
        if name in settings:
            checked[name] = check_number(name, settings[name], low, high, integer=integer)
    tokens = []
    for item in _list("tokens", payload.get("tokens") or [], MAX_TOKENS):
        item = _dict("token", item)
        top = _list("alternatives", item.get("top") or [], MAX_ALTERNATIVES)
        tokens.append({
            "token": check_text("token", item.get("token"), 200),
            "prob": check_number("token probability", item.get("prob"), 0.0, 1.0),
            "top": [[check_text("token", t, 200), check_number("probability", p, 0.0, 1.0)]
                    for t, p in (_list("alternative", pair, 2) for pair in top)],
        })  # fmt: skip
    return {
        "model": model,
        "revision": revision,
        "system_prompt": check_text("system prompt", payload.get("system_prompt"), MAX_MESSAGE_CHARS),
        "mode": check_text("mode", payload.get("mode") or "direct", 40),
        "settings": checked,
        "messages": messages,
        "tokens": tokens,
        "probs_note": check_text("probabilities note", payload.get("probs_note"), MAX_NOTE),
        "stats": check_text("stats", payload.get("stats"), MAX_NOTE),
    }, {}


def _text_to_image(payload: dict, images: dict) -> tuple[dict, dict]:
    raw = _dict("recipe", payload.get("recipe"))
    model = check_text("model", raw.get("model"), MAX_MODEL_CHARS, required=True)
    fields = ("prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale", "scheduler", "width",
              "height", "num_images_per_prompt")  # fmt: skip
    revision = raw.get("revision")
    recipe = check_recipe(
        model=model,
        revision=None if revision is None else check_text("revision", revision, 100),
        max_cost=None,
        **{name: raw.get(name) for name in fields},
    )
    names = [str(i) for i in range(MAX_IMAGES)]
    if not images:
        raise ValueError("There are no images to share yet: press Generate first.")
    pictures = {name: img if isinstance(img, Image.Image) else decode_image(name, img) for name, img in images.items()}
    if set(pictures) - set(names):
        raise ValueError(f"A shared image's name is its index, 0 to {MAX_IMAGES - 1}.")
    files = {name: png_bytes(pictures[name], recipe, int(name)) for name in names if name in pictures}
    return {"recipe": recipe_dict(recipe)}, files


def recipe_dict(recipe: Recipe) -> dict:
    return {name: getattr(recipe, name) for name in Recipe.__dataclass_fields__}


def _latent(payload: dict, images: dict) -> tuple[dict, dict]:
    model, revision = _model(payload)
    settings = _dict("settings", payload.get("settings") or {})
    checked = {}
    for name, (low, high, integer) in LATENT_SETTINGS.items():
        if settings.get(name) is not None:
            checked[name] = check_number(name, settings[name], low, high, integer=integer)
    if settings.get("dims") is not None:
        checked["dims"] = check_text("dimensions", settings["dims"], 200)
    files = _images(images, LATENT_VIEWS)
    if not files:
        raise ValueError("There is nothing to share yet: sample, interpolate or traverse first.")
    return {"model": model, "revision": revision, "settings": checked}, files


def _matrix(name: str, value: object, n: int) -> list[list[float]]:
    rows = _list(name, value, n)
    if len(rows) != n or any(not isinstance(row, (list, tuple)) or len(row) != n for row in rows):
        raise ValueError(f"A shared attention view's {name} must be {n}×{n}, one row and column per token.")
    try:
        matrix = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"A shared attention view's {name} must hold numbers.") from None
    if not np.isfinite(matrix).all() or matrix.min(initial=0) < 0 or matrix.max(initial=0) > 1:
        raise ValueError(f"A shared attention view's {name} holds weights from 0 to 1.")
    return matrix.tolist()


def _attention(payload: dict, images: dict) -> tuple[dict, dict]:
    if images:
        raise ValueError("A shared attention view has no images.")
    model, revision = _model(payload)
    tokens = [check_text("token", t, 200) for t in _list("tokens", payload.get("tokens"), MAX_TOKENS)]
    n = len(tokens)
    if n == 0:
        raise ValueError("There is no attention view to share yet: press Show attention first.")
    layer = check_number("layer", payload.get("layer"), 0, 10_000, integer=True)
    head = check_number("head", payload.get("head"), 0, 10_000, integer=True)
    token = check_number("token", payload.get("token"), 0, n - 1, integer=True)
    return {
        "model": model,
        "revision": revision,
        "text": check_text("text", payload.get("text"), MAX_TEXT),
        "summary": check_text("summary", payload.get("summary"), MAX_NOTE),
        "layer": int(layer),
        "head": int(head),
        "token": int(token),
        "tokens": tokens,
        "heat": _matrix("heat", payload.get("heat"), n),
        "mean": _matrix("mean", payload.get("mean"), n),
    }, {}


CHECKS = {"chat": _chat, "text-to-image": _text_to_image, "latent": _latent, "attention": _attention}


def check(kind: object, payload: object, images: object = None) -> tuple[dict, dict[str, bytes]]:
    """Untrusted (kind, payload, images) → the payload to store and its files as PNG bytes, or a
    clear ValueError. ``images`` maps names to PIL images, PNG bytes or data URLs."""
    if kind not in CHECKS:
        raise ValueError(f"A share's kind is one of: {', '.join(CHECKS)}.")
    payload = _dict("payload", payload)
    return CHECKS[kind](payload, dict(images or {}))


# --- taking a snapshot of a tab's results ------------------------------------------------------


def revision_of(model: object) -> str | None:
    """The catalog's pinned revision of a model (None for the bundled ones and for anything else)."""
    spec = catalog.CATALOG.get(model) if isinstance(model, str) else None
    return spec.revision if spec else None


def of_chat(model, history, system_prompt, settings: dict, mode, stats, last: dict | None) -> dict:
    """The chat tab's snapshot: the conversation as shown, and the last reply's token view."""
    last = last if isinstance(last, dict) else {}
    messages = normalize_history([m for m in (history or []) if not is_failure_note(m)])
    return {
        "model": model,
        "revision": revision_of(model),
        "system_prompt": system_prompt,
        "mode": mode,
        "settings": settings,
        "messages": messages,
        "tokens": last.get("tokens") or [],
        "probs_note": last.get("probs_note") or "",
        "stats": stats or "",
    }


def of_attention(result, model: str, text: str, layer: int, head: int, token: int, summary: str) -> dict:
    """The attention tab's snapshot: the selected head's heatmap, the layer's mean, the tokens."""
    return {
        "model": model,
        "revision": revision_of(model),
        "text": text,
        "summary": summary,
        "layer": layer,
        "head": head,
        "token": token,
        "tokens": list(result.tokens),
        "heat": result.attentions[layer, head].astype(np.float64).tolist(),
        "mean": result.attentions[layer].astype(np.float32).mean(axis=0).astype(np.float64).tolist(),
    }


# --- showing one ------------------------------------------------------------------------------


def _code(value: object) -> str:
    """A value as inline code in Markdown, escaped: shown as text whatever it holds."""
    text = str(value).replace("`", "ʼ").replace("\n", " ")
    return f"`{html.escape(text[:200])}`"


def about_markdown(kind: str, payload: dict, created_at: float, expires_at: float | None) -> str:
    """The label over a shared snapshot: shared, read-only, when, which model and revision, which settings."""
    model = payload.get("model") or payload.get("recipe", {}).get("model")
    revision = payload.get("revision") or payload.get("recipe", {}).get("revision")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(created_at))
    lines = [f"**Shared snapshot (read-only)**, made {when} with {_code(model)}"
             + (f" at revision {_code(revision)}" if revision else "") + "."]  # fmt: skip
    settings = payload.get("settings") or payload.get("recipe") or {}
    shown = {k: v for k, v in settings.items() if k not in ("model", "revision", "prompt", "negative_prompt")}
    if kind == "attention":
        shown = {"layer": payload["layer"], "head": payload["head"], "token": payload["token"]}
    if shown:
        lines.append("Settings: " + ", ".join(f"{k} {_code(v)}" for k, v in shown.items()) + ".")
    if expires_at is not None:
        lines.append(f"The link expires on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(expires_at))}.")
    lines.append("**Open in the tab** loads these settings into the live controls.")
    return "  \n".join(lines)


def as_text(markdown: str) -> str:
    """A shared message for the Chatbot: its Markdown kept, but HTML shown as text and no image loaded
    (a link's author could otherwise make every viewer's browser fetch an address of theirs)."""
    return html.escape(markdown, quote=False).replace("![", "!\\[")


def _pictures(files: dict[str, bytes]) -> dict[str, Image.Image]:
    out = {}
    for name, data in files.items():
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            out[name] = image.copy()
    return out


def views(kind: str, payload: dict, files: dict[str, bytes]) -> list:
    """The values of a snapshot panel's components (see sharing.VIEWS for which they are)."""
    pictures = _pictures(files)
    if kind == "chat":
        tokens = [TokenInfo(-1, t["token"], t["prob"], [tuple(p) for p in t["top"]]) for t in payload["tokens"]]
        shown = chat_view.token_view_html(tokens, payload["probs_note"]) if tokens else chat_view.TOKEN_VIEW_PLACEHOLDER
        messages = [{"role": m["role"], "content": as_text(m["content"])} for m in payload["messages"]]
        return [messages, shown, html.escape(payload["stats"]) or " "]
    if kind == "text-to-image":
        seed = payload["recipe"]["seed"]  # as the tab's gallery shows them: small ones enlarged, whole pixels
        images = [
            (enlarge(pictures[str(i)], DOWNLOAD_PX), f"seed {seed + i}")
            for i in range(MAX_IMAGES)
            if str(i) in pictures
        ]
        return [images, json.dumps(payload["recipe"], indent=2, ensure_ascii=False)]
    if kind == "latent":
        return [[(pictures[name], caption) for name, caption in LATENT_VIEWS.items() if name in pictures]]
    tokens, layer, head, token = payload["tokens"], payload["layer"], payload["head"], payload["token"]
    heat = np.asarray(payload["heat"], dtype=np.float16)
    mean = np.asarray(payload["mean"], dtype=np.float32)
    return [
        attention_views.heatmap_svg(heat, tokens, f"Layer {layer}, head {head}"),
        attention_views.shaded_text_html(heat[token], tokens, token),
        attention_views.heatmap_svg(mean, tokens, f"Layer {layer}: mean over heads"),
    ]


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
