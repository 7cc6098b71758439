"""The /attention endpoint of the launched app, over gradio_client, on tiny real models."""

import numpy as np
import pytest
from gradio_client.exceptions import AppError

TEXT = "the cat sat on the mat and the dog is red ."


def call(client, **kw):
    return client.predict(**{"text": TEXT, "model": "tiny-chat", "layer": 1, "head": 2, **kw}, api_name="/attention")


def test_one_head_of_a_causal_model(client):
    out = call(client)
    n = len(out["tokens"])
    weights = np.array(out["attention"])
    assert (out["layers"], out["heads"], out["causal"]) == (2, 4, True) and weights.shape == (n, n)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-3)
    assert np.all(weights[np.triu_indices(n, 1)] == 0)


def test_whole_tensor_of_a_bidirectional_model(client):
    out = call(client, model="tiny-bert", layer=-1, head=-1)
    weights = np.array(out["attention"])
    n = len(out["tokens"])
    assert not out["causal"] and weights.shape == (2, 4, n, n)
    assert out["tokens"][0] == "[CLS]"
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-3)


BAD = [
    (dict(text=""), "empty"),
    (dict(text="   "), "empty"),
    (dict(text="cat " * 600), "600 tokens"),
    (dict(layer=2), "layer 2 is out of range"),
    (dict(head=7), "head 7 is out of range"),
    (dict(layer=-3), "layer"),
    (dict(layer="two"), "layer"),
    (dict(model="no-such-model"), "Unknown model"),
    (dict(model="broken-chat"), "failed to load"),
    (dict(model="tiny-mamba"), "no attention weights"),
]


@pytest.mark.parametrize("bad, message", BAD, ids=[m for _, m in BAD])
def test_bad_input_gets_a_clear_message_and_the_next_request_works(client, bad, message):
    with pytest.raises(AppError, match=message) as info:
        call(client, **bad)
    assert "Traceback" not in str(info.value) and "/tmp" not in str(info.value)
    assert call(client)["tokens"]


MODELS = [(42, "catalog key \\(text\\), got int"), (["tiny-chat"], "catalog key \\(text\\), got list")]


@pytest.mark.parametrize("model, message", MODELS, ids=["int", "list"])
def test_a_model_that_is_not_text_gets_a_clear_message(client, model, message):
    with pytest.raises(AppError, match=message):
        call(client, model=model)


def test_a_lone_surrogate_in_raw_json_gets_a_clear_message(app_url):
    """gradio_client cannot even encode one; raw JSON can (\\ud800), and gets the message."""
    import json

    import httpx

    body = json.dumps({"data": ["the cat \ud800 sat", "tiny-chat", 0, 0]})  # ensure_ascii: \\ud800 on the wire
    with httpx.Client(base_url=app_url, timeout=30) as http:
        event = http.post("/gradio_api/call/attention", content=body, headers={"content-type": "application/json"})
        stream = http.get(f"/gradio_api/call/attention/{event.json()['event_id']}").text
    assert "event: error" in stream and "invalid character (a lone surrogate)" in stream


# --- the Attention tab's handler: the session keeps a key, the result lives in a bounded store -------


def test_the_session_keeps_only_a_key_and_views_render_from_the_store(launched_app):
    import gradio as gr

    from demos import attention

    key, *_, summary = attention.run("tiny-chat", TEXT, 1, 2, 0, 1.0, 0, 1.0)[:5]
    assert isinstance(key, str) and len(key) < 40 and "tiny-chat" in summary
    kept = attention.RESULTS.get(key)
    assert kept.shape[:2] == (2, 4) and attention.RESULTS.used_bytes() >= kept.attentions.nbytes
    heat, head_view, *_ = attention.render(key, 1, 2, 3, 1.0, 0, 1.0)
    assert heat.width > 0 and head_view.count("<b style") == 4
    with pytest.raises(gr.Error, match="Press Show attention first"):
        attention.render(None, 1, 2, 3, 1.0, 0, 1.0)
    with pytest.raises(gr.Error, match="no longer kept on the server .* run it again"):
        attention.render("dropped-or-made-up", 1, 2, 3, 1.0, 0, 1.0)
    with pytest.raises(gr.Error, match="run it again"):
        attention.pick_from_grid("dropped-or-made-up", gr.SelectData(None, {"index": [40, 30], "value": None}))
    assert attention.pick_from_grid(key, gr.SelectData(None, {"index": [30 + 52 + 5, 20 + 5], "value": None})) == (0, 1)


def test_the_store_keeps_results_within_its_byte_budget(launched_app, monkeypatch):
    """Each run's result goes to one store with a byte budget: the oldest are dropped (and say so),
    the newest render, and the memory held stays under the budget however many sessions run."""
    import gradio as gr

    from demos import attention
    from shared.results import ResultStore

    one = attention.RESULTS.get(attention.run("tiny-chat", f"a {TEXT}", 0, 0, 0, 1.0, 0, 1.0)[0])
    size = attention._nbytes(one)
    monkeypatch.setattr(attention, "RESULTS", ResultStore(max_bytes=3 * size))
    texts = [f"{word} {TEXT}" for word in ("a", "an", "this", "that", "it", "the")]  # as many tokens each
    keys = [attention.run("tiny-chat", text, 0, 0, 0, 1.0, 0, 1.0)[0] for text in texts]
    assert len(attention.RESULTS) == 3 and attention.RESULTS.used_bytes() <= 3 * size
    with pytest.raises(gr.Error, match="run it again"):
        attention.render(keys[0], 0, 0, 0, 1.0, 0, 1.0)
    assert attention.render(keys[-1], 0, 0, 0, 1.0, 0, 1.0)[0].width > 0
