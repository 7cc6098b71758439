"""What a share link holds: the protocol every tab's snapshot follows, and the registry of kinds (each
tab's ``share.py`` registers how its snapshot is checked and shown again; this module knows no tab).

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
import dataclasses
import html
import io
import time
from collections.abc import Callable

from PIL import Image

from shared import catalog
from shared.validation import check_text

MAX_MODEL_CHARS = 300  # a model key or hub id
MAX_SIDE = 2048  # an image in a snapshot
MAX_TOKENS = 4096  # tokens in a chat reply's token view, or in an attention view's text
MAX_ALTERNATIVES = 20  # alternatives per token in the token view
MAX_TEXT = 100_000  # an attention view's text
MAX_NOTE = 2_000  # a status line (chat stats)


# --- checking: the same for the UI and the API ------------------------------------------------


def dict_of(name: str, value: object) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"A shared snapshot's {name} must be an object.")
    return value


def list_of(name: str, value: object, limit: int) -> list:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"A shared snapshot's {name} must be a list.")
    if len(value) > limit:
        raise ValueError(f"A shared snapshot's {name} has {len(value):,} items; the limit is {limit:,}.")
    return value


def model_of(payload: dict) -> tuple[str, str | None]:
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


def images_of(images: dict, allowed) -> dict[str, bytes]:
    """Each image decoded and written again as PNG, under one of the ``allowed`` names."""
    out = {}
    for name, image in dict_of("images", images).items():
        if name not in allowed:
            raise ValueError(
                f"Unknown image {str(name)[:40]!r} in this snapshot; its images are: {', '.join(allowed)}."
            )
        if not isinstance(image, Image.Image):
            image = decode_image(name, image)
        out[name] = _png(name, image)
    return out


# --- the kinds: each tab registers its own ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ShareKind:
    """One tab's side of sharing, registered by the tab's ``share.py`` when it is imported (app.py
    imports every tab's): ``check`` takes an untrusted (payload, images) to what is stored, ``show``
    a stored payload and its pictures to the values of the panel's ``components()``."""

    kind: str  # also the id of its tab
    check: Callable[[dict, dict], tuple[dict, dict[str, bytes]]]
    show: Callable[[dict, dict[str, Image.Image]], list]
    components: Callable[[], list]
    settings_shown: Callable[[dict], dict] | None = None  # what the panel's label lists (default: the settings)


KINDS: dict[str, ShareKind] = {}


def register(kind: ShareKind) -> ShareKind:
    KINDS[kind.kind] = kind
    return kind


def check(kind: object, payload: object, images: object = None) -> tuple[dict, dict[str, bytes]]:
    """Untrusted (kind, payload, images) → the payload to store and its files as PNG bytes, or a
    clear ValueError. ``images`` maps names to PIL images, PNG bytes or data URLs."""
    if kind not in KINDS:
        raise ValueError(f"A share's kind is one of: {', '.join(KINDS)}.")
    payload = dict_of("payload", payload)
    return KINDS[kind].check(payload, dict(images or {}))


def views(kind: str, payload: dict, files: dict[str, bytes]) -> list:
    """The values of a snapshot panel's components (the kind's ``components()``)."""
    return KINDS[kind].show(payload, _pictures(files))


# --- taking a snapshot of a tab's results ------------------------------------------------------


def revision_of(model: object) -> str | None:
    """The catalog's pinned revision of a model (None for the bundled ones and for anything else)."""
    spec = catalog.CATALOG.get(model) if isinstance(model, str) else None
    return spec.revision if spec else None


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
    if KINDS[kind].settings_shown is not None:
        shown = KINDS[kind].settings_shown(payload)
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


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
