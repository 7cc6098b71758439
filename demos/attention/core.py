"""See attention: every layer and head of a real transformer, on your own text.

For each token, attention compares its *query* with the *keys* of the tokens it may look at (in a
causal LM, those before it), turns the scaled dot products into weights with a softmax, and mixes
those tokens' *values* with the weights: a soft key/value lookup. Each head does this with its own
projections, so heads are free to look for different relations; layers stack them.

This tab shows the weights the model itself reports (models are loaded with eager attention,
since fused SDPA kernels return none), recomputes one head's lookup from the layer's own Q/K/V
projections to show it is exactly that, and shows what the model predicts after the selected token.
The views themselves (heatmaps you can hover, the rollout and its attention sink) are in
``demos/attention/views.py``.

Run alone: ``python -m demos.attention``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from pathlib import Path

import numpy as np
import torch

from shared import runtime
from shared.loaders import AttentionModel
from shared.validation import check_float, check_int, check_number, check_text

# --- knobs ----------------------------------------------------------------------------------

TEXT = "The cat sat on the mat because it was tired. It slept all afternoon."
MAX_TOKENS = 512  # attention memory grows with layers · heads · tokens²
MAX_API_VALUES = 4_000_000  # the whole tensor over the API only up to this many numbers
MAX_TEXT_CHARS = 20_000
TOP_NEXT = 10  # rows in the next-token panel
MIN_TEMPERATURE = 1e-3  # below this the next-token panel treats temperature as 0 (greedy), as the chat does

HOW_IT_WORKS = (Path(__file__).parent / "how_it_works.md").read_text()  # also chat's retrieval corpus


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
