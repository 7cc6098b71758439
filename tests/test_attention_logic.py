"""The attention tab's pure functions on tiny real models: a causal Llama with grouped-query
attention (4 query heads, 2 key/value heads) and a bidirectional BERT."""

import numpy as np
import pytest
import torch

from demos import attention
from shared.loaders import load_attention_model
from tests.tiny_models import spec

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
    result = attention.compute_attention(am, TEXT)
    layers, heads, tokens = result.shape
    assert (layers, heads) == (2, 4) and tokens == len(result.tokens) == len(result.token_ids)
    assert result.attentions.shape == (2, 4, tokens, tokens)
    np.testing.assert_allclose(result.attentions.astype(np.float32).sum(-1), 1.0, atol=2e-3)  # float16 storage


def test_causal_is_zero_above_the_diagonal_and_bert_is_not(llama, bert):
    causal, both = attention.compute_attention(llama, TEXT), attention.compute_attention(bert, TEXT)
    assert causal.causal and not both.causal
    upper = np.triu(np.ones(causal.attentions.shape[-2:], dtype=bool), k=1)
    assert np.all(causal.attentions[..., upper] == 0)
    upper = np.triu(np.ones(both.attentions.shape[-2:], dtype=bool), k=1)
    assert np.all(both.attentions[..., upper].sum(-1) > 0)
    assert both.tokens[0] == "[CLS]" and both.tokens[-1] == "[SEP]"


@pytest.mark.parametrize("layer, head", [(0, 0), (1, 3), (1, 2)])
def test_qkv_recomputation_equals_reported_attention(am, layer, head):
    result = attention.compute_attention(am, TEXT)
    # Compare with the model's own float32 output, not the float16 copy kept for display.
    with torch.inference_mode():
        out = am.model(input_ids=torch.tensor([result.token_ids]), output_attentions=True)
    for token in (0, 4, len(result.tokens) - 1):
        r = attention.retrieval(am, result, layer, head, token)
        reported = out.attentions[layer][0, head, token].numpy()
        np.testing.assert_allclose(r.weights, reported, atol=1e-5)
        assert r.weights.sum() == pytest.approx(1.0, abs=1e-5)


def test_grouped_query_heads_share_key_value_heads(llama):
    result = attention.compute_attention(llama, TEXT)
    assert [attention.retrieval(llama, result, 0, h, 3).kv_head for h in range(4)] == [0, 0, 1, 1]


def test_rollout_and_mean_are_row_stochastic(am):
    result = attention.compute_attention(am, TEXT)
    np.testing.assert_allclose(attention.rollout(result).sum(-1), 1.0, atol=1e-3)
    np.testing.assert_allclose(attention.head_mean(result, 1).sum(-1), 1.0, atol=2e-3)


def test_next_token_panel_reshapes_the_distribution(llama):
    result = attention.compute_attention(llama, TEXT)
    plain = attention.next_token_rows(llama, result.next_logits, 1.0, 0, 1.0)
    assert [p for _, p, _ in plain] == sorted((p for _, p, _ in plain), reverse=True)
    assert all(model_p == pytest.approx(sample_p) for _, model_p, sample_p in plain)
    greedy = attention.next_token_rows(llama, result.next_logits, 0.0, 0, 1.0)
    assert greedy[0][2] == 1.0 and all(s == 0 for _, _, s in greedy[1:])
    top2 = attention.next_token_rows(llama, result.next_logits, 1.0, 2, 1.0)
    assert sum(s for _, _, s in top2[:2]) == pytest.approx(1.0) and all(s == 0 for _, _, s in top2[2:])
    nucleus = attention.next_token_rows(llama, result.next_logits, 1.0, 0, 0.05)
    kept = [s for _, _, s in nucleus if s > 0]
    assert 1 <= len(kept) < len(nucleus)


@pytest.mark.parametrize(
    "text, match",
    [("", "empty"), ("  \n", "empty"), (None, "empty"), ("cat " * 600, "600 tokens"), ("x" * 30_000, "characters")],
)
def test_bad_text(llama, text, match):
    with pytest.raises(ValueError, match=match):
        attention.compute_attention(llama, text)


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
    result = attention.compute_attention(llama, TEXT)
    with pytest.raises(ValueError, match=match):
        attention.check_index(result, layer, head, token)


def test_views_render(am):
    result = attention.compute_attention(am, TEXT)
    n = len(result.tokens)
    heat = attention.heatmap_image(result.attentions[0, 0], result.tokens, "t")
    assert heat.width > n and heat.height > n
    grid, layout = attention.model_view_image(result)
    assert layout.locate(30 + layout.cell * 3 + 5, layout.top + layout.cell + 5, 2, 4) == (1, 3)
    assert layout.locate(5, 5, 2, 4) is None
    assert attention.head_view_html(result, 1, 2).count("<b style") == 4
    assert attention.shaded_text_html(result.attentions[0, 0, 2], result.tokens, 2).count("att-tok") == n
    html = attention.retrieval_html(attention.retrieval(am, result, 0, 1, 2), result.tokens, 2)
    assert "✓ matches" in html


@pytest.mark.parametrize("builder", ["build_tiny_gpt2", "build_tiny_distilbert"])
def test_qkv_recomputation_for_other_layouts(builder, tmp_path):
    """GPT-2's fused c_attn and DistilBERT's q_lin/k_lin/v_lin are recomputed exactly too."""
    from tests import tiny_models

    path = getattr(tiny_models, builder)(tmp_path / builder)
    am = load_attention_model(spec(path), device="cpu", dtype=torch.float32, cache_dir=tmp_path)
    result = attention.compute_attention(am, TEXT)
    assert result.causal == (builder == "build_tiny_gpt2")
    with torch.inference_mode():
        out = am.model(input_ids=torch.tensor([result.token_ids]), output_attentions=True)
    for layer, head, token in [(0, 0, 3), (1, 3, len(result.tokens) - 1)]:
        r = attention.retrieval(am, result, layer, head, token)
        np.testing.assert_allclose(r.weights, out.attentions[layer][0, head, token].numpy(), atol=1e-5)


@pytest.mark.parametrize("temperature", [1e-300, 5e-324, 1e-4])
def test_temperatures_too_small_to_sample_with_are_greedy(llama, temperature):
    result = attention.compute_attention(llama, TEXT)
    greedy = attention.next_token_rows(llama, result.next_logits, 0.0, 0, 1.0)
    assert attention.next_token_rows(llama, result.next_logits, temperature, 5, 0.9) == greedy


@pytest.mark.parametrize("text", ["the cat \ud800", "\udc00 sat"])
def test_a_lone_surrogate_gets_a_clear_message(llama, text):
    with pytest.raises(ValueError, match="lone surrogate"):
        attention.compute_attention(llama, text)
