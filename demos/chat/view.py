"""What the Chat tab shows, as pure functions from results to Markdown / HTML / files' text.

Also the two rules that keep the page's conversation honest: a failed reply leaves a *failure
note* (shown, never fed to the model), and a user turn that got no reply is left out of what the
model sees, so it never reads two user turns in a row by accident.
"""

from __future__ import annotations

import json
import time
from html import escape

from shared.engines import ReplyStats, TokenInfo

FAILED = "⚠️ No reply"  # the title of a failure note in the conversation
STATS_PLACEHOLDER = "Reply statistics appear here."


# --- the page's conversation: failure notes and unanswered turns ----------------------------


def failure_note(reason: str) -> dict:
    """An assistant-side message saying the reply failed and why; the model never sees it."""
    return {
        "role": "assistant",
        "content": f"{reason}\n\nThis turn is not sent to the model. Press ↻ (or Regenerate) to try again, or "
        "send a new message.",
        "metadata": {"title": f"{FAILED}: {reason}", "status": "done"},  # the title shows while folded
    }


def is_failure_note(message: object) -> bool:
    if not isinstance(message, dict) or message.get("role") != "assistant":
        return False
    metadata = message.get("metadata") or {}
    return isinstance(metadata, dict) and str(metadata.get("title") or "").startswith(FAILED)


def answered_turns(history: list) -> list:
    """The page's conversation as the model is fed it: failure notes left out, and a user turn
    followed by another user turn (its reply failed or never came) left out too. The page still
    shows both; the rendered prompt shows what the model got."""
    kept = [m for m in history if not is_failure_note(m)]
    role = [m.get("role") if isinstance(m, dict) else None for m in kept]
    return [m for i, m in enumerate(kept) if not (role[i] == "user" and i + 1 < len(kept) and role[i + 1] == "user")]


# --- statistics and the context gauge --------------------------------------------------------


def stats_markdown(stats: ReplyStats, queued_s: float | None = None) -> str:
    """One line of statistics. With ``queued_s`` (Send → the model started on it), time to first
    token counts from the moment the user sent, the queue's share shown apart."""
    used = stats.prompt_tokens + stats.completion_tokens
    if queued_s is None:
        first = f"**{stats.ttft_s:.2f} s** to first token"
    else:
        first = (
            f"**{queued_s + stats.ttft_s:.2f} s** from Send to first token "
            f"({queued_s:.2f} s waiting for the model, {stats.ttft_s:.2f} s reading the prompt)"
        )
    parts = [
        first,
        f"**{stats.tokens_per_s:.1f}** tokens/s",
        f"{stats.prompt_tokens:,} prompt + {stats.completion_tokens:,} completion tokens",
        f"context {used:,} / {stats.context_window:,}"
        if stats.context_window
        else f"context {used:,} (window unknown)",
        "greedy" if stats.greedy else f"sampled, seed {stats.seed}",
        f"ended: {stats.finish}",
        f"engine: {stats.engine}",
    ]
    text = " · ".join(parts)
    if stats.notices:
        text += "\n\nℹ️ " + "; ".join(stats.notices) + "."
    if stats.dropped_messages:
        text += (
            f"\n\n⚠️ The conversation outgrew the model's {stats.context_window:,}-token window: the oldest "
            f"{stats.dropped_messages} message(s) were left out of what the model saw."
        )
    return text


def context_gauge_html(used: int, window: int) -> str:
    """How full the model's window is; before any reply (``window`` 0) it says so instead of "0 / 1"."""
    if not window:
        return (
            '<div class="context-gauge"><div style="font-size:0.85em">Context: nothing yet — the gauge shows '
            "how much of the model's window the conversation fills after each reply.</div></div>"
        )
    share = min(used / window, 1.0)
    colour = "#16a34a" if share < 0.7 else "#d97706" if share < 0.9 else "#dc2626"
    return (
        f'<div class="context-gauge" title="{used:,} of {window:,} tokens">'
        f'<div style="font-size:0.85em">Context: {used:,} / {window:,} tokens ({share:.0%})</div>'
        f'<div style="background:#e5e7eb;border-radius:4px;height:8px">'
        f'<div style="width:{share * 100:.1f}%;background:{colour};height:8px;border-radius:4px"></div></div></div>'
    )


# --- the token view --------------------------------------------------------------------------

TOKEN_VIEW_PLACEHOLDER = "<i>Send a message to see each token with its probability.</i>"


def _show(token: str) -> str:
    """A token as readable text, newlines made visible."""
    return token.replace("\n", "\\n")


def token_view_html(tokens: list[TokenInfo], probs_note: str = "") -> str:
    """Each token shaded by its probability (darker = less likely); hover for the alternatives.
    ``probs_note`` says when the engine took the probabilities (e.g. before the repetition penalty)."""
    spans = []
    for info in tokens:
        alternatives = "\n".join(f"{_show(t)!r}: {p:.1%}" for t, p in info.top)
        alpha = 0.05 + 0.6 * (1 - info.prob)
        spans.append(
            f'<span class="tok" style="background:rgba(220,38,38,{alpha:.2f});border-radius:3px;'
            f'padding:1px 0;white-space:pre-wrap" title="p={info.prob:.1%}\n{escape(alternatives, quote=True)}">'
            f"{escape(_show(info.token))}</span>"
        )
    legend = (
        '<div style="font-size:0.8em;margin-bottom:4px">Shade = how surprised the model was '
        "(white: it was sure; red: it was a long shot). Hover a token for its top alternatives."
        + (f" Probabilities: {escape(probs_note)}." if probs_note else "")
        + "</div>"
    )
    return legend + '<div class="token-view" style="line-height:1.9">' + "".join(spans) + "</div>"


def token_table(tokens: list[TokenInfo]) -> list[list[str]]:
    return [
        [str(i), _show(info.token), f"{info.prob:.1%}", ", ".join(f"{_show(t)} {p:.0%}" for t, p in info.top)]
        for i, info in enumerate(tokens)
    ]


# --- export: the conversation and everything that made it -------------------------------------


def to_markdown(messages: list[dict[str, str]], about: dict | None = None) -> str:
    header = ""
    if about:
        rows = [f"- **{name}**: {json.dumps(value, ensure_ascii=False)}" for name, value in about.items()]
        header = "# Conversation\n\n" + "\n".join(rows) + "\n\n"
    return header + "\n\n".join(f"**{m['role'].capitalize()}:**\n\n{m['content']}" for m in messages) + "\n"


def to_json(messages: list[dict[str, str]], model: str, about: dict | None = None) -> str:
    """The export: the model first, then how the conversation was made (``about``), then the messages."""
    return json.dumps({"model": model, **(about or {}), "messages": messages}, ensure_ascii=False, indent=2)


def export_about(model: str, revision: str | None, system_prompt: str, mode: str, settings: dict, last: dict) -> dict:
    """What a reader of an export needs to reproduce it: model revision, system prompt, mode, the
    sampling settings, and the seed the last reply actually used (a -1 seed draws a new one)."""
    return {
        "revision": revision,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "system_prompt": system_prompt,
        "mode": mode,
        "settings": settings,
        "last_reply": last or None,
    }
