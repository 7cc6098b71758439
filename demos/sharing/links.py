"""Share links for every tab: Share stores a snapshot of what the tab shows, and ``…/?s=<id>`` opens it.

Each tab gets two things from here, built by app.py around the tab's own UI:

- a **snapshot panel** at its top, hidden until a link opens: the snapshot read-only, labelled
  (when, which model and revision, which settings), with "Open in the tab" (the settings into the
  live controls; for chat, the conversation too, to continue from), "Delete" and "Close";
- a **share row** at its bottom: Share, the link with a copy button, and Delete.

Opening a link runs no model: the panel shows what was stored. Only "Open in the tab" does, where
the output is cheap and deterministic (attention, latent samples); an image is made again only
when the viewer presses Generate. The delete token of each link stays in the sharer's browser
(``gr.BrowserState``). The store is ``shared/share_store.py``; what a snapshot holds, and the
checks every one passes (from a button or from the API), are in ``demos/sharing/snapshots.py``.

The API, for scripts (``gradio_client``):

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    made = client.predict("attention", {...}, api_name="/share")    # {"id", "link", "delete_token", …}
    snap = client.predict(made["link"], api_name="/shared")         # {"kind", "payload", "images", …}
    client.predict(made["link"], made["delete_token"], api_name="/unshare")
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import secrets
import threading
import time
from pathlib import Path

import gradio as gr
from gradio import route_utils

from demos.glue import user_error
from demos.server import visitor
from demos.sharing import snapshots
from shared import catalog, runtime
from shared.share_store import MALFORMED, NotOwner, ShareNotFound, ShareStore, StoreFull, default_folder

STORAGE_KEY = "genai-playground-share-tokens"
MAX_TOKENS_KEPT = 200  # delete tokens one browser keeps (the oldest are forgotten)
LINK_ID = re.compile(r"(?:[?&]s=)?([A-Za-z0-9_-]{22})")
OFF = "Sharing is turned off on this server."
NO_VOLUME = (
    "This Space has no persistent storage: links made here stop working when it restarts "
    "(attach storage, mounted at /data, to keep them)."
)


# --- the store, the rate limit, the links -----------------------------------------------------


_stores: dict[Path, ShareStore] = {}
_stores_lock = threading.Lock()


def store() -> ShareStore:
    """The store the settings name (one per folder, opened once)."""
    settings = runtime.get().settings
    folder = Path(settings.share_dir or default_folder()).expanduser()
    with _stores_lock:
        if folder not in _stores:
            ttl = settings.share_days * 86400 if settings.share_days else None
            _stores[folder] = ShareStore(
                folder,
                max_snapshot_bytes=int(settings.share_snapshot_mb * 2**20),
                max_total_bytes=int(settings.share_store_mb * 2**20),
                default_ttl_s=ttl,
            )
        return _stores[folder]


def storage_notice(folder: Path, env=os.environ) -> str:
    """What a sharer should know about where links live: on a Space, anywhere but its /data volume is
    wiped when the Space restarts."""
    if env.get("SPACE_ID") and Path("/data") not in (folder, *folder.parents):
        return NO_VOLUME
    return ""


def browser_secret() -> str:
    """The key the browser's token list is encrypted with: kept beside the store, so it outlives a restart."""
    path = store().folder / "browser-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        secret = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret)
        return secret
    except OSError:
        return secrets.token_urlsafe(24)


class RateLimit:
    """At most ``limit`` events per visitor in any ``window_s`` (0 = no limit)."""

    def __init__(self, limit: int, window_s: float = 3600, max_visitors: int = 10_000) -> None:
        self.limit, self.window_s, self.max_visitors = limit, window_s, max_visitors
        self._seen: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._lock = threading.Lock()

    def allow(self, who: str, now: float | None = None) -> bool:
        if not self.limit:
            return True
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._seen.pop(who, None) or collections.deque()
            while times and times[0] <= now - self.window_s:
                times.popleft()
            allowed = len(times) < self.limit
            if allowed:
                times.append(now)
            self._seen[who] = times
            while len(self._seen) > self.max_visitors:
                self._seen.popitem(last=False)
            return allowed


_limits: dict[int, RateLimit] = {}


def _rate_limit() -> RateLimit:
    limit = runtime.get().settings.shares_per_hour
    return _limits.setdefault(limit, RateLimit(limit))


def app_url(request: gr.Request | None) -> str:
    """The app's public address, as the browser (or API client) reached it, behind a proxy too."""
    inner = getattr(request, "request", None)
    if inner is None:
        return ""
    path = inner.url.path
    route = path[path.index("/gradio_api") :] if "/gradio_api" in path else path
    return route_utils.get_root_url(inner, route, runtime.get().settings.root_path or None)


def link_id(link: object) -> str:
    """The id in a link (``…/?s=<id>``) or an id alone; ShareNotFound(MALFORMED) for anything else."""
    if isinstance(link, str) and len(link) <= 2000:
        text = link.strip()
        match = LINK_ID.fullmatch(text) or (
            re.search(r"[?&]s=([A-Za-z0-9_-]{22})(?:&|#|$)", text) if "?" in text else None
        )
        if match:
            return match.group(1)
    raise ShareNotFound(MALFORMED)


def publish(kind: str, payload: dict, images: dict, request: gr.Request | None) -> dict:
    """Check and store a snapshot; the link and the delete token. ValueError with a message if refused."""
    settings = runtime.get().settings
    if not settings.share_links:
        raise ValueError(OFF)
    payload, files = snapshots.check(kind, payload, images)
    if not _rate_limit().allow(visitor(request, trust_forwarded_for=settings.trust_forwarded_for)):
        raise ValueError(
            f"You have made {settings.shares_per_hour} share links in the last hour, this server's limit. "
            "Try again later."
        )
    try:
        made = store().put(kind, payload, files)
    except StoreFull as exc:
        raise ValueError(str(exc)) from None
    link = f"{app_url(request)}/?s={made.id}"
    return {"id": made.id, "link": link, "delete_token": made.delete_token, "expires_at": made.expires_at}


def remember(tokens: object, made: dict) -> dict:
    """The browser's {id: delete token}, with the new link's added (the oldest forgotten past the cap)."""
    kept = dict(tokens) if isinstance(tokens, dict) else {}
    kept[made["id"]] = made["delete_token"]
    return dict(list(kept.items())[-MAX_TOKENS_KEPT:])


def unpublish(link: object, delete_token: object) -> str:
    share_id = link_id(link)
    store().delete(share_id, delete_token if isinstance(delete_token, str) else "")
    return "Deleted: the link now says the snapshot was removed."


def made_message(made: dict) -> str:
    notice = storage_notice(store().folder)
    expiry = (
        f" It expires on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(made['expires_at']))}."
        if made["expires_at"]
        else ""
    )
    return f"Link made: anyone with it sees this snapshot, read-only.{expiry}" + (f" ⚠️ {notice}" if notice else "")


# --- the API ---------------------------------------------------------------------------------


def share(kind: str, payload: dict, request: gr.Request) -> dict:
    """Store a snapshot (``kind``: chat, text-to-image, latent or attention; ``payload`` as the
    ``/shared`` of a link gives it back, images as ``{"images": {name: "data:image/png;base64,…"}}``)
    and get its link and the delete token (keep it: only it can delete the link)."""
    try:
        payload = dict(payload) if isinstance(payload, dict) else payload
        images = payload.pop("images", None) if isinstance(payload, dict) else None
        return publish(kind, payload, images or {}, request)
    except Exception as exc:
        raise user_error(exc, "Sharing") from None


def shared(link: str) -> dict:
    """A shared snapshot by its link or id: kind, payload, images (data URLs), when it was made."""
    try:
        snap = store().get(link_id(link))
    except ShareNotFound as exc:
        raise gr.Error(str(exc)) from None
    except Exception as exc:
        raise user_error(exc, "Opening the link") from None
    return {
        "kind": snap["kind"],
        "payload": snap["payload"],
        "images": {name: snapshots.data_url(data) for name, data in snap["files"].items()},
        "created_at": snap["created_at"],
        "expires_at": snap["expires_at"],
    }


def unshare(link: str, delete_token: str) -> str:
    """Delete a shared snapshot, with the delete token /share gave."""
    try:
        return unpublish(link, delete_token)
    except (ShareNotFound, NotOwner) as exc:
        raise gr.Error(str(exc)) from None
    except Exception as exc:
        raise user_error(exc, "Deleting the link") from None


def api() -> None:
    for fn, name in ((share, "share"), (shared, "shared"), (unshare, "unshare")):
        gr.api(fn, api_name=name, concurrency_limit=4, concurrency_id="share")


# --- the UI: a share row and a snapshot panel per tab ------------------------------------------


@dataclasses.dataclass
class ShareRow:
    kind: str
    button: gr.Button
    link: gr.Textbox
    delete: gr.Button
    status: gr.Markdown


@dataclasses.dataclass
class Panel:
    kind: str
    group: gr.Group
    about: gr.Markdown
    views: list
    snapshot: gr.State  # {"id", "kind", "payload"} of the opened link, for Open in the tab and Delete
    open_in_tab: gr.Button
    delete: gr.Button
    close: gr.Button
    status: gr.Markdown

    @property
    def outputs(self) -> list:
        """What opening a link fills: the group (shown), the label, the views, the snapshot."""
        return [self.group, self.about, *self.views, self.snapshot]


def share_row(kind: str) -> ShareRow:
    on = runtime.get().settings.share_links
    with gr.Row(visible=on, elem_id=f"{kind}-share-row", equal_height=True):
        button = gr.Button("Share", size="sm", scale=0, min_width=110, elem_id=f"{kind}-share")
        link = gr.Textbox(
            label="Share link",
            interactive=False,
            buttons=["copy"],
            scale=4,
            elem_id=f"{kind}-share-link",
            placeholder="Share makes a read-only link to what this tab shows",
            info=(storage_notice(store().folder) or None) if on else None,
        )
        delete = gr.Button("Delete link", size="sm", scale=0, min_width=110, visible=False, elem_id=f"{kind}-unshare")
    status = gr.Markdown(elem_id=f"{kind}-share-status")
    return ShareRow(kind, button, link, delete, status)


def panel(kind: str) -> Panel:
    with gr.Group(visible=False, elem_id=f"shared-{kind}") as group:
        about = gr.Markdown(elem_id=f"shared-{kind}-about")
        views = snapshots.KINDS[kind].components()
        with gr.Row():
            open_in_tab = gr.Button("Open in the tab", variant="primary", size="sm", elem_id=f"shared-{kind}-open")
            delete = gr.Button("Delete this link", size="sm", elem_id=f"shared-{kind}-delete")
            close = gr.Button("Close", size="sm", elem_id=f"shared-{kind}-close")
        status = gr.Markdown(elem_id=f"shared-{kind}-status")
    return Panel(kind, group, about, views, gr.State(None), open_in_tab, delete, close, status)


def tokens_state() -> gr.BrowserState:
    """The sharer's delete tokens, {id: token}, in their browser's storage (encrypted)."""
    secret = browser_secret() if runtime.get().settings.share_links else None
    return gr.BrowserState({}, storage_key=STORAGE_KEY, secret=secret)


def wire_row(row: ShareRow, snapshot_fn, inputs: list, tokens: gr.BrowserState) -> None:
    """Share (``snapshot_fn(*inputs) -> (payload, images)``) and Delete on a tab's share row."""

    def make(request: gr.Request, *values):  # Gradio passes the request first: it comes before the values
        *values, kept = values
        try:
            payload, images = snapshot_fn(*values)
            made = publish(row.kind, payload, images, request)
        except Exception as exc:
            raise user_error(exc, "Sharing") from None
        return made["link"], made_message(made), remember(kept, made), gr.Button(visible=True)

    def delete(link, kept):
        try:
            share_id = link_id(link)
            message = unpublish(share_id, (kept or {}).get(share_id))
        except (ShareNotFound, NotOwner) as exc:
            raise gr.Error(str(exc)) from None
        except Exception as exc:
            raise user_error(exc, "Deleting the link") from None
        kept = {k: v for k, v in (kept or {}).items() if k != share_id}
        return "", message, kept, gr.Button(visible=False)

    private = dict(api_visibility="private", show_progress_on=[row.status], concurrency_id="share", concurrency_limit=4)
    outputs = [row.link, row.status, tokens, row.delete]
    row.button.click(make, [*inputs, tokens], outputs, **private)
    row.delete.click(delete, [row.link, tokens], outputs, **private)


def opened(request: gr.Request, panels: dict[str, Panel]) -> list:
    """On page load: the link's tab selected and its snapshot shown, or a notice for a bad link."""
    outputs = [gr.skip(), gr.skip()] + [gr.skip()] * sum(len(p.outputs) for p in panels.values())
    raw = request.query_params.get("s") if request is not None else None
    if raw is None:
        return outputs
    try:
        snap = store().get(link_id(raw))
    except ShareNotFound as exc:
        outputs[1] = gr.Markdown(f"⚠️ {exc}", visible=True)
        return outputs
    except Exception as exc:
        outputs[1] = gr.Markdown(f"⚠️ {user_error(exc, 'Opening the link').message}", visible=True)
        return outputs
    kind = snap["kind"]
    outputs[0] = gr.Tabs(selected=kind)  # a kind is its tab's id
    at = 2
    for name, p in panels.items():
        if name == kind:
            shown = snapshots.views(kind, snap["payload"], snap["files"])
            about = snapshots.about_markdown(kind, snap["payload"], snap["created_at"], snap["expires_at"])
            state = {"id": link_id(raw), "kind": kind, "payload": snap["payload"]}
            outputs[at : at + len(p.outputs)] = [gr.Group(visible=True), about, *shown, state]
        at += len(p.outputs)
    return outputs


def wire_links(demo: gr.Blocks, tabs: gr.Tabs, notice: gr.Markdown, panels: dict[str, Panel], tokens) -> None:
    """Opening ``?s=<id>`` and each panel's Delete and Close."""
    outputs = [tabs, notice] + [c for p in panels.values() for c in p.outputs]

    def load(request: gr.Request):
        return opened(request, panels)

    demo.load(load, None, outputs, api_visibility="private")
    private = dict(api_visibility="private", show_progress_on=None)
    for p in panels.values():
        p.close.click(lambda: gr.Group(visible=False), None, p.group, **private)
        p.delete.click(
            delete_opened, [p.snapshot, tokens], [p.status, tokens], **private | {"show_progress_on": [p.status]}
        )


def delete_opened(snapshot: dict | None, kept: dict | None):
    """A panel's Delete: works only in the browser that made the link (it holds the delete token)."""
    share_id = (snapshot or {}).get("id")
    token = (kept or {}).get(share_id) if share_id else None
    if not token:
        raise gr.Error("Only the person who shared this can delete it, from the browser they shared it from.")
    try:
        message = unpublish(share_id, token)
    except (ShareNotFound, NotOwner) as exc:
        raise gr.Error(str(exc)) from None
    return message, {k: v for k, v in kept.items() if k != share_id}


def _allowed(model: str, task) -> str:
    """The snapshot's model, if this server may load it in the tab; else a clear ValueError."""
    try:
        return catalog.resolve(model, task, allow_any_model=runtime.get().settings.allow_any_model).key
    except ValueError as exc:
        raise ValueError(f"This snapshot was made with {model[:100]!r}, which this server can't open: {exc}") from None


def opened_payload(snapshot: dict | None, kind: str, task) -> tuple[dict, str]:
    """The opened link's payload and its model (as this server names it), or a gr.Error saying why not."""
    try:
        if not isinstance(snapshot, dict) or snapshot.get("kind") != kind:
            raise ValueError("Open a share link first.")
        payload = snapshot["payload"]
        model = payload.get("model") or payload["recipe"]["model"]  # text-to-image keeps it in its recipe
        return payload, _allowed(model, task)
    except Exception as exc:
        raise user_error(exc, "Opening in the tab") from None
