"""See attention: every layer and head of a real transformer, on your own text.

For each token, attention compares its *query* with the *keys* of the tokens it may look at (in a
causal LM, those before it), turns the scaled dot products into weights with a softmax, and mixes
those tokens' *values* with the weights: a soft key/value lookup. Each head does this with its own
projections, so heads are free to look for different relations; layers stack them.

This tab shows the weights the model itself reports (models are loaded with eager attention,
since fused SDPA kernels return none), recomputes one head's lookup from the layer's own Q/K/V
projections to show it is exactly that, and shows what the model predicts after the selected token.
The views themselves (heatmaps you can hover, the rollout and its attention sink) are in
``demos/attention_views.py``.

Run alone: ``python -m demos.attention``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys

import gradio as gr
import numpy as np
import torch
from PIL import Image

from demos import attention_views as views
from demos._glue import INTERACTIVE, default_model, model_choices, run_alone, user_error
from shared import catalog, compute, runtime
from shared.loaders import AttentionModel
from shared.results import ResultStore
from shared.validation import check_float, check_int, check_number, check_text

# --- knobs ----------------------------------------------------------------------------------

TEXT = "The cat sat on the mat because it was tired. It slept all afternoon."
MAX_TOKENS = 512  # attention memory grows with layers · heads · tokens²
MAX_API_VALUES = 4_000_000  # the whole tensor over the API only up to this many numbers
MAX_TEXT_CHARS = 20_000
TOP_NEXT = 10  # rows in the next-token panel
MIN_TEMPERATURE = 1e-3  # below this the next-token panel treats temperature as 0 (greedy), as the chat does

HOW_IT_WORKS = """
**Queries, keys, values.** Every token's vector is projected three ways. Its *query* says what it
is looking for, each token's *key* says what it offers, and its *value* is what it hands over.
A token's query is compared with every key by a dot product, divided by √d (the square root of
the head size d) so
the numbers stay in a range where the softmax is not saturated.

**Softmax.** The scaled scores become weights that are positive and add up to 1: one row of the
heatmap. The token's output is the weighted sum of the values — a *soft* key/value lookup. The
*Key/value retrieval* view recomputes this for the head and token you pick, from the layer's own
projections, and checks it against what the model reports.

**Causal masks.** A language model that writes left to right may not look at the future: scores
for later tokens are set to −∞ before the softmax, so their weights are exactly 0 and the heatmap
is a triangle. BERT-style encoders see both sides.

**Heads and layers.** A layer runs several heads side by side, each with its own projections, so
each can track a different relation (the previous token, the matching bracket, the subject of a
verb…). Layers stack: later layers attend over vectors that already mix earlier context. In
grouped-query attention (SmolLM2: 9 query heads share 3 key/value heads) several query heads read
the same keys and values; views here are per query head.

**Aggregates.** *Mean over heads* averages a layer's heads. *Rollout* multiplies the layers'
head-averaged maps (each mixed half-and-half with the identity, for the residual connection) to
estimate how much each input token flows into each position through the whole stack.

**Many tokens attend to the first token** — an "attention sink": the softmax must put its weight
somewhere, and the first token is always visible.
"""


# --- compute: model in, numbers out ----------------------------------------------------------


@dataclasses.dataclass
class AttentionResult:
    model: str
    tokens: list[str]  # display text of each token
    token_ids: list[int]
    attentions: np.ndarray  # (layers, heads, T, T), float16 to keep sessions small
    causal: bool
    # (T, d): what the LM head reads at each position, so the next-token panel can predict after any
    # token; None for encoders, and for a model whose scores are not its LM head's output (then
    # position_logits runs the model on the text up to the token instead)
    head_inputs: np.ndarray | None

    @property
    def shape(self) -> tuple[int, int, int]:
        layers, heads, tokens, _ = self.attentions.shape
        return layers, heads, tokens

    @functools.cached_property
    def flow(self) -> np.ndarray:
        """The rollout, computed once (the rollout view redraws it with and without the sink)."""
        return rollout(self)


def tokenize(am: AttentionModel, text: object) -> list[int]:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("Type some text to look at: it is empty.")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"That text is {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}.")
    check_text("text", text, MAX_TEXT_CHARS)
    ids = am.tokenizer(text, add_special_tokens=not am.causal)["input_ids"]
    if len(ids) > (limit := runtime.capped(MAX_TOKENS, "attention_tokens")):
        raise ValueError(
            f"That text is {len(ids):,} tokens; the limit is {limit}. Attention memory grows with "
            "layers × heads × tokens², so shorten the text."
        )
    return list(ids)


def token_labels(am: AttentionModel, ids: list[int]) -> list[str]:
    return [am.tokenizer.decode([i], skip_special_tokens=False) for i in ids]


def compute_attention(am: AttentionModel, text: str) -> AttentionResult:
    """Every layer's and head's attention weights on ``text`` (and the next-token scores)."""
    ids = tokenize(am, text)
    device = next(am.model.parameters()).device
    with torch.inference_mode():
        out = am.model(
            input_ids=torch.tensor([ids], device=device), output_attentions=True, output_hidden_states=am.causal
        )
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise ValueError(
            f"Model {am.key!r} returned no attention weights: it has no attention layers, or its kernel does not expose them."
        )
    stacked = torch.stack([a[0] for a in attentions]).float()  # (L, H, T, T)
    return AttentionResult(
        model=am.key,
        tokens=token_labels(am, ids),
        token_ids=ids,
        attentions=stacked.cpu().numpy().astype(np.float16),
        causal=am.causal,
        head_inputs=_head_inputs(am, out) if am.causal else None,
    )


def _head_inputs(am: AttentionModel, out) -> np.ndarray | None:
    """The last hidden states, if the LM head turns them into exactly the model's scores (checked on
    the last position), else None."""
    head, hidden, logits = am.model.get_output_embeddings(), getattr(out, "hidden_states", None), out.logits
    if head is None or not hidden or hidden[-1] is None or hidden[-1].shape[1] != logits.shape[1]:
        return None
    with torch.inference_mode():
        again = head(hidden[-1][0, -1:]).float()[0]
    if not torch.allclose(again, logits[0, -1].float(), rtol=1e-3, atol=5e-3 * float(again.abs().max()) + 1e-5):
        return None
    return hidden[-1][0].float().cpu().numpy()


def position_logits(am: AttentionModel, result: AttentionResult, token: int) -> np.ndarray:
    """(vocab,) the model's scores for the token after position ``token``: its LM head on the kept hidden
    state, or (for a model that reworks its scores after the head) the model run on the text up to there."""
    device = next(am.model.parameters()).device
    with torch.inference_mode():
        if result.head_inputs is not None:
            head = am.model.get_output_embeddings()
            hidden = torch.from_numpy(result.head_inputs[token]).to(device, head.weight.dtype)
            return head(hidden[None]).float()[0].cpu().numpy()
        out = am.model(input_ids=torch.tensor([result.token_ids[: token + 1]], device=device))
        return out.logits[0, -1].float().cpu().numpy()


def check_index(result: AttentionResult, layer: object, head: object, token: object | None = None) -> tuple:
    """Validated (layer, head, token) as ints, or ValueError naming the one out of range."""
    layers, heads, tokens = result.shape
    checked = []
    for name, value, count in (("layer", layer, layers), ("head", head, heads), ("token", token, tokens)):
        if name == "token" and token is None:
            continue
        index = check_number(name, value, -(2**31), 2**31, integer=True)
        if not 0 <= index < count:
            raise ValueError(f"{name} {index} is out of range: this model has {count} (0 to {count - 1}).")
        checked.append(index)
    return tuple(checked)


def head_mean(result: AttentionResult, layer: int) -> np.ndarray:
    return result.attentions[layer].astype(np.float32).mean(axis=0)  # (T, T)


def rollout(result: AttentionResult) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020): Π over layers of (½·mean-over-heads + ½·I), row-normalised."""
    layers, _, tokens = result.shape
    flow = np.eye(tokens, dtype=np.float64)
    for layer in range(layers):
        mixed = 0.5 * head_mean(result, layer) + 0.5 * np.eye(tokens)
        mixed /= mixed.sum(axis=-1, keepdims=True)
        flow = mixed @ flow
    return flow.astype(np.float32)


def next_token_rows(
    am: AttentionModel, logits: np.ndarray, temperature: float, top_k: int, top_p: float, count: int = TOP_NEXT
) -> list[tuple[str, float, float]]:
    """The likeliest next tokens: (token, model probability, probability after temperature/top-k/top-p)."""
    temperature = check_float("temperature", temperature, 0.0, 5.0)
    top_p = check_float("top_p", top_p, 0.01, 1.0)
    top_k = check_int("top_k", top_k, 0, 1000)
    scores = torch.from_numpy(logits).double()
    model_p = torch.softmax(scores, -1)
    if temperature < MIN_TEMPERATURE:  # greedy: all mass on the top token (scores / 1e-300 would overflow)
        sampling = torch.zeros_like(model_p)
        sampling[model_p.argmax()] = 1.0
    else:
        warped = scores / temperature
        if top_k:
            warped[warped < warped.topk(int(top_k)).values[-1]] = -math.inf
        probs = torch.softmax(warped, -1)
        order = probs.argsort(descending=True)
        cumulative = probs[order].cumsum(0)
        drop = order[(cumulative - probs[order]) >= top_p]  # keep the smallest set reaching top_p
        warped[drop] = -math.inf
        sampling = torch.softmax(warped, -1)
    top = model_p.topk(count).indices.tolist()
    return [(am.tokenizer.decode([i]), float(model_p[i]), float(sampling[i])) for i in top]


# --- "attention is key/value retrieval": one head recomputed from its own projections -----------


@dataclasses.dataclass
class Retrieval:
    scores: np.ndarray  # (T,) q·k / √d, −inf where masked
    weights: np.ndarray  # (T,) softmax of the scores
    reported: np.ndarray  # (T,) what the model itself reported for this head and token
    output: np.ndarray  # (d,) Σ weight · value
    head_dim: int
    kv_head: int  # the key/value head this query head reads (grouped-query attention)

    @property
    def max_difference(self) -> float:
        return float(np.abs(self.weights - self.reported).max())


def _attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Self-attention modules in layer order, for the projection layouts we know."""
    known = (("q_proj", "k_proj", "v_proj"), ("query", "key", "value"), ("q_lin", "k_lin", "v_lin"), ("c_attn",))
    found = []
    for module in model.modules():
        if any(all(hasattr(module, name) for name in names) for names in known):
            if not any(module is m or any(sub is module for sub in m.modules()) for m in found):
                found.append(module)
    return found


def _project(attn: torch.nn.Module, hidden: torch.Tensor, config) -> tuple[torch.Tensor, ...]:
    """(q, k, v) as (T, heads, head_dim) from the module's own projection weights."""
    n_heads = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    if hasattr(attn, "q_proj"):
        q, k, v = attn.q_proj(hidden), attn.k_proj(hidden), attn.v_proj(hidden)
    elif hasattr(attn, "query"):
        q, k, v = attn.query(hidden), attn.key(hidden), attn.value(hidden)
    elif hasattr(attn, "q_lin"):
        q, k, v = attn.q_lin(hidden), attn.k_lin(hidden), attn.v_lin(hidden)
    else:  # GPT-2: one fused projection
        q, k, v = attn.c_attn(hidden).split(hidden.shape[-1], dim=-1)
    head_dim = q.shape[-1] // n_heads
    tokens = hidden.shape[0]
    return q.view(tokens, n_heads, head_dim), k.view(tokens, n_kv, head_dim), v.view(tokens, n_kv, head_dim)


class _Captured(Exception):
    """The layer's input is captured: the rest of the forward pass is skipped."""


def retrieval(am: AttentionModel, result: AttentionResult, layer: int, head: int, token: int) -> Retrieval:
    """Recompute one query's attention from the layer's input and its Q/K/V projections (the model
    runs only up to that layer)."""
    modules = _attention_modules(am.model)
    if len(modules) != result.shape[0]:
        raise ValueError(f"The key/value view does not know this architecture ({type(am.model).__name__}).")
    attn = modules[layer]
    captured: dict = {}

    def grab(module, args, kwargs):  # the layer's input, and rotary cos/sin where the model uses them
        captured["hidden"] = kwargs.get("hidden_states", args[0] if args else None)
        captured["rotary"] = kwargs.get("position_embeddings")
        raise _Captured  # the layers above are not needed: stop the forward here

    handle = attn.register_forward_pre_hook(grab, with_kwargs=True)
    device = next(am.model.parameters()).device
    try:
        with torch.inference_mode():
            am.model(input_ids=torch.tensor([result.token_ids], device=device))
    except _Captured:
        pass
    finally:
        handle.remove()

    with torch.inference_mode():
        hidden = captured["hidden"][0].float()  # (T, D)
        q, k, v = _project(attn, hidden.to(next(attn.parameters()).dtype), am.model.config)
        q, k, v = q.float(), k.float(), v.float()
        if hasattr(attn, "q_norm"):  # per-head RMSNorm on q and k (Qwen3-style)
            q, k = attn.q_norm(q).float(), attn.k_norm(k).float()
        if captured["rotary"] is not None:  # rotary position embeddings rotate q and k by position
            cos, sin = (t.float() for t in captured["rotary"])
            rotate = sys.modules[type(attn).__module__].apply_rotary_pos_emb
            q, k = rotate(q.transpose(0, 1)[None], k.transpose(0, 1)[None], cos, sin)
            q, k = q[0].transpose(0, 1), k[0].transpose(0, 1)
        head_dim = q.shape[-1]
        kv_head = head // (q.shape[1] // k.shape[1])
        scaling = getattr(attn, "scaling", None) or head_dim**-0.5
        # 1. scaled dot products of this token's query with every key: (T,)
        scores = (k[:, kv_head] @ q[token, head]) * scaling
        # 2. a causal model may not look ahead
        if result.causal:
            scores[token + 1 :] = -math.inf
        # 3. softmax → weights; 4. the weighted sum of the values is the head's output for this token
        weights = torch.softmax(scores, -1)
        output = weights @ v[:, kv_head]
    return Retrieval(
        scores=scores.cpu().numpy(),
        weights=weights.cpu().numpy(),
        reported=result.attentions[layer, head, token].astype(np.float32),
        output=output.cpu().numpy(),
        head_dim=head_dim,
        kv_head=kv_head,
    )


# --- Gradio glue ----------------------------------------------------------------------------

# Each session's last result (up to ~140 MB for 512 tokens of SmolLM2) lives here, under one byte
# budget and an age limit; the session's gr.State holds only its key.
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


if __name__ == "__main__":
    run_alone(build_ui, "Attention")
