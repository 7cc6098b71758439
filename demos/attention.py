"""See attention: every layer and head of a real transformer, on your own text.

For each token, attention compares its *query* with the *keys* of the tokens it may look at (in a
causal LM, those before it), turns the scaled dot products into weights with a softmax, and mixes
those tokens' *values* with the weights: a soft key/value lookup. Each head does this with its own
projections, so heads are free to look for different relations; layers stack them.

This tab shows the weights the model itself reports (models are loaded with eager attention,
since fused SDPA kernels return none), recomputes one head's lookup from the layer's own Q/K/V
projections to show it is exactly that, and shows what the model predicts next.

Run alone: ``python -m demos.attention``.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
import sys
from html import escape

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from demos._glue import default_model, model_choices, run_alone, user_error
from shared import compute, runtime
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
HEATMAP_PX = 640  # heatmaps are at most this wide
THUMB_PX = 48  # model-view thumbnail size

HOW_IT_WORKS = """
**Queries, keys, values.** Every token's vector is projected three ways. Its *query* says what it
is looking for, each token's *key* says what it offers, and its *value* is what it hands over.
A token's query is compared with every key by a dot product, scaled by 1/√d (d = head size) so
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
    next_logits: np.ndarray | None  # (vocab,) scores for the token after the text; causal models only

    @property
    def shape(self) -> tuple[int, int, int]:
        layers, heads, tokens, _ = self.attentions.shape
        return layers, heads, tokens


def tokenize(am: AttentionModel, text: object) -> list[int]:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("Type some text to look at: it is empty.")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"That text is {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}.")
    check_text("text", text, MAX_TEXT_CHARS)
    ids = am.tokenizer(text, add_special_tokens=not am.causal)["input_ids"]
    if len(ids) > MAX_TOKENS:
        raise ValueError(
            f"That text is {len(ids):,} tokens; the limit is {MAX_TOKENS}. Attention memory grows with "
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
        out = am.model(input_ids=torch.tensor([ids], device=device), output_attentions=True)
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise ValueError(
            f"Model {am.key!r} returned no attention weights: it has no attention layers, or its kernel does not expose them."
        )
    stacked = torch.stack([a[0] for a in attentions]).float()  # (L, H, T, T)
    logits = getattr(out, "logits", None) if am.causal else None
    return AttentionResult(
        model=am.key,
        tokens=token_labels(am, ids),
        token_ids=ids,
        attentions=stacked.cpu().numpy().astype(np.float16),
        causal=am.causal,
        next_logits=None if logits is None else logits[0, -1].float().cpu().numpy(),
    )


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


# --- render: numbers in, pictures and HTML out --------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _short(token: str, width: int = 12) -> str:
    token = token.replace("\n", "\\n")
    return token if len(token) <= width else token[: width - 1] + "…"


def _blues(matrix: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] → RGB uint8, white to dark blue (sqrt, so small weights stay visible)."""
    x = np.sqrt(np.clip(matrix.astype(np.float32), 0, 1))[..., None]
    white, blue = np.array([255, 255, 255]), np.array([8, 48, 107])
    return (white + (blue - white) * x).astype(np.uint8)


def heatmap_image(matrix: np.ndarray, tokens: list[str], title: str) -> Image.Image:
    """Rows = the token that attends (query), columns = the token attended to (key)."""
    n = len(tokens)
    cell = max(2, min(24, HEATMAP_PX // n))
    labelled = cell >= 8
    margin = 90 if labelled else 10
    font = _font(max(8, min(12, cell - 2)))
    grid = Image.fromarray(_blues(matrix)).resize((n * cell, n * cell), Image.NEAREST)
    image = Image.new("RGB", (margin + n * cell + 10, margin + n * cell + 30), "white")
    image.paste(grid, (margin, margin + 20))
    draw = ImageDraw.Draw(image)
    draw.text((margin, 2), title, font=_font(13), fill="black")
    if labelled:
        column_labels = Image.new("RGB", (margin, n * cell), "white")
        column_draw = ImageDraw.Draw(column_labels)
        for i, token in enumerate(tokens):
            draw.text((4, margin + 20 + i * cell), _short(token), font=font, fill="black")
            column_draw.text((4, i * cell), _short(token), font=font, fill="black")
        image.paste(column_labels.rotate(90, expand=True), (margin, 20))
    return image


@dataclasses.dataclass(frozen=True)
class GridLayout:
    cell: int  # pixels per thumbnail, gap included
    top: int  # pixels above the first row

    def locate(self, x: int, y: int, layers: int, heads: int) -> tuple[int, int] | None:
        """The (layer, head) of the thumbnail at pixel (x, y), or None between thumbnails."""
        layer, head = (y - self.top) // self.cell, (x - 30) // self.cell
        return (layer, head) if 0 <= layer < layers and 0 <= head < heads and x >= 30 and y >= self.top else None


GRID = GridLayout(cell=THUMB_PX + 4, top=20)


def model_view_image(result: AttentionResult) -> tuple[Image.Image, GridLayout]:
    """All layers × heads as thumbnails: rows are layers, columns heads."""
    layers, heads, _ = result.shape
    layout = GRID
    image = Image.new("RGB", (30 + heads * layout.cell, layout.top + layers * layout.cell), "white")
    draw = ImageDraw.Draw(image)
    font = _font(10)
    for head in range(heads):
        draw.text((30 + head * layout.cell + THUMB_PX // 2 - 4, 4), f"h{head}", font=font, fill="black")
    for layer in range(layers):
        draw.text((2, layout.top + layer * layout.cell + THUMB_PX // 2 - 5), f"L{layer}", font=font, fill="black")
        for head in range(heads):
            # shrink the (T, T) weights first, then colour the 48² thumbnail: 270 maps of 512² stay cheap
            weights = Image.fromarray(result.attentions[layer, head].astype(np.float32))  # mode "F"
            small = np.asarray(weights.resize((THUMB_PX, THUMB_PX), Image.BILINEAR))
            image.paste(Image.fromarray(_blues(small)), (30 + head * layout.cell, layout.top + layer * layout.cell))
    return image, layout


def head_colour(head: int, heads: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(head / max(heads, 1), 0.75, 0.85)
    return int(r * 255), int(g * 255), int(b * 255)


def head_view_html(result: AttentionResult, layer: int, token: int) -> str:
    """What one token attends to in every head of a layer: one colour per head, opacity = weight."""
    _, heads, _ = result.shape
    rows = []
    for head in range(heads):
        r, g, b = head_colour(head, heads)
        cells = "".join(
            f'<span title="{escape(_short(t, 30))}: {w:.1%}" style="background:rgba({r},{g},{b},{min(1.0, float(w) * 1.5):.2f});'
            f'padding:1px 2px;margin:1px;border-radius:3px;white-space:pre">{escape(_short(t, 10))}</span>'
            for t, w in zip(result.tokens, result.attentions[layer, head, token], strict=True)
        )
        rows.append(
            f'<div style="margin:2px 0"><b style="color:rgb({r},{g},{b});display:inline-block;width:3.2em">h{head}</b>{cells}</div>'
        )
    header = (
        f"<div>Layer {layer}: where <b>{escape(_short(result.tokens[token], 30))}</b> (token {token}) looks, "
        "in each head. Hover a token for its weight.</div>"
    )
    return f'<div class="head-view" style="font-size:0.85em;line-height:1.9">{header}{"".join(rows)}</div>'


def shaded_text_html(weights: np.ndarray, tokens: list[str], selected: int) -> str:
    """The text itself, each token shaded by the weight the selected token gives it."""
    spans = []
    for i, (token, weight) in enumerate(zip(tokens, weights, strict=True)):
        outline = "outline:2px solid #dc2626;" if i == selected else ""
        spans.append(
            f'<span class="att-tok" title="{float(weight):.1%}" style="background:rgba(37,99,235,{min(1.0, float(weight) * 2):.2f});'
            f'{outline}border-radius:3px;white-space:pre-wrap">{escape(token)}</span>'
        )
    return '<div class="shaded-text" style="line-height:2">' + "".join(spans) + "</div>"


def retrieval_html(r: Retrieval, tokens: list[str], token: int, top: int = 12) -> str:
    order = np.argsort(-r.weights)[:top]
    rows = "".join(
        f"<tr><td>{j}</td><td><code>{escape(_short(tokens[j], 20))}</code></td>"
        f"<td>{r.scores[j]:.3f}</td><td>{r.weights[j]:.4f}</td><td>{r.reported[j]:.4f}</td></tr>"
        for j in order
    )
    agree = "✓ matches" if r.max_difference < 1e-3 else "✗ differs from"
    return (
        f"<div>Query: token {token} <code>{escape(_short(tokens[token], 20))}</code>; head size d = {r.head_dim}; "
        f"reads key/value head {r.kv_head}.</div>"
        "<div>score = q·k / √d → softmax → weight; output = Σ weight × value "
        f"(a {r.head_dim}-vector, norm {np.linalg.norm(r.output):.3f}).</div>"
        f"<div><b>{agree}</b> the model's reported attention (largest difference {r.max_difference:.1e}).</div>"
        "<table><tr><th>key</th><th>token</th><th>q·k/√d</th><th>softmax weight</th><th>model reports</th></tr>"
        f"{rows}</table>"
    )


def next_token_html(rows: list[tuple[str, float, float]]) -> str:
    lines = []
    for token, model_p, sampling_p in rows:
        lines.append(
            f"<tr><td><code>{escape(repr(token))}</code></td>"
            f'<td><div style="background:#93c5fd;width:{model_p * 200:.0f}px;height:10px"></div>{model_p:.1%}</td>'
            f'<td><div style="background:#f59e0b;width:{sampling_p * 200:.0f}px;height:10px"></div>{sampling_p:.1%}</td></tr>'
        )
    return (
        '<table class="next-token"><tr><th>next token</th><th>model</th><th>after temperature / top-k / top-p</th></tr>'
        + "".join(lines)
        + "</table>"
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
    logits = 0 if result.next_logits is None else result.next_logits.nbytes
    return result.attentions.nbytes + logits + 64 * len(result.tokens)


def _model(choice: str) -> AttentionModel:
    """The cached eager-attention build, loaded on a model worker."""
    try:
        return compute.run(runtime.attention_model, choice)
    except Exception as exc:
        raise user_error(exc, "Loading the model") from None


def _attention_of(choice: str, text: str) -> AttentionResult:
    """Load and run the model on the text: the tab's model work, on a model worker."""
    return compute_attention(runtime.attention_model(choice), text)


def attention(text: str, model: str = "", layer: int = 0, head: int = 0) -> dict:
    """Tokens and attention weights of `text`. layer/head select one (T × T) map; -1 for both returns
    the whole (layers × heads × T × T) tensor when it is small enough."""
    model = default_model("attention") if model is None or model == "" else model  # anything else: resolve's message
    try:
        result = compute.run(_attention_of, model, text)
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


def run(model: str, text: str, layer: int, head: int, token: int, temperature: float, top_k: int, top_p: float):
    """Compute attention once, keep it in the result store (the session holds its key), and render every view."""
    try:
        result = compute.run(_attention_of, model, text)
        layers, heads, tokens = result.shape
        layer = min(check_int("layer", layer, 0, 10**6), layers - 1)
        head = min(check_int("head", head, 0, 10**6), heads - 1)
        token = tokens - 1
        views = compute.run(_views, result, layer, head, token, temperature, top_k, top_p)
        whole = compute.run(_whole, result)
        key = RESULTS.put(result, _nbytes(result))
    except Exception as exc:
        raise user_error(exc, "Attention") from None
    choices = [(f"{i}: {_short(t, 20)}", i) for i, t in enumerate(result.tokens)]
    return (
        key,
        gr.Slider(maximum=layers - 1, value=layer),
        gr.Slider(maximum=heads - 1, value=head),
        gr.Dropdown(choices=choices, value=token),
        f"**{result.model}** · {tokens} tokens · {layers} layers × {heads} heads · "
        + ("causal (each token sees only the past)" if result.causal else "bidirectional (tokens see both sides)"),
        *views,
        *whole,
    )


def _whole(result: AttentionResult) -> tuple[Image.Image, Image.Image]:
    """The views that depend only on the text: every head, and the rollout."""
    return model_view_image(result)[0], heatmap_image(rollout(result), result.tokens, "Rollout across all layers")


def _views(result: AttentionResult, layer, head, token, temperature, top_k, top_p) -> tuple:
    """The views that depend on the selection (no model call except the key/value recomputation)."""
    layer, head, token = check_index(result, layer, head, token)
    am = runtime.attention_model(result.model)
    heat = heatmap_image(result.attentions[layer, head], result.tokens, f"Layer {layer}, head {head}")
    mean = heatmap_image(head_mean(result, layer), result.tokens, f"Layer {layer}: mean over heads")
    shaded = shaded_text_html(result.attentions[layer, head, token], result.tokens, token)
    kv = retrieval_html(retrieval(am, result, layer, head, token), result.tokens, token)
    if result.next_logits is None:
        nxt = "<i>Bidirectional models don't predict a next token.</i>"
    else:
        nxt = next_token_html(next_token_rows(am, result.next_logits, temperature, top_k, top_p))
    return heat, head_view_html(result, layer, token), mean, shaded, kv, nxt


def render(key: str | None, layer, head, token, temperature, top_k, top_p):
    """Re-render the selection-dependent views from the session's kept result."""
    try:
        return compute.run(_views, _kept(key), layer, head, token, temperature, top_k, top_p)
    except Exception as exc:
        raise user_error(exc, "Attention") from None


def pick_from_grid(key: str | None, evt: gr.SelectData):
    """A click on the model view selects that layer and head."""
    if key is None:
        return gr.skip(), gr.skip()
    try:
        layers, heads, _ = _kept(key).shape
    except Exception as exc:
        raise user_error(exc, "Attention") from None
    where = GRID.locate(int(evt.index[0]), int(evt.index[1]), layers, heads)
    return where if where is not None else (gr.skip(), gr.skip())


@dataclasses.dataclass
class AttentionUI:
    """The Attention tab's components that other tabs link to (the chat's bridge runs ``run`` on them)."""

    model: gr.Dropdown
    text: gr.Textbox
    inputs: list  # what ``run`` takes
    outputs: list  # what ``run`` fills


def _selection_controls() -> list:
    """Layer, head and token: what the views look at."""
    with gr.Row():
        layer = gr.Slider(
            0, 29, 0, step=1, label="layer", info="Which layer (0 = closest to the input).", elem_id="attention-layer"
        )
        head = gr.Slider(
            0, 8, 0, step=1, label="head", info="Which query head of that layer.", elem_id="attention-head"
        )
        token = gr.Dropdown([], label="token", info="The token whose attention to inspect (the query).")
    return [layer, head, token]


def _view_tabs() -> tuple[list, list, list]:
    """The views: (selection-dependent views, text-only views, next-token sampling controls)."""
    with gr.Tabs():
        with gr.Tab("Heatmap"):
            heat = gr.Image(
                label="Rows attend to columns", type="pil", elem_id="attention-heatmap", buttons=["download"]
            )
        with gr.Tab("Head view"):
            head_view = gr.HTML(elem_id="attention-head-view")
        with gr.Tab("Model view"):
            gr.Markdown("Every layer (rows) × head (columns). Click one to open it in the other views.")
            grid = gr.Image(label="All heads", type="pil", elem_id="attention-model-view", interactive=False)
        with gr.Tab("Aggregates"):
            with gr.Row():
                mean = gr.Image(label="Mean over heads", type="pil")
                flow = gr.Image(label="Attention rollout", type="pil")
        with gr.Tab("Text"):
            shaded = gr.HTML(elem_id="attention-text-view")
        with gr.Tab("Key/value retrieval"):
            kv = gr.HTML(elem_id="attention-kv")
        with gr.Tab("Next token"):
            with gr.Row():
                temperature = gr.Slider(
                    0, 2, 1.0, step=0.05, label="temperature", info=f"0 (or below {MIN_TEMPERATURE:g}) = greedy"
                )
                top_k = gr.Slider(0, 100, 0, step=1, label="top_k", info="0 = no limit")
                top_p = gr.Slider(0.01, 1, 1.0, step=0.01, label="top_p")
            nxt = gr.HTML(elem_id="attention-next")
    return [heat, head_view, mean, shaded, kv, nxt], [grid, flow], [temperature, top_k, top_p]


def build_ui() -> AttentionUI:
    """The Attention tab."""
    rt = runtime.get()
    heavy = dict(concurrency_id="gpu", concurrency_limit=rt.concurrency, api_visibility="private")
    result = gr.State(None)  # the key of this session's result in RESULTS
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
    views, whole, sampling = _view_tabs()  # views change with the selection; whole depends only on the text
    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS)

    selection = [layer, head, token, *sampling]
    outputs = [result, layer, head, token, summary, *views, *whole]
    show.click(run, [model, text, *selection], outputs, **heavy)
    text.submit(run, [model, text, *selection], outputs, **heavy)
    for control in selection:  # user changes only (run sets these too, and renders itself)
        trigger = control.release if isinstance(control, gr.Slider) else control.input
        trigger(render, [result, *selection], views, **heavy)
    grid = whole[0]
    grid.select(pick_from_grid, result, [layer, head], api_visibility="private").then(
        render, [result, *selection], views, **heavy
    )
    gr.api(attention, api_name="attention", concurrency_id="gpu", concurrency_limit=rt.concurrency)
    return AttentionUI(model=model, text=text, inputs=[model, text, *selection], outputs=outputs)


if __name__ == "__main__":
    run_alone(build_ui, "Attention")
