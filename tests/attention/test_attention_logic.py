"""The attention tab's pure functions on tiny real models: a causal Llama with grouped-query
attention (4 query heads, 2 key/value heads) and a bidirectional BERT."""

import dataclasses
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from demos.attention import core as attention_core
from demos.attention import ui as attention_ui
from demos.attention import views
from shared.loaders import load_attention_model
from tests.tiny_models import spec

pytestmark = pytest.mark.fast

TEXT = "the cat sat on the mat and the dog is red ."


@pytest.fixture(scope="module")
def llama(tiny_llama_dir, tmp_path_factory):
    return load_attention_model(
        spec(tiny_llama_dir, task="attention"),
        device="cpu",
        dtype=torch.float32,
        cache_dir=tmp_path_factory.mktemp("c"),
    )


@pytest.fixture(scope="module")
def bert(tiny_bert_dir, tmp_path_factory):
    return load_attention_model(
        spec(tiny_bert_dir, task="attention"), device="cpu", dtype=torch.float32, cache_dir=tmp_path_factory.mktemp("c")
    )


@pytest.fixture(params=["llama", "bert"])
def am(request):
    return request.getfixturevalue(request.param)


def test_tensor_is_layers_heads_tokens_tokens_and_rows_sum_to_one(am):
    result = attention_core.compute_attention(am, TEXT)
    layers, heads, tokens = result.shape
    assert (layers, heads) == (2, 4) and tokens == len(result.tokens) == len(result.token_ids)
    assert result.attentions.shape == (2, 4, tokens, tokens)
    np.testing.assert_allclose(result.attentions.astype(np.float32).sum(-1), 1.0, atol=2e-3)  # float16 storage


def test_causal_is_zero_above_the_diagonal_and_bert_is_not(llama, bert):
    causal, both = attention_core.compute_attention(llama, TEXT), attention_core.compute_attention(bert, TEXT)
    assert causal.causal and not both.causal
    upper = np.triu(np.ones(causal.attentions.shape[-2:], dtype=bool), k=1)
    assert np.all(causal.attentions[..., upper] == 0)
    upper = np.triu(np.ones(both.attentions.shape[-2:], dtype=bool), k=1)
    assert np.all(both.attentions[..., upper].sum(-1) > 0)
    assert both.tokens[0] == "[CLS]" and both.tokens[-1] == "[SEP]"


@pytest.mark.parametrize("layer, head", [(0, 0), (1, 3), (1, 2)])
def test_qkv_recomputation_equals_reported_attention(am, layer, head):
    result = attention_core.compute_attention(am, TEXT)
    # Compare with the model's own float32 output, not the float16 copy kept for display.
    with torch.inference_mode():
        out = am.model(input_ids=torch.tensor([result.token_ids]), output_attentions=True)
    for token in (0, 4, len(result.tokens) - 1):
        r = attention_core.retrieval(am, result, layer, head, token)
        reported = out.attentions[layer][0, head, token].numpy()
        np.testing.assert_allclose(r.weights, reported, atol=1e-5)
        assert r.weights.sum() == pytest.approx(1.0, abs=1e-5)


def test_grouped_query_heads_share_key_value_heads(llama):
    result = attention_core.compute_attention(llama, TEXT)
    assert [attention_core.retrieval(llama, result, 0, h, 3).kv_head for h in range(4)] == [0, 0, 1, 1]


def test_rollout_and_mean_are_row_stochastic(am):
    result = attention_core.compute_attention(am, TEXT)
    np.testing.assert_allclose(attention_core.rollout(result).sum(-1), 1.0, atol=1e-3)
    np.testing.assert_allclose(attention_core.head_mean(result, 1).sum(-1), 1.0, atol=2e-3)


def last_logits(am, result):
    return attention_core.position_logits(am, result, len(result.tokens) - 1)


def test_next_token_panel_reshapes_the_distribution(llama):
    result = attention_core.compute_attention(llama, TEXT)
    logits = last_logits(llama, result)
    plain = attention_core.next_token_rows(llama, logits, 1.0, 0, 1.0)
    assert [p for _, p, _ in plain] == sorted((p for _, p, _ in plain), reverse=True)
    assert all(model_p == pytest.approx(sample_p) for _, model_p, sample_p in plain)
    greedy = attention_core.next_token_rows(llama, logits, 0.0, 0, 1.0)
    assert greedy[0][2] == 1.0 and all(s == 0 for _, _, s in greedy[1:])
    top2 = attention_core.next_token_rows(llama, logits, 1.0, 2, 1.0)
    assert sum(s for _, _, s in top2[:2]) == pytest.approx(1.0) and all(s == 0 for _, _, s in top2[2:])
    nucleus = attention_core.next_token_rows(llama, logits, 1.0, 0, 0.05)
    kept = [s for _, _, s in nucleus if s > 0]
    assert 1 <= len(kept) < len(nucleus)


@pytest.mark.parametrize(
    "text, match",
    [("", "empty"), ("  \n", "empty"), (None, "empty"), ("cat " * 600, "600 tokens"), ("x" * 30_000, "characters")],
)
def test_bad_text(llama, text, match):
    with pytest.raises(ValueError, match=match):
        attention_core.compute_attention(llama, text)


@pytest.mark.parametrize(
    "layer, head, token, match",
    [
        (2, 0, 0, "layer 2"),
        (0, 4, 0, "head 4"),
        (-1, 0, 0, "layer"),
        (0, 0, 999, "token"),
        ("x", 0, 0, "layer"),
        (0.5, 0, 0, "whole"),
    ],
)
def test_index_out_of_range(llama, layer, head, token, match):
    result = attention_core.compute_attention(llama, TEXT)
    with pytest.raises(ValueError, match=match):
        attention_core.check_index(result, layer, head, token)


def test_views_render(am):
    result = attention_core.compute_attention(am, TEXT)
    n = len(result.tokens)
    heat = views.heatmap_svg(result.attentions[0, 0], result.tokens, "t")
    assert heat.count("<title>") == np.count_nonzero(result.attentions[0, 0]) + 1  # + the background's
    grid, layout = views.model_view_image(result)
    assert layout.locate(30 + layout.cell * 3 + 5, layout.top + layout.cell + 5, 2, 4) == (1, 3)
    assert layout.locate(5, 5, 2, 4) is None
    wide = views.grid_layout(30, 9)  # a deep model: layers across, so the view is a strip, not a tall column
    assert wide.layers_across and wide.locate(30 + wide.cell * 2 + 5, wide.top + wide.cell * 3 + 5, 30, 9) == (2, 3)
    assert not layout.layers_across and grid.size == (30 + 4 * layout.cell, layout.top + 2 * layout.cell)
    assert views.head_view_html(result, 1, 2).count("<b style") == 4
    assert views.shaded_text_html(result.attentions[0, 0, 2], result.tokens, 2).count("att-tok") == n
    html = views.retrieval_html(attention_core.retrieval(am, result, 0, 1, 2), result.tokens, 2)
    assert "✓ matches" in html


@pytest.mark.parametrize("builder", ["build_tiny_gpt2", "build_tiny_distilbert"])
def test_qkv_recomputation_for_other_layouts(builder, tmp_path):
    """GPT-2's fused c_attn and DistilBERT's q_lin/k_lin/v_lin are recomputed exactly too."""
    from tests import tiny_models

    path = getattr(tiny_models, builder)(tmp_path / builder)
    am = load_attention_model(spec(path), device="cpu", dtype=torch.float32, cache_dir=tmp_path)
    result = attention_core.compute_attention(am, TEXT)
    assert result.causal == (builder == "build_tiny_gpt2")
    with torch.inference_mode():
        out = am.model(input_ids=torch.tensor([result.token_ids]), output_attentions=True)
    for layer, head, token in [(0, 0, 3), (1, 3, len(result.tokens) - 1)]:
        r = attention_core.retrieval(am, result, layer, head, token)
        np.testing.assert_allclose(r.weights, out.attentions[layer][0, head, token].numpy(), atol=1e-5)
    if result.causal:  # GPT-2's LM head on its kept hidden states gives its scores after any token
        assert result.head_inputs is not None
        np.testing.assert_allclose(attention_core.position_logits(am, result, 2), out.logits[0, 2], atol=1e-5)


@pytest.mark.parametrize("temperature", [1e-300, 5e-324, 1e-4])
def test_temperatures_too_small_to_sample_with_are_greedy(llama, temperature):
    logits = last_logits(llama, attention_core.compute_attention(llama, TEXT))
    greedy = attention_core.next_token_rows(llama, logits, 0.0, 0, 1.0)
    assert attention_core.next_token_rows(llama, logits, temperature, 5, 0.9) == greedy


@pytest.mark.parametrize("text", ["the cat \ud800", "\udc00 sat"])
def test_a_lone_surrogate_gets_a_clear_message(llama, text):
    with pytest.raises(ValueError, match="lone surrogate"):
        attention_core.compute_attention(llama, text)


# --- what the screen shows is true (issue 13) -----------------------------------------------------


def svg_of(html: str) -> ET.Element:
    return ET.fromstring(html[html.index("<svg") : html.index("</svg>") + len("</svg>")])


def titles(html: str) -> list[str]:
    """The hover text of every titled rect of a heatmap."""
    return [rect.find("title").text for rect in svg_of(html).iter("rect") if rect.find("title") is not None]


def test_a_heatmap_cell_names_its_row_token_column_token_and_weight_on_hover():
    tokens = ["The", " cat", " <sat>"]
    weights = np.array([[1, 0, 0], [0.25, 0.75, 0], [0.5, 0.125, 0.375]], np.float32)
    html = views.heatmap_svg(weights, tokens, "Layer 3, head 1")
    assert "<b>Layer 3, head 1</b>" in html and 'class="hm-readout"' in html
    assert sorted(titles(html)) == sorted(
        [
            "weight 0",  # the background: the cells not drawn (a causal model's future)
            '0 "The" → 0 "The": 1.0000',
            '1 " cat" → 0 "The": 0.2500',
            '1 " cat" → 1 " cat": 0.7500',
            '2 " <sat>" → 0 "The": 0.5000',
            '2 " <sat>" → 1 " cat": 0.1250',
            '2 " <sat>" → 2 " <sat>": 0.3750',
        ]
    )
    # each titled cell sits where its row (query) and column (key) are: x = column, row group at y = row
    for row in svg_of(html).iter("g"):
        if row.get("class") == "hm-row":
            i = int(row.get("transform").split(",")[1].rstrip(")"))
            for rect in row.iter("rect"):
                assert (
                    rect.find("title").text.startswith(f'{i} "') and f'→ {rect.get("x")} "' in rect.find("title").text
                )


def test_a_heatmap_of_128_tokens_stays_small_and_quick():
    import time

    tokens = [f" w{i}" for i in range(views.HOVER_MAX_TOKENS)]
    rng = np.random.default_rng(0)
    causal = np.tril(rng.random((len(tokens), len(tokens)))).astype(np.float32)
    causal /= causal.sum(-1, keepdims=True)
    start = time.perf_counter()
    html = views.heatmap_svg(causal, tokens, "t")
    assert time.perf_counter() - start < 1.0
    assert len(titles(html)) == np.count_nonzero(causal) + 1 and len(html) < 1_000_000


def test_past_128_tokens_each_row_names_its_largest_weights():
    n = views.HOVER_MAX_TOKENS + 2
    tokens = [f"t{i}" for i in range(n)]
    weights = np.eye(n, dtype=np.float32) * 0.6
    weights[:, 0] += 0.4
    weights[0, 0] = 1.0
    html = views.heatmap_svg(weights, tokens, "x")
    assert "<image" in html and len(titles(html)) == n + 1
    assert '5 "t5" gives most weight to 5 "t5" 0.6000, 0 "t0" 0.4000' in titles(html)
    assert "hover a row" in html


def test_rollout_explains_the_attention_sink_and_can_leave_it_out_of_the_colours():
    tokens = ["<s>", "a", "b", "c"]
    flow = np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0.8, 0.15, 0.05, 0], [0.85, 0.05, 0.04, 0.06]], np.float32)
    assert views.sink_share(flow) == pytest.approx((0.9 + 0.8 + 0.85) / 3)
    plain = views.cell_colours(flow, views.scale_for(flow, leave_out_first=False))
    rescaled = views.cell_colours(flow, views.scale_for(flow, leave_out_first=True))
    dark = (8, 48, 107)
    assert tuple(plain[0, 0]) == dark and plain[2, 1].min() > 150  # with the sink: the rest is pale
    assert tuple(rescaled[2, 1]) == dark  # left out: the largest other weight (0.15) is the darkest blue
    assert all(tuple(colour) == views.SINK_GREY for colour in rescaled[:, 0])
    html = views.rollout_html(flow, tokens, leave_out_first=True)
    assert "attention sink" in html and "<b>85%</b>" in html and "darkest blue = 0.1500" in html
    assert '1 "a" → 0 "&lt;s&gt;": 0.9000' not in titles(html)  # titles are text: unescaped once
    assert '1 "a" → 0 "<s>": 0.9000' in titles(html)  # the hover keeps the true weights
    assert "left out" not in views.rollout_html(flow, tokens, leave_out_first=False)
    assert [views._percent(x) for x in (0.999, 1.0, 0.004, 0.0, 0.5)] == ["over 99%", "100%", "under 1%", "0%", "50%"]


def test_rollout_of_a_real_model_explains_its_sink(llama):
    result = attention_core.compute_attention(llama, TEXT)
    np.testing.assert_array_equal(result.flow, attention_core.rollout(result))
    assert f"<b>{views.sink_share(result.flow):.0%}</b>" in views.rollout_html(result.flow, result.tokens, False)


def test_next_token_scores_are_the_models_after_every_token(llama):
    result = attention_core.compute_attention(llama, TEXT)
    assert result.head_inputs is not None and result.head_inputs.shape[0] == len(result.tokens)
    with torch.inference_mode():
        out = llama.model(input_ids=torch.tensor([result.token_ids]))
    refit = dataclasses.replace(result, head_inputs=None)  # the path for a model that reworks its scores
    for token in range(len(result.tokens)):
        np.testing.assert_allclose(
            attention_core.position_logits(llama, result, token), out.logits[0, token], atol=1e-5
        )
        np.testing.assert_allclose(attention_core.position_logits(llama, refit, token), out.logits[0, token], atol=1e-5)
    after = [
        attention_core.next_token_rows(llama, attention_core.position_logits(llama, result, t), 1.0, 0, 1.0)
        for t in (1, 5)
    ]
    assert after[0] != after[1]  # what is predicted depends on where


def test_a_model_whose_scores_are_not_its_heads_output_predicts_by_running_the_text(llama):
    """A real forward hook rescales the model's scores (as logit scaling or soft-capping models do): the
    kept hidden states would no longer give them, so none are kept and the panel runs the model instead."""
    handle = llama.model.register_forward_hook(lambda module, args, out: out.__setitem__("logits", out.logits * 2))
    try:
        result = attention_core.compute_attention(llama, TEXT)
        with torch.inference_mode():
            scaled = llama.model(input_ids=torch.tensor([result.token_ids])).logits[0]
        assert result.head_inputs is None
        np.testing.assert_allclose(attention_core.position_logits(llama, result, 3), scaled[3], atol=1e-5)
    finally:
        handle.remove()


def test_the_next_token_panel_says_after_which_token_it_predicts():
    tokens = ["The", " cat", " sat"]
    assert views.next_token_heading(tokens, 1) == "After token 1 <code>&#x27; cat&#x27;</code> the model predicts:"
    assert views.next_token_heading(tokens, 2).endswith("(the end of the text) the model predicts:")
    html = views.next_token_html([(" mat", 0.5, 0.6)], views.next_token_heading(tokens, 1))
    assert html.index("After token 1") < html.index("<table") and html.count("<tr>") == 2


def test_the_tabs_wiring_typed_numbers_progress_and_badges():
    """Pure wiring, read from the built tab: every slider carries the class the tab's script (installed
    by the heatmap) watches, its release always renders the last value, and every event shows progress
    (and a failure its Error badge) on one set of components, so any later good request clears them all."""
    import gradio as gr

    from shared import runtime
    from tests.helpers import app_settings

    runtime.configure(app_settings())
    with gr.Blocks() as demo:
        ui = attention_ui.build_ui()
    sliders = [c for c in ui.inputs if isinstance(c, gr.Slider)]
    assert len(sliders) == 5 and all("attention-number" in c.elem_classes for c in sliders)
    assert ".attention-number input[type=number]" in views.CONTROLS_JS and "pointerup" in views.CONTROLS_JS
    heatmap = next(c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "attention-heatmap")
    assert heatmap.js_on_load == views.CONTROLS_JS
    events = [fn for fn in demo.fns.values() if fn.api_name != "attention"]
    progress = {block._id for block in ui.progress}
    assert len(progress) == 1 + 6 + 2  # the summary, the six selection views, the model view and rollout
    assert all({block._id for block in fn.show_progress_on} == progress for fn in events), [fn.name for fn in events]
    renders = [fn for fn in events if fn.name == "render"]
    assert len(renders) == 7 and all(fn.trigger_mode == "always_last" for fn in renders[:6])


def test_picking_another_model_says_what_is_shown_and_what_will_run():
    assert (
        attention_ui.model_picked(None, "gpt2") == "Picked `gpt2`: it can't load now, offline (HF_HUB_OFFLINE is set)."
    )
    assert attention_ui.model_picked(None, "smollm2-135m-instruct") == (
        "Picked `smollm2-135m-instruct`: press **Show attention** to run it."
    )
    with pytest.raises(Exception, match="model must be text"):
        attention_ui.model_picked(None, 42)
