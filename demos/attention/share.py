"""The Attention tab's share link: the selected head's heatmap, the layer's mean and the tokens, how a
viewer sees them, and "Open in the tab" (the text and layer/head in the controls, computed again)."""

from __future__ import annotations

import gradio as gr
import numpy as np

from demos.attention import ui as attention
from demos.attention.views import heatmap_svg, shaded_text_html
from demos.glue import INTERACTIVE
from demos.sharing import links, snapshots
from demos.sharing.snapshots import MAX_NOTE, MAX_TEXT, MAX_TOKENS, ShareKind, list_of, model_of, revision_of
from shared import runtime
from shared.validation import check_number, check_text

KIND = "attention"


def _matrix(name: str, value: object, n: int) -> list[list[float]]:
    rows = list_of(name, value, n)
    if len(rows) != n or any(not isinstance(row, (list, tuple)) or len(row) != n for row in rows):
        raise ValueError(f"A shared attention view's {name} must be {n}×{n}, one row and column per token.")
    try:
        matrix = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"A shared attention view's {name} must hold numbers.") from None
    if not np.isfinite(matrix).all() or matrix.min(initial=0) < 0 or matrix.max(initial=0) > 1:
        raise ValueError(f"A shared attention view's {name} holds weights from 0 to 1.")
    return matrix.tolist()


def check(payload: dict, images: dict) -> tuple[dict, dict]:
    if images:
        raise ValueError("A shared attention view has no images.")
    model, revision = model_of(payload)
    tokens = [check_text("token", t, 200) for t in list_of("tokens", payload.get("tokens"), MAX_TOKENS)]
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


def show(payload: dict, pictures: dict) -> list:
    tokens, layer, head, token = payload["tokens"], payload["layer"], payload["head"], payload["token"]
    heat = np.asarray(payload["heat"], dtype=np.float16)
    mean = np.asarray(payload["mean"], dtype=np.float32)
    return [
        heatmap_svg(heat, tokens, f"Layer {layer}, head {head}"),
        shaded_text_html(heat[token], tokens, token),
        heatmap_svg(mean, tokens, f"Layer {layer}: mean over heads"),
    ]


def components() -> list:
    return [
        gr.HTML(elem_id="shared-attention-heatmap"),
        gr.HTML(elem_id="shared-attention-text"),
        gr.HTML(elem_id="shared-attention-mean"),
    ]


def settings_shown(payload: dict) -> dict:
    return {"layer": payload["layer"], "head": payload["head"], "token": payload["token"]}


def snapshot(model, text, shown, summary):
    if not shown:
        raise ValueError("There is no attention view to share yet: press Show attention first.")
    key, layer, head, token, *_ = shown
    result = attention.RESULTS.get(key, "That attention view")
    return of_attention(result, result.model, text, layer, head, token, summary), {}


def open_in_tab(snapshot):
    payload, model = links.opened_payload(snapshot, "attention", ("attention", "chat"))
    return [gr.Group(visible=False), model, payload["text"], payload["layer"], payload["head"],
            "The shared text and layer/head are in the controls; their attention is being computed."]  # fmt: skip


def wire(a, row: links.ShareRow, panel: links.Panel, tokens) -> None:
    """Open in the tab computes the shared text again (the viewer asked; a small model's pass is cheap)."""
    links.wire_row(row, snapshot, [a.model, a.text, a.outputs[1], a.outputs[6]], tokens)
    panel.open_in_tab.click(
        open_in_tab, panel.snapshot, [panel.group, a.model, a.text, a.inputs[2], a.inputs[3], row.status],
        show_progress_on=[panel.status], api_visibility="private",
    ).success(
        attention.run, a.inputs, a.outputs, show_progress_on=a.progress, concurrency_id=INTERACTIVE,
        concurrency_limit=runtime.get().concurrency, api_visibility="private",
    )  # fmt: skip


snapshots.register(ShareKind(KIND, check=check, show=show, components=components, settings_shown=settings_shown))
