"""The Chat tab's share link: what a snapshot holds (checked the same for the Share button and the
``/share`` API), how a viewer sees it, and "Open in the tab" (the conversation, ready to continue)."""

from __future__ import annotations

import html

import gradio as gr

from demos.chat.core import LIMITS, MAX_MESSAGE_CHARS, normalize_history
from demos.chat.view import TOKEN_VIEW_PLACEHOLDER, is_failure_note, token_view_html
from demos.sharing import links, snapshots
from demos.sharing.snapshots import (
    MAX_ALTERNATIVES,
    MAX_NOTE,
    MAX_TOKENS,
    ShareKind,
    as_text,
    dict_of,
    list_of,
    model_of,
    revision_of,
)
from shared.engines import TokenInfo
from shared.validation import check_number, check_text

KIND = "chat"


def check(payload: dict, images: dict) -> tuple[dict, dict]:
    if images:
        raise ValueError("A shared chat has no images.")
    model, revision = model_of(payload)
    messages = normalize_history(payload.get("messages"))
    if not messages:
        raise ValueError("There is no conversation to share yet.")
    settings = dict_of("settings", payload.get("settings") or {})
    checked = {}
    for name, (low, high, integer) in LIMITS.items():
        if name in settings:
            checked[name] = check_number(name, settings[name], low, high, integer=integer)
    tokens = []
    for item in list_of("tokens", payload.get("tokens") or [], MAX_TOKENS):
        item = dict_of("token", item)
        top = list_of("alternatives", item.get("top") or [], MAX_ALTERNATIVES)
        tokens.append({
            "token": check_text("token", item.get("token"), 200),
            "prob": check_number("token probability", item.get("prob"), 0.0, 1.0),
            "top": [[check_text("token", t, 200), check_number("probability", p, 0.0, 1.0)]
                    for t, p in (list_of("alternative", pair, 2) for pair in top)],
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


def show(payload: dict, pictures: dict) -> list:
    """The snapshot panel's values: the conversation (as text: no HTML, no image loaded), the token view, the stats."""
    tokens = [TokenInfo(-1, t["token"], t["prob"], [tuple(p) for p in t["top"]]) for t in payload["tokens"]]
    shown = token_view_html(tokens, payload["probs_note"]) if tokens else TOKEN_VIEW_PLACEHOLDER
    messages = [{"role": m["role"], "content": as_text(m["content"])} for m in payload["messages"]]
    return [messages, shown, html.escape(payload["stats"]) or " "]


def components() -> list:
    return [
        gr.Chatbot(label="Shared conversation", height=360, elem_id="shared-chat-chatbot", buttons=["copy_all"]),
        gr.HTML(elem_id="shared-chat-tokens"),
        gr.Markdown(elem_id="shared-chat-stats"),
    ]


def snapshot(model, history, system_prompt, *rest):
    *settings, mode, stats, last = rest
    return of_chat(model, history, system_prompt, dict(zip(LIMITS, settings, strict=True)), mode, stats, last), {}


def open_in_tab(snapshot):
    """The conversation and its settings into the live chat, ready to continue."""
    payload, model = links.opened_payload(snapshot, "chat", "chat")
    settings = [payload["settings"].get(name, gr.skip()) for name in LIMITS]
    status = "The conversation and its settings are in the chat below: type to continue it."
    return [gr.Group(visible=False), model, payload["system_prompt"], *settings, payload["mode"], payload["messages"],
            status]  # fmt: skip


def wire(c, row: links.ShareRow, panel: links.Panel, tokens) -> None:
    """Share on the tab's row; Open in the tab on its snapshot panel."""
    links.wire_row(row, snapshot, [c.model, c.chatbot, c.system_prompt, *c.settings, c.mode, c.stats, c.meta], tokens)
    panel.open_in_tab.click(
        open_in_tab, panel.snapshot, [panel.group, c.model, c.system_prompt, *c.settings, c.mode, c.chatbot, row.status],
        show_progress_on=[panel.status], api_visibility="private",
    )  # fmt: skip


snapshots.register(ShareKind(KIND, check=check, show=show, components=components))
