"""The latent-sampling endpoints of the launched app over gradio_client."""

import json
import math
import time

import httpx
import numpy as np
import pytest
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.fast


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
    ("/sample_latents", dict(model="lab:vae"), "Unknown model"),  # a session's lab model is the page's alone
    ("/traverse", dict(model="lab:gan"), "Unknown model"),
    ("/interpolate", dict(a=[0.0] * 8, b=[1.0] * 8, steps=10**6), "steps"),
    ("/interpolate", dict(a=[0.0] * 8, b=[1.0] * 8, kind="cubic"), "kind"),
    ("/interpolate", dict(a=[0.0] * 8), "both"),
    ("/traverse", dict(dims=[8]), "out of range"),
    ("/traverse", dict(dims=[]), "at least one"),
    ("/traverse", dict(steps=10**6), "steps"),
    ("/traverse", dict(dims=[1.9]), "whole number"),  # refused, never truncated to 1
    ("/interpolate", dict(a=[[0.0] * 8, [1.0] * 8], b=[1.0] * 8), "a must be one latent vector.*2 rows"),
    ("/interpolate", dict(a=[0.0] * 8, b=[[1.0] * 8] * 3), "b must be one latent vector.*3 rows"),
    ("/traverse", dict(dims=list(range(8)) * 4, num_frames=16), "512 images, past the 256.*at most 8 num_frames"),
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


def test_slerp_from_the_prior_mean_works(client):
    """A zero latent has no direction to turn through: slerp walks the straight line, finite."""
    for a, b in (([0.0] * 8, [1.0] * 8), ([0.0] * 8, [0.0] * 8)):
        out = client.predict(model="digits-vae", a=a, b=b, num_frames=5, kind="slerp", api_name="/interpolate")
        lerp = client.predict(model="digits-vae", a=a, b=b, num_frames=5, kind="lerp", api_name="/interpolate")
        assert out["latents"] == lerp["latents"] and np.isfinite(np.array(out["images"])).all()


def raw_call(app_url: str, api_name: str, data: list) -> tuple[str, object]:
    """One call over raw HTTP (POST /call, then its SSE stream): (the last event's name, its data)."""
    with httpx.Client(base_url=app_url + "gradio_api/", timeout=60) as http:
        posted = http.post(f"call/{api_name}", json={"data": data})
        assert posted.status_code == 200, posted.text
        lines = http.get(f"call/{api_name}/{posted.json()['event_id']}").text.strip().splitlines()
    event = [line[6:].strip() for line in lines if line.startswith("event:")][-1]
    return event, json.loads([line[5:] for line in lines if line.startswith("data:")][-1])


def test_raw_json_a_2d_latent_and_a_fractional_dimension_are_refused(app_url):
    two_rows = ["digits-vae", [[0.0] * 8, [1.0] * 8], [1.0] * 8, 4, "slerp", None]
    event, message = raw_call(app_url, "interpolate", two_rows)
    assert event == "error" and "a must be one latent vector" in str(message)
    event, message = raw_call(app_url, "traverse", ["digits-vae", 0, [1.9], 3.0, 3, None])
    assert event == "error" and "whole number" in str(message)
    event, out = raw_call(app_url, "traverse", ["digits-vae", 0, [1], 3.0, 3, None])
    assert event == "complete" and out[0]["dims"] == [1]


@pytest.mark.parametrize("model", ["shapes-gan", "shapes-vae"])
def test_the_largest_allowed_calls_stay_short(app_url, model):
    """The biggest request each endpoint takes, on the bundled colour models, over raw HTTP: 256
    samples, a 64-frame walk, 16 dimensions × 16 frames (the 256-image cap; 512 took 3.5 s). Each
    is about a second of server time on 2 idle CPU cores, most of it Gradio walking the JSON."""
    dim = len(raw_call(app_url, "sample_latents", [model, 0, 1, 1.0, None, None])[1][0]["latents"][0])
    calls = {
        "sample_latents": [model, 0, 256, 1.0, None, None],
        "interpolate": [model, [0.5] * dim, [-0.5] * dim, 64, "slerp", None],
        "traverse": [model, 0, [d % dim for d in range(16)], 3.0, 16, None],
    }
    for api_name, data in calls.items():
        start = time.perf_counter()
        event, out = raw_call(app_url, api_name, data)
        seconds = time.perf_counter() - start
        print(f"\n{model} /{api_name} (largest): {len(out[0]['images'])} images in {seconds:.2f} s")
        assert event == "complete" and len(out[0]["images"]) in (256, 64) and seconds < 10
