"""Share links through the API, as any client can call it (gradio_client, raw ``/gradio_api/call``):
every kind round-trips, bad ids and bad payloads get a clear message, concurrent shares all land,
only the delete token deletes, one visitor's rate limit, the snapshot and store caps, and links
that survive a restart of the app (which then has sharing turned off, and still opens them)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from demos.text_to_image.recipe import read_recipe
from tests.helpers import free_port

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]


def call(url: str, name: str, data: list, visitor: str | None = None) -> tuple[str, object]:
    """``POST /gradio_api/call/<name>`` with raw JSON, then its result: ("complete", value) or ("error", message)."""
    headers = {"x-forwarded-for": visitor} if visitor else {}
    with httpx.Client(base_url=url, timeout=60) as http:
        started = http.post(f"/gradio_api/call/{name}", json={"data": data}, headers=headers)
        assert started.status_code == 200, started.text
        text = http.get(f"/gradio_api/call/{name}/{started.json()['event_id']}", headers=headers).text
    kind, _, data_line = text.strip().rsplit("event: ", 1)[-1].partition("\ndata: ")
    value = json.loads(data_line) if data_line.strip() not in ("", "null") else None
    if kind.strip() == "complete":
        return "complete", value[0]
    return kind.strip(), value.get("error") if isinstance(value, dict) else value  # Gradio's {"error": message, …}


def data_url(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def decoded(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


RNG = np.random.default_rng(0)
PICTURE = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
CHAT = {
    "model": "smollm2-135m-instruct",
    "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}],
    "settings": {"temperature": 0.0, "seed": 7},
    "tokens": [{"token": "Hello", "prob": 0.9, "top": [["Hello", 0.9], ["Hi", 0.05]]}],
    "stats": "1 token",
}
T2I = {
    "recipe": {
        "model": "shapes-t2i",
        "prompt": "a red circle",
        "negative_prompt": "",
        "seed": 3,
        "num_inference_steps": 6,
        "guidance_scale": 4.0,
        "scheduler": "DPM++ 2M",
        "width": 32,
        "height": 32,
        "num_images_per_prompt": 1,
    },  # fmt: skip
    "images": {"0": data_url(PICTURE)},
}
LATENT = {"model": "digits-gan", "settings": {"seed": 1, "count": 16}, "images": {"samples": data_url(PICTURE)}}
ATTENTION = {
    "model": "smollm2-135m-instruct",
    "text": "the cat sat",
    "layer": 1,
    "head": 2,
    "token": 2,
    "tokens": ["the", " cat", " sat"],
    "heat": [[1.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.125, 0.375, 0.5]],
    "mean": [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]],
}
GOOD = {"chat": CHAT, "text-to-image": T2I, "latent": LATENT, "attention": ATTENTION}


@pytest.fixture(scope="module")
def client(live_app):
    return Client(live_app, verbose=False)


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_every_kind_round_trips_over_raw_call_and_gradio_client(live_app, client, kind):
    state, made = call(live_app, "share", [kind, GOOD[kind]])
    assert state == "complete", made
    assert made["link"] == f"{live_app.rstrip('/')}/?s={made['id']}" and len(made["delete_token"]) >= 32
    back = client.predict(made["link"], api_name="/shared")
    assert back["kind"] == kind and abs(back["created_at"] - time.time()) < 120
    sent = {k: v for k, v in GOOD[kind].items() if k != "images"}
    for name, value in sent.items():  # what was sent comes back (checked and completed, never changed)
        got = back["payload"][name]
        assert (got.items() >= value.items()) if isinstance(value, dict) else got == value, name
    for name, url in GOOD[kind].get("images", {}).items():
        assert np.array_equal(decoded(back["images"][name]), decoded(url))  # pixel-equal
    if kind == "text-to-image":  # a shared image carries its recipe, so "restore settings" reads it too
        png = base64.b64decode(back["images"]["0"].split(",", 1)[1])
        assert read_recipe(png)["prompt"] == "a red circle" and read_recipe(png)["seed"] == 3
    assert client.predict(made["id"], api_name="/shared")["payload"] == back["payload"]  # the id alone works too


@pytest.mark.parametrize(
    "link, says",
    [
        ("AAAAAAAAAAAAAAAAAAAAAA", "No shared snapshot has this link"),
        ("not-an-id", "not valid"),
        ("../../../etc/passwd", "not valid"),
        ("A" * 10_000, "not valid"),
        ("http://127.0.0.1/?s=" + "A" * 21 + "/", "not valid"),
        (None, "not valid"),
    ],
)
def test_a_bad_id_gets_a_clear_message_and_no_path(live_app, client, link, says):
    state, message = call(live_app, "shared", [link])
    assert state == "error" and says in str(message), message
    assert "etc" not in str(message) and "/tmp" not in str(message) and len(str(message)) < 300
    with pytest.raises(Exception, match=says):
        client.predict(link, api_name="/shared")
    assert call(live_app, "share", ["attention", ATTENTION])[0] == "complete"  # nothing else affected


def _with(kind: str, **changes) -> tuple[str, dict]:
    return kind, {**GOOD[kind], **changes}


@pytest.mark.parametrize(
    "kind, payload, says",
    [
        ("poem", {}, "kind is one of"),
        ("chat", "not a dict", "must be an object"),
        (*_with("chat", messages=[]), "no conversation"),
        (*_with("chat", messages=[{"role": "hacker", "content": "x"}]), "role"),
        (*_with("chat", settings={"temperature": 99}), "temperature must be between"),
        (*_with("attention", heat=[[1.0]]), "must be 3×3"),
        (*_with("attention", heat=[[2.0, 0, 0], [0, 1, 0], [0, 0, 1]]), "weights from 0 to 1"),
        (*_with("attention", token=3), "token must be between"),
        (*_with("text-to-image", images={"0": "data:image/png;base64,bm90IGFuIGltYWdl"}), "can't be read as an image"),
        (*_with("text-to-image", images={"0": "file:///etc/passwd"}), "must be a data URL"),
        (*_with("text-to-image", images={"../x": data_url(PICTURE)}), "index"),
        (*_with("latent", images={"samples": data_url(np.zeros((1, 2100, 3), np.uint8))}), "at most 2048 px"),
        (*_with("latent", images={"script.js": data_url(PICTURE)}), "Unknown image"),
        (*_with("text-to-image", recipe={**T2I["recipe"], "scheduler": "rm -rf"}), "Unknown scheduler"),
    ],
)
def test_a_bad_payload_is_refused_with_a_message(live_app, kind, payload, says):
    state, message = call(live_app, "share", [kind, payload])
    assert state == "error" and says in str(message), message
    assert call(live_app, "share", ["chat", CHAT])[0] == "complete"  # the next request works


def test_twenty_concurrent_shares_from_several_sessions_are_all_kept(live_app):
    clients = [Client(live_app, verbose=False) for _ in range(4)]

    def one(i: int) -> tuple[int, dict]:
        payload = {**CHAT, "messages": [{"role": "user", "content": f"message {i}"}]}
        return i, clients[i % 4].predict("chat", payload, api_name="/share")

    with ThreadPoolExecutor(10) as pool:
        made = list(pool.map(one, range(20)))
    assert len({m["id"] for _, m in made}) == 20
    for i, m in made:
        assert clients[0].predict(m["link"], api_name="/shared")["payload"]["messages"][0]["content"] == f"message {i}"


def test_only_the_delete_token_deletes_and_then_the_link_says_so(live_app, client):
    made = client.predict("latent", LATENT, api_name="/share")
    assert call(live_app, "unshare", [made["link"], "not the token"]) == (
        "error", "Only the person who shared this can delete it.",
    )  # fmt: skip
    assert client.predict(made["link"], api_name="/shared")["kind"] == "latent"  # untouched
    assert "Deleted" in client.predict(made["link"], made["delete_token"], api_name="/unshare")
    state, message = call(live_app, "shared", [made["link"]])
    assert state == "error" and "deleted by its owner" in message


# --- an app of its own: small caps, a rate limit, restarted ---------------------------------------------


class App:
    """``python app.py`` on a share folder of its own, restartable on the same folder."""

    def __init__(self, folder: Path, *flags: str) -> None:
        self.folder, self.proc, self.url = folder, None, ""
        self.start(*flags)

    def start(self, *flags: str) -> None:
        port = free_port()
        self.log = open(ROOT / "artifacts" / "share_app.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port), "--preload", "false", "--chat-engine", "transformers",
             "--share-dir", str(self.folder), "--trust-forwarded-for", *flags],  # fmt: skip
            cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "app.py exited; see artifacts/share_app.log"
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise AssertionError("app.py did not start within 120 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def small_app(tmp_path_factory):
    (ROOT / "artifacts").mkdir(exist_ok=True)
    app = App(tmp_path_factory.mktemp("shares"), "--shares-per-hour", "4", "--share-snapshot-mb", "1",
              "--share-store-mb", "3")  # fmt: skip
    app.made = []  # every link made, opened again after the restart
    yield app
    app.stop()


def big_chat(nbytes: int) -> dict:
    """A chat that stores as about ``nbytes`` bytes: "é" is kept as the six characters \u00e9."""
    n = nbytes // 6 // 20_000 + 1
    return {**CHAT, "messages": [{"role": ("user", "assistant")[i % 2], "content": "é" * 20_000} for i in range(n)]}


def test_one_visitor_may_make_so_many_links_an_hour_and_others_are_not_held_back(small_app):
    for _ in range(4):
        state, made = call(small_app.url, "share", ["chat", CHAT], visitor="198.51.100.1")
        assert state == "complete", made
        small_app.made.append(made)
    state, message = call(small_app.url, "share", ["chat", CHAT], visitor="198.51.100.1")
    assert state == "error" and "4 share links in the last hour" in message
    state, made = call(small_app.url, "share", ["chat", CHAT], visitor="198.51.100.2")
    assert state == "complete"
    small_app.made.append(made)


def test_an_oversized_snapshot_is_refused_with_its_size(small_app):
    state, message = call(small_app.url, "share", ["chat", big_chat(1_200_000)], visitor="198.51.100.3")
    assert state == "error" and "a shared snapshot may be at most 1 MB" in message, message


def test_a_full_store_says_so_and_still_opens_its_links(small_app):
    said = None
    for i in range(6):  # 0.9 MB each in a 3 MB store
        state, value = call(small_app.url, "share", ["chat", big_chat(900_000)], visitor=f"198.51.100.{10 + i}")
        if state == "error":
            said = value
            break
        small_app.made.append(value)
    assert said is not None and "The share store is full (3 MB)" in said, said
    assert call(small_app.url, "shared", [small_app.made[0]["link"]])[0] == "complete"


def test_links_survive_a_restart_and_still_open_with_sharing_turned_off(small_app):
    small_app.stop()
    small_app.start("--share-links", "false")
    client = Client(small_app.url, verbose=False)
    for made in small_app.made:  # links carry the old address; the id is what matters
        assert client.predict(made["id"], api_name="/shared")["kind"] == "chat"
    state, message = call(small_app.url, "share", ["chat", CHAT], visitor="198.51.100.99")
    assert state == "error" and message == "Sharing is turned off on this server."
    config = httpx.get(small_app.url + "config", timeout=30).json()
    rows = [c for c in config["components"] if c.get("props", {}).get("elem_id", "").endswith("-share-row")]
    assert len(rows) == 4 and not any(c["props"]["visible"] for c in rows)  # no Share buttons on the page
    token = small_app.made[0]["delete_token"]  # the owner can still delete a link
    assert "Deleted" in client.predict(small_app.made[0]["id"], token, api_name="/unshare")
