"""The latent-sampling endpoints of the launched app over gradio_client."""

import math

import numpy as np
import pytest
from gradio_client.exceptions import AppError


def test_sample_latents_same_seed_same_images(client):
    a = client.predict(model="digits-vae", seed=3, count=4, scale=1.0, api_name="/sample_latents")
    b = client.predict(model="digits-vae", seed=3, count=4, scale=1.0, api_name="/sample_latents")
    c = client.predict(model="digits-vae", seed=4, count=4, scale=1.0, api_name="/sample_latents")
    images = np.array(a["images"])
    assert images.shape == (4, 1, 16, 16) and 0 <= images.min() and images.max() <= 1
    assert a == b and a["images"] != c["images"]


def test_given_latents_are_decoded(client):
    z = [[0.0] * 8, [1.0] * 8]
    out = client.predict(model="digits-vae", latents=z, api_name="/sample_latents")
    assert out["latents"] == z and np.array(out["images"]).shape == (2, 1, 16, 16)


def test_interpolate_slerp_keeps_endpoints(client):
    a, b = [1.0] + [0.0] * 7, [0.0, 1.0] + [0.0] * 6
    out = client.predict(model="digits-vae", a=a, b=b, steps=5, kind="slerp", api_name="/interpolate")
    np.testing.assert_allclose(out["latents"][0], a, atol=1e-6)
    np.testing.assert_allclose(out["latents"][-1], b, atol=1e-6)
    np.testing.assert_allclose(out["norms"], 1.0, atol=1e-5)  # a great circle on the unit sphere
    lerp = client.predict(model="digits-vae", a=a, b=b, steps=5, kind="lerp", api_name="/interpolate")
    assert lerp["norms"][2] == pytest.approx(math.sqrt(0.5), abs=1e-5)


def test_traverse(client):
    out = client.predict(model="digits-vae", seed=0, dims=[0, 5], span=3.0, steps=5, api_name="/traverse")
    assert out["dims"] == [0, 5] and np.array(out["images"]).shape == (10, 1, 16, 16)


BAD = [
    ("/sample_latents", dict(latents=[[1e30] * 8]), "within"),
    ("/sample_latents", dict(latents=[["NaN"] * 8]), "numbers|NaN"),
    ("/sample_latents", dict(latents=[[0.0] * 5]), "8 numbers"),
    ("/sample_latents", dict(count=10**5), "count"),
    ("/sample_latents", dict(count=0), "count"),
    ("/sample_latents", dict(seed=-1), "seed"),
    ("/sample_latents", dict(scale=1e9), "scale"),
    ("/sample_latents", dict(model="no-such-model"), "Unknown model"),
    ("/interpolate", dict(a=[0.0] * 8, b=[1.0] * 8, steps=10**6), "steps"),
    ("/interpolate", dict(a=[0.0] * 8, b=[1.0] * 8, kind="cubic"), "kind"),
    ("/interpolate", dict(a=[0.0] * 8), "both"),
    ("/traverse", dict(dims=[8]), "out of range"),
    ("/traverse", dict(dims=[]), "at least one"),
    ("/traverse", dict(steps=10**6), "steps"),
]


@pytest.mark.parametrize("endpoint, bad, message", BAD, ids=[f"{e}-{m}" for e, _, m in BAD])
def test_bad_input_gets_a_clear_message_and_the_next_request_works(client, endpoint, bad, message):
    with pytest.raises(AppError, match=message):
        client.predict(**{"model": "digits-vae", **bad}, api_name=endpoint)
    assert client.predict(model="digits-vae", seed=0, count=1, api_name="/sample_latents")["images"]


def test_public_names_follow_the_libraries_and_old_names_still_work_with_a_notice(client):
    new = client.predict(model="digits-vae", seed=3, num_images=4, api_name="/sample_latents")
    old = client.predict(model="digits-vae", seed=3, count=4, api_name="/sample_latents")
    assert new["images"] == old["images"] and new["notices"] == []
    assert old["notices"] == ["`count` is deprecated: use `num_images`."]
    a, b = [1.0] + [0.0] * 7, [0.0, 1.0] + [0.0] * 6
    walk = client.predict(model="digits-vae", a=a, b=b, num_frames=5, api_name="/interpolate")
    assert len(walk["latents"]) == 5 and walk["notices"] == []
    old_walk = client.predict(model="digits-vae", a=a, b=b, steps=5, api_name="/interpolate")
    assert old_walk["latents"] == walk["latents"] and "`steps` is deprecated" in old_walk["notices"][0]
    turn = client.predict(model="digits-vae", dims=[1], num_frames=3, api_name="/traverse")
    assert np.array(turn["images"]).shape == (3, 1, 16, 16) and turn["notices"] == []
    with pytest.raises(AppError, match="num_frames"):  # the message names what the client sent
        client.predict(model="digits-vae", dims=[1], num_frames=10**6, api_name="/traverse")
    with pytest.raises(AppError, match="old name"):
        client.predict(model="digits-vae", num_images=2, count=2, api_name="/sample_latents")
