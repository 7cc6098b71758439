"""The /attention endpoint of the launched app, over gradio_client, on tiny real models."""

import numpy as np
import pytest
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.fast

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

    from demos.attention import ui as attention

    out = attention.run("tiny-chat", TEXT, 1, 2, 0, 1.0, 0, 1.0)
    key, shown, summary = out[0], out[1], out[6]
    assert isinstance(key, str) and len(key) < 40 and "tiny-chat" in summary
    kept = attention.RESULTS.get(key)
    assert kept.shape[:2] == (2, 4) and attention.RESULTS.used_bytes() >= kept.attentions.nbytes
    heat, head_view, *_, now_shown = attention.render(key, shown, 1, 2, 3, 1.0, 0, 1.0)
    assert "<b>Layer 1, head 2</b>" in heat and head_view.count("<b style") == 4
    assert now_shown == (key, 1, 2, 3, 1.0, 0, 1.0)
    with pytest.raises(gr.Error, match="Press Show attention first"):
        attention.render(None, None, 1, 2, 3, 1.0, 0, 1.0)
    with pytest.raises(gr.Error, match="no longer kept on the server .* run it again"):
        attention.render("dropped-or-made-up", None, 1, 2, 3, 1.0, 0, 1.0)
    with pytest.raises(gr.Error, match="run it again"):
        attention.pick_from_grid("dropped-or-made-up", gr.SelectData(None, {"index": [40, 30], "value": None}))
    assert attention.pick_from_grid(key, gr.SelectData(None, {"index": [30 + 52 + 5, 20 + 5], "value": None})) == (0, 1)


def test_a_view_already_on_screen_is_not_drawn_again(launched_app):
    """A typed number is sent on a pause and again on Enter or blur; the second finds the views showing it
    and changes nothing (no second render), while any other selection renders."""
    import gradio as gr

    from demos.attention import ui as attention

    out = attention.run("tiny-chat", TEXT, 1, 2, 0, 1.0, 0, 1.0)
    key, shown = out[0], out[1]
    assert shown == (key, 1, 2, len(out[4].choices) - 1, 1.0, 0, 1.0)
    assert attention.render(key, shown, *shown[1:]) == (gr.skip(),) * 7
    moved = attention.render(key, shown, 0, 2, shown[3], 1.0, 0, 1.0)
    assert "<b>Layer 0, head 2</b>" in moved[0] and moved[-1] == (key, 0, 2, shown[3], 1.0, 0, 1.0)
    assert attention.render(key, moved[-1], 0, 2, shown[3], 1.0, 0, 1.0) == (gr.skip(),) * 7
    with pytest.raises(gr.Error, match="layer 5 is out of range"):  # a repeat is checked like any request
        attention.render(key, moved[-1], 5, 2, shown[3], 1.0, 0, 1.0)


def test_the_next_token_panel_predicts_after_the_selected_token(launched_app):
    from demos.attention import ui as attention

    out = attention.run("tiny-chat", TEXT, 0, 0, 0, 1.0, 0, 1.0)
    key, shown, tokens = out[0], out[1], attention.RESULTS.get(out[0]).tokens
    last = out[7 + 5]  # the next-token view of the run: after the last token
    assert f"After token {len(tokens) - 1} <code>&#x27;{tokens[-1]}&#x27;</code> (the end of the text)" in last
    panels = {t: attention.render(key, shown, 0, 0, t, 1.0, 0, 1.0)[5] for t in (1, 4)}
    assert f"After token 1 <code>&#x27;{tokens[1]}&#x27;</code> the model predicts" in panels[1]
    assert f"After token 4 <code>&#x27;{tokens[4]}&#x27;</code> the model predicts" in panels[4]
    assert panels[1].split("</div>", 1)[1] != panels[4].split("</div>", 1)[1]  # other predictions
    bert = attention.run("tiny-bert", TEXT, 0, 0, 0, 1.0, 0, 1.0)
    assert "don't predict a next token" in attention.render(bert[0], None, 0, 0, 2, 1.0, 0, 1.0)[5]


def test_rollout_view_and_model_pick(launched_app):
    import gradio as gr

    from demos.attention import ui as attention

    out = attention.run("tiny-chat", TEXT, 0, 0, 0, 1.0, 0, 1.0)
    key, sink, rollout = out[0], out[5], out[-1]
    assert sink is False and "attention sink" in rollout and "left out" not in rollout
    assert "first token (grey) left out" in attention.rollout_view(key, True)
    assert attention.rollout_view(key, False) == rollout
    assert attention.rollout_view(None, True) == gr.skip()
    with pytest.raises(gr.Error, match="true or false"):
        attention.rollout_view(key, "yes")
    picked = attention.model_picked(key, "tiny-bert")
    assert picked.startswith("Shown: **tiny-chat** ·") and picked.endswith(
        "Picked `tiny-bert`: press **Show attention** to run it."
    )
    assert attention.model_picked("expired", "tiny-bert") == "Picked `tiny-bert`: press **Show attention** to run it."


def test_the_store_keeps_results_within_its_byte_budget(launched_app, monkeypatch):
    """Each run's result goes to one store with a byte budget: the oldest are dropped (and say so),
    the newest render, and the memory held stays under the budget however many sessions run."""
    import gradio as gr

    from demos.attention import ui as attention
    from shared.results import ResultStore

    one = attention.RESULTS.get(attention.run("tiny-chat", f"a {TEXT}", 0, 0, 0, 1.0, 0, 1.0)[0])
    size = attention._nbytes(one)
    monkeypatch.setattr(attention, "RESULTS", ResultStore(max_bytes=3 * size))
    texts = [f"{word} {TEXT}" for word in ("a", "an", "this", "that", "it", "the")]  # as many tokens each
    keys = [attention.run("tiny-chat", text, 0, 0, 0, 1.0, 0, 1.0)[0] for text in texts]
    assert len(attention.RESULTS) == 3 and attention.RESULTS.used_bytes() <= 3 * size
    with pytest.raises(gr.Error, match="run it again"):
        attention.render(keys[0], None, 0, 0, 0, 1.0, 0, 1.0)
    assert "<svg" in attention.render(keys[-1], None, 0, 0, 0, 1.0, 0, 1.0)[0]
