"""The /text_to_image endpoint of the launched app over gradio_client, on a tiny real SD pipeline."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from demos import text_to_image as t2i

GOOD = dict(prompt="a red circle", model="tiny-sd", seed=5, steps=4, guidance_scale=3.0, scheduler="DDIM", count=2)


def decode(out: dict) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in out["images"]])


def test_text_to_image_returns_pngs_that_carry_their_recipe(client):
    out = client.predict(**GOOD, api_name="/text_to_image")
    assert decode(out).shape == (2, 32, 32, 3)  # the model's recommended size, as no size was given
    recipe = t2i.recipe_from_png(base64.b64decode(out["images"][0]))
    assert recipe.prompt == "a red circle" and recipe.seed == 5 and recipe.scheduler == "DDIM"
    assert out["recipe"]["width"] == 32 and out["notices"] == []
    again = client.predict(**GOOD, api_name="/text_to_image")
    assert np.array_equal(decode(out), decode(again))


def test_empty_prompt_runs_unconditionally_with_a_notice(client):
    out = client.predict(**{**GOOD, "prompt": ""}, api_name="/text_to_image")
    assert len(out["images"]) == 2 and "unconditionally" in out["notices"][0]


def test_long_prompt_is_truncated_with_a_notice(client):
    out = client.predict(**{**GOOD, "prompt": "a red circle " * 40}, api_name="/text_to_image")
    assert any("truncated" in n for n in out["notices"])


BAD = [
    (dict(width=0), "width"),
    (dict(width=-64), "width"),
    (dict(height=36), "multiple of 8"),
    (dict(width=4096), "width"),
    (dict(steps=0), "steps"),
    (dict(steps=-1), "steps"),
    (dict(steps=10**6), "steps"),
    (dict(guidance_scale="NaN"), "guidance"),  # JSON has no NaN: clients send it as text
    (dict(guidance_scale="inf"), "guidance"),
    (dict(guidance_scale=-1), "guidance"),
    (dict(seed=-1), "seed"),
    (dict(seed=2**70), "seed"),
    (dict(seed="abc"), "seed"),
    (dict(count=1000), "number of images"),
    (dict(scheduler="Heun 9000"), "scheduler"),
    (dict(model="no-such-model"), "Unknown model"),
    (dict(model="smollm2-135m-instruct"), "not a text-to-image model"),
    (dict(model="nan-sd"), "NaN"),
]


@pytest.mark.parametrize("bad, message", BAD, ids=[f"{list(b)[0]}-{m}" for b, m in BAD])
def test_bad_input_gets_a_clear_message_and_the_next_request_works(client, bad, message):
    with pytest.raises(AppError, match=message) as info:
        client.predict(**{**GOOD, **bad}, api_name="/text_to_image")
    assert "Traceback" not in str(info.value) and "/tmp/" not in str(info.value)
    assert len(client.predict(**{**GOOD, "count": 1}, api_name="/text_to_image")["images"]) == 1


def test_black_output_is_reported(client):
    out = client.predict(**{**GOOD, "model": "black-sd"}, api_name="/text_to_image")
    assert "completely black" in out["notices"][0]


def test_concurrent_clients_get_what_serial_runs_give(client, app_url):
    """Schedulers hold state: each request gets its own, so parallel runs equal serial ones."""
    jobs = [dict(GOOD, seed=s, scheduler=name, count=1) for s, name in enumerate(["DDIM", "Euler", "DPM++ 2M", "DDPM"])]
    serial = [decode(client.predict(**job, api_name="/text_to_image")) for job in jobs]
    clients = [Client(app_url, verbose=False) for _ in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        parallel = list(
            pool.map(
                lambda pair: decode(pair[0].predict(**pair[1], api_name="/text_to_image")),
                zip(clients, jobs, strict=True),
            )
        )
    for s, p in zip(serial, parallel, strict=True):
        assert np.array_equal(s, p)
