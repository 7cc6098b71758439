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
