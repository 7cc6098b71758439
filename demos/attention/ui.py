"""The Attention tab's Gradio glue and layout: the results kept per session, the handlers, ``build_ui``.

Run alone: ``python -m demos.attention``.
"""

from __future__ import annotations

import dataclasses

import gradio as gr
import numpy as np
from PIL import Image

from demos.attention import views
from demos.attention.core import (
    HOW_IT_WORKS,
    MAX_API_VALUES,
    MAX_TOKENS,
    MIN_TEMPERATURE,
    TEXT,
    AttentionResult,
    check_index,
    compute_attention,
    head_mean,
    next_token_rows,
    position_logits,
    retrieval,
)
from demos.glue import INTERACTIVE, default_model, model_choices, user_error
from shared import catalog, compute, runtime
from shared.results import ResultStore
from shared.validation import check_float, check_int, check_text

RESULTS = ResultStore()


def _kept(key: object) -> AttentionResult:
    """The session's result, or a ValueError saying to press Show attention (again)."""
    if key is None:
        raise ValueError("Press Show attention first.")
    return RESULTS.get(key, "This attention result")


def _nbytes(result: AttentionResult) -> int:
    tokens = len(result.tokens)
    hidden = 0 if result.head_inputs is None else result.head_inputs.nbytes
    return result.attentions.nbytes + hidden + 4 * tokens * tokens + 64 * tokens  # + the rollout, once drawn


@compute.gpu_entry(model=lambda choice, text: choice, seconds=lambda choice, text: 15)
def _attention_of(choice: str, text: str) -> AttentionResult:
    """Load and run the model on the text: the tab's model work, on a model worker."""
    return compute_attention(runtime.attention_model(choice), text)


def attention(text: str, model: str = "", layer: int = 0, head: int = 0) -> dict:
    """Tokens and attention weights of `text`. layer/head select one (T × T) map; -1 for both returns
    the whole (layers × heads × T × T) tensor when it is small enough."""
    model = default_model("attention") if model is None or model == "" else model  # anything else: resolve's message
    try:
        result = compute.run(_attention_of, model, text, lane=compute.INTERACTIVE)
        layers, heads, tokens = result.shape
        if layer == -1 and head == -1:
            if layers * heads * tokens * tokens > MAX_API_VALUES:
                raise ValueError(
                    f"The whole tensor has {layers * heads * tokens * tokens:,} numbers; ask for one layer and "
                    f"head, or use a shorter text (limit {MAX_API_VALUES:,})."
                )
            weights = np.round(result.attentions.astype(np.float32), 5).tolist()
        else:
            layer, head = check_index(result, layer, head)
            weights = np.round(result.attentions[layer, head].astype(np.float32), 5).tolist()
    except Exception as exc:
        raise user_error(exc, "Attention") from None
    return {
        "model": result.model,
        "tokens": result.tokens,
        "layers": layers,
        "heads": heads,
        "causal": result.causal,
        "layer": layer,
        "head": head,
        "attention": weights,
    }


def summary_markdown(result: AttentionResult) -> str:
    layers, heads, tokens = result.shape
    kind = "causal (each token sees only the past)" if result.causal else "bidirectional (tokens see both sides)"
    return f"**{result.model}** · {tokens} tokens · {layers} layers × {heads} heads · {kind}"


def _checked(result: AttentionResult, layer, head, token, temperature, top_k, top_p) -> tuple:
    """The selection, validated: (layer, head, token, temperature, top_k, top_p)."""
    return (
        *check_index(result, layer, head, token),
        check_float("temperature", temperature, 0.0, 5.0),
        check_int("top_k", top_k, 0, 1000),
        check_float("top_p", top_p, 0.01, 1.0),
    )


def run(model: str, text: str, layer: int, head: int, token: int, temperature: float, top_k: int, top_p: float):
    """Compute attention once, keep it in the result store (the session holds its key), and render every
    view; the selection starts on the last token."""
    try:
        result = compute.run(_attention_of, model, text, lane=compute.INTERACTIVE)
        layers, heads, tokens = result.shape
        layer = min(check_int("layer", layer, 0, 10**6), layers - 1)
        head = min(check_int("head", head, 0, 10**6), heads - 1)
        selection = _checked(result, layer, head, tokens - 1, temperature, top_k, top_p)
        drawn = compute.run(_views, result, *selection, lane=compute.INTERACTIVE)
        whole = compute.run(_whole, result, lane=compute.INTERACTIVE)
        key = RESULTS.put(result, _nbytes(result))
    except Exception as exc:
        raise user_error(exc, "Attention") from None
    return (
        key,
        (key, *selection),  # what the views now show
        gr.Slider(maximum=layers - 1, value=layer),
        gr.Slider(maximum=heads - 1, value=head),
        gr.Dropdown(choices=views.token_choices(result.tokens), value=tokens - 1),
        False,  # the rollout starts with the first token in its colour scale
        summary_markdown(result),
        *drawn,
        *whole,
    )


def _whole(result: AttentionResult) -> tuple[Image.Image, str]:
    """The views that depend only on the text: every head, and the rollout."""
    return views.model_view_image(result)[0], views.rollout_html(result.flow, result.tokens, leave_out_first=False)


def _views(result: AttentionResult, layer, head, token, temperature, top_k, top_p) -> tuple:
    """The views that depend on the selection (model calls: the key/value recomputation, the next-token scores)."""
    layer, head, token = check_index(result, layer, head, token)
    am = runtime.attention_model(result.model)
    heat = views.heatmap_svg(result.attentions[layer, head], result.tokens, f"Layer {layer}, head {head}")
    mean = views.heatmap_svg(head_mean(result, layer), result.tokens, f"Layer {layer}: mean over heads")
    shaded = views.shaded_text_html(result.attentions[layer, head, token], result.tokens, token)
    kv = views.retrieval_html(retrieval(am, result, layer, head, token), result.tokens, token)
    if not result.causal:
        nxt = "<i>Bidirectional models don't predict a next token.</i>"
    else:
        rows = next_token_rows(am, position_logits(am, result, token), temperature, top_k, top_p)
        nxt = views.next_token_html(rows, views.next_token_heading(result.tokens, token))
    return heat, views.head_view_html(result, layer, token), mean, shaded, kv, nxt


VIEW_COUNT = 6  # what _views returns


def render(key: str | None, shown: tuple | None, layer, head, token, temperature, top_k, top_p):
    """Re-render the selection-dependent views from the session's kept result, and what they now show;
    nothing when they show this selection already (a box sent on a pause and again on Enter or blur)."""
    try:
        result = _kept(key)
        drawn = (key, *_checked(result, layer, head, token, temperature, top_k, top_p))
        if drawn == shown:
            return (gr.skip(),) * (VIEW_COUNT + 1)
        return *compute.run(_views, result, *drawn[1:], lane=compute.INTERACTIVE), drawn
    except Exception as exc:
        raise user_error(exc, "Attention") from None


def rollout_view(key: str | None, leave_out_first: object):
    """The rollout with the first token (the attention sink) in its colour scale, or left out of it."""
    if key is None:  # nothing run yet: nothing to redraw
        return gr.skip()
    try:
        if not isinstance(leave_out_first, bool):
            raise ValueError("'leave out the first token' must be true or false.")
        result = _kept(key)
        return views.rollout_html(result.flow, result.tokens, leave_out_first)
    except Exception as exc:
        raise user_error(exc, "Attention") from None


def model_picked(key: str | None, model: object) -> str:
    """The summary once another model is picked: what the views still show, and whether Show attention can run it."""
    try:
        picked = check_text("model", model, 200)
        spec = catalog.CATALOG.get(picked)
        reason = None if spec is None else runtime.unavailable(spec)
    except Exception as exc:
        raise user_error(exc, "Attention") from None
    try:
        shown = f"Shown: {summary_markdown(_kept(key))}. " if key is not None else ""
    except ValueError:  # the result expired: the views describe nothing kept
        shown = ""
    then = f"it can't load now, {reason}" if reason else "press **Show attention** to run it"
    return f"{shown}Picked `{picked.replace('`', '')}`: {then}."


def pick_from_grid(key: str | None, evt: gr.SelectData):
    """A click on the model view selects that layer and head."""
    if key is None:
        return gr.skip(), gr.skip()
    try:
        layers, heads, _ = _kept(key).shape
    except Exception as exc:
        raise user_error(exc, "Attention") from None
    where = views.grid_layout(layers, heads).locate(int(evt.index[0]), int(evt.index[1]), layers, heads)
    return where if where is not None else (gr.skip(), gr.skip())


@dataclasses.dataclass
class AttentionUI:
    """The Attention tab's components that other tabs link to (the chat's bridge runs ``run`` on them)."""

    model: gr.Dropdown
    text: gr.Textbox
    inputs: list  # what ``run`` takes
    outputs: list  # what ``run`` fills
    progress: list = dataclasses.field(default_factory=list)  # where every event shows progress (and errors)


def _typed_slider(*args, **kwargs) -> gr.Slider:
    """A slider whose number box sends what is typed (see attention_views.CONTROLS_JS)."""
    return gr.Slider(*args, **kwargs, elem_classes="attention-number")


def _selection_controls() -> list:
    """Layer, head and token: what the views look at."""
    with gr.Row():
        layer = _typed_slider(
            0, 29, 0, step=1, label="layer", info="Which layer (0 = closest to the input).", elem_id="attention-layer"
        )
        head = _typed_slider(
            0, 8, 0, step=1, label="head", info="Which query head of that layer.", elem_id="attention-head"
        )
        token = gr.Dropdown(
            [], label="token", info="The token whose attention to inspect (the query).", elem_id="attention-token"
        )
    return [layer, head, token]


def _view_tabs() -> tuple[list, list, list, gr.Checkbox]:
    """The views: (selection-dependent views, text-only views, next-token sampling controls, the sink box)."""
    with gr.Tabs():
        with gr.Tab("Heatmap"):
            heat = gr.HTML(elem_id="attention-heatmap", js_on_load=views.CONTROLS_JS)  # the tab's script, once
        with gr.Tab("Head view"):
            head_view = gr.HTML(elem_id="attention-head-view")
        with gr.Tab("Model view"):
            gr.Markdown("Every layer (rows) × head (columns). Click one to open it in the other views.")
            grid = gr.Image(label="All heads", type="pil", elem_id="attention-model-view", interactive=False)
        with gr.Tab("Aggregates"):
            with gr.Row():
                mean = gr.HTML(elem_id="attention-mean")
                with gr.Column():
                    sink = gr.Checkbox(
                        False, label="leave out the first token (the attention sink)", elem_id="attention-sink"
                    )
                    flow = gr.HTML(elem_id="attention-rollout")
        with gr.Tab("Text"):
            shaded = gr.HTML(elem_id="attention-text-view")
        with gr.Tab("Key/value retrieval"):
            kv = gr.HTML(elem_id="attention-kv")
        with gr.Tab("Next token"):
            with gr.Row():
                temperature = _typed_slider(
                    0, 2, 1.0, step=0.05, label="temperature", info=f"0 (or below {MIN_TEMPERATURE:g}) = greedy"
                )
                top_k = _typed_slider(0, 100, 0, step=1, label="top_k", info="0 = no limit")
                top_p = _typed_slider(0.01, 1, 1.0, step=0.01, label="top_p")
            nxt = gr.HTML(elem_id="attention-next")
    return [heat, head_view, mean, shaded, kv, nxt], [grid, flow], [temperature, top_k, top_p], sink


def build_ui() -> AttentionUI:
    """The Attention tab."""
    rt = runtime.get()
    result = gr.State(None)  # the key of this session's result in RESULTS
    shown = gr.State(None)  # (key, *selection) the views show: render skips a repeat of it
    with gr.Row():
        model = gr.Dropdown(
            model_choices("attention", "chat"),
            value=default_model("attention"),
            label="Model",
            allow_custom_value=rt.settings.allow_any_model,
            scale=2,
        )
        summary = gr.Markdown("Type or paste text, then **Show attention**.", elem_id="attention-summary")
    text = gr.Textbox(TEXT, lines=3, label=f"Text (up to {MAX_TOKENS} tokens)", elem_id="attention-text")
    show = gr.Button("Show attention", variant="primary", elem_id="attention-run")
    layer, head, token = _selection_controls()
    drawn, whole, sampling, sink = _view_tabs()  # drawn changes with the selection; whole only with the text
    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS)

    # Every event shows its progress, and a failure its Error badge, on the same components, so the next
    # good request of any kind (or picking another model) clears every badge a failure left.
    progress = [summary, *drawn, *whole]
    heavy = dict(concurrency_id=INTERACTIVE, concurrency_limit=rt.concurrency, api_visibility="private")
    heavy["show_progress_on"] = progress
    light = dict(api_visibility="private", show_progress_on=progress)
    selection = [layer, head, token, *sampling]
    outputs = [result, shown, layer, head, token, sink, summary, *drawn, *whole]
    show.click(run, [model, text, *selection], outputs, **heavy)
    text.submit(run, [model, text, *selection], outputs, **heavy)
    redraw = dict(fn=render, inputs=[result, shown, *selection], outputs=[*drawn, shown], **heavy)
    for control in selection:  # user changes only (run sets these too, and renders itself)
        trigger = control.release if isinstance(control, gr.Slider) else control.input
        trigger(**redraw, trigger_mode="always_last")  # the last value sent is always the one drawn
    whole[0].select(pick_from_grid, result, [layer, head], **light).then(**redraw)
    sink.input(rollout_view, [result, sink], whole[1], **light)
    model.input(model_picked, [result, model], summary, **light)
    gr.api(attention, api_name="attention", concurrency_id=INTERACTIVE, concurrency_limit=rt.concurrency)
    return AttentionUI(model=model, text=text, inputs=[model, text, *selection], outputs=outputs, progress=progress)
