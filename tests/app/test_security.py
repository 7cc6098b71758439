"""Secure defaults and hostile requests against the launched app (loopback only, bounded loops)."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.helpers import REFUSED

pytestmark = pytest.mark.fast

TRAVERSALS = [
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=../../../../etc/passwd",
    "/gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=%2Fetc%2Fpasswd",
    "/gradio_api/file=%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/gradio_api/file=%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/gradio_api/file=/proc/self/environ",
    "/gradio_api/file=app.py",
    "/file=/etc/passwd",
]


@pytest.fixture(scope="module")
def http(app_url):
    with httpx.Client(base_url=app_url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(http, path):
    response = http.get(path)
    assert response.status_code in (403, 404), (path, response.status_code)
    assert "root:" not in response.text and "import gradio" not in response.text


def test_foreign_origin_gets_no_cors_allow_header(http):
    response = http.get("/config", headers={"Origin": "https://evil.example"})
    assert response.headers.get("access-control-allow-origin") not in ("*", "https://evil.example")


def test_uploads_over_the_cap_are_refused(http):
    big = b"0" * (11 * 1024 * 1024)  # the cap is 10 MB
    response = http.post("/gradio_api/upload", files={"files": ("big.bin", big)})
    assert response.status_code == 413


def test_every_event_is_queued_and_interactive_model_work_shares_one_group(launched_app):
    from shared import runtime

    fns = list(launched_app.fns.values())
    assert fns and all(fn.queue for fn in fns), [fn.name for fn in fns if not fn.queue]
    from demos.text_to_image import unclip_panel as text_to_image_unclip

    heavy = [  # the unCLIP panel's run draws images: it is in the gpu group, with the other image jobs
        fn
        for fn in fns
        if fn.name in ("respond", "chat", "run", "render", "attention") and fn.fn is not text_to_image_unclip.run
    ]
    assert len(heavy) >= 5
    assert {fn.concurrency_id for fn in heavy} == {"interactive"}  # chat and attention, ahead of image jobs
    assert {fn.concurrency_limit for fn in heavy} == {runtime.get().concurrency}
    assert launched_app._queue.max_size == runtime.get().settings.max_queue


def test_only_documented_endpoints_are_callable(launched_app, app_url):
    """Not just the visibility flag: what a client can call. Only the documented endpoints have a name
    (``/call/<name>`` finds events by name), ``/run/<name>`` is closed, and a page event's old name is a 404.
    tests/app/test_surface.py tries every route for every event."""
    documented = {"chat", "attention", "sample_latents", "interpolate", "traverse", "text_to_image", "share", "shared",
                  "unshare"}  # fmt: skip
    assert {fn.api_name for fn in launched_app.fns.values() if fn.api_visibility != "private"} == documented
    assert {fn.api_name for fn in launched_app.fns.values() if fn.api_name} == documented
    assert launched_app.api_open is False
    with httpx.Client(base_url=app_url, timeout=30) as http:
        assert http.post("/gradio_api/run/chat", json={"data": []}).status_code == 404
        assert http.post("/gradio_api/call/respond", json={"data": []}).status_code == 404
        assert http.post("/gradio_api/call/chat", json={"data": []}).status_code == 422  # reached: too few values


def test_analytics_and_telemetry_are_off(launched_app):
    assert launched_app.analytics_enabled is False
    from huggingface_hub import constants

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] in ("1", "True") and constants.HF_HUB_DISABLE_TELEMETRY


def test_offline_start_and_requests_made_no_outbound_connection(client):
    from tests.helpers import GOOD

    client.predict(**GOOD, api_name="/chat")
    assert REFUSED == [], f"something tried to reach the network: {REFUSED}"


def test_no_trust_remote_code_anywhere_in_product_code():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in [root / "app.py", *root.glob("shared/*.py"), *root.glob("demos/*.py")]:
        text = path.read_text()
        assert "trust_remote_code=True" not in text.replace(" ", ""), path


@pytest.mark.parametrize(
    "name, data",
    [
        ("x.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        ("x.html", b"<html><script>alert(1)</script></html>"),
    ],
)
def test_uploaded_html_and_svg_are_never_rendered(http, name, data):
    """An uploaded page or SVG comes back only as a download, never as something the browser runs."""
    from demos.latent import sampling as latent_sampling

    uploaded = http.post("/gradio_api/upload", files={"files": (name, data)})
    assert uploaded.status_code == 200
    served = http.get(f"/gradio_api/file={uploaded.json()[0]}")
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["content-disposition"].startswith("attachment")
    with pytest.raises(ValueError, match="not an image"):  # and the image handlers refuse it
        latent_sampling.open_upload(data)
