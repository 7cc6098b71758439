"""Test-wide rules: no network beyond loopback, offline hub, no analytics; tiny models; the app."""

from __future__ import annotations

import gc
import ipaddress
import os
import socket
import tempfile
import traceback

# Before any gradio / huggingface_hub import, so they read it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="playground-data-")  # share links of in-process apps

import pytest  # noqa: E402

from tests.helpers import (  # noqa: E402
    CHROMIUM_ARGS,
    REFUSED,
    TIERS,
    TIERS_SEEN,
    NetworkAccessError,
    app_settings,
    free_port,
)
from tests.tiny_models import (  # noqa: E402
    build_tiny_bert,
    build_tiny_llama,
    build_tiny_mamba,
    build_tiny_sd_pipeline,
    spec,
)

# --- in CI a skipped test checks nothing: it fails there (GPU-only tests are deselected by marker instead) ---

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Two rules for every test's report.

    In CI a skip fails, with its reason. And a failure is always reported: pytest formats one by
    parsing its source with ``ast``, and on CPython 3.11 an ``ast.parse`` nested inside another
    clobbers the AST constructor's recursion counter (gh-106905), so the outer one raises
    ``SystemError: AST constructor recursion depth mismatch`` and pytest ends the whole session with
    INTERNALERROR. The nesting is ordinary: the garbage collector runs mid-parse, a ``__del__`` raises
    (openai's client did, over httpx2), and 3.11 prints that error with caret anchors, which it finds
    with ``ast.parse``. So: format once more (that garbage is gone by then), else report the failure in
    plain lines. tests/app/test_ci_rules.py shows both."""
    try:
        report = yield
    except Exception as error:
        gc.collect()
        try:
            report = pytest.TestReport.from_item_and_call(item, call)
        except Exception:
            report = _plain_report(item, call, error)
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome, report.longrepr = "failed", f"skipped in CI, where a skip checks nothing: {reason}"
    return report


def _plain_report(item, call, error: Exception) -> pytest.TestReport:
    """The failure as file:line lines and the exception, without parsing any source."""
    excinfo = call.excinfo
    frames = [
        f"{frame.filename}:{frame.lineno}: in {frame.name}\n    {frame.line}"
        for frame in traceback.extract_tb(excinfo.tb)
    ]
    longrepr = "\n".join(
        [*frames, f"{excinfo.typename}: {excinfo.value}", f"(pytest could not format this failure: {error!r})"]
    )
    return pytest.TestReport(
        item.nodeid, item.location, {name: 1 for name in item.keywords}, "failed", longrepr, call.when,
        duration=call.duration, start=call.start, stop=call.stop,
    )  # fmt: skip


# --- tiers: every test in exactly one (tests/app/test_tiers.py) --------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    TIERS_SEEN.update({item.nodeid: sorted({m.name for m in item.iter_markers()} & set(TIERS)) for item in items})


# --- network guard: any connection to a non-loopback address fails the test -----------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check(address) -> None:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return
    host = address[0]
    if host in ("localhost", ""):
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    REFUSED.append(address)
    raise NetworkAccessError(f"tests must not reach the network: connect to {address!r}")


def _guarded_connect(self, address):
    _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


# --- isolation: training-lab runs started by one module never outlive it ------------------


@pytest.fixture(autouse=True, scope="module")
def _no_lab_runs_left_behind():
    """Lab runs are app-wide (two slots); a module that started some (over the API, by the page's
    events) must not leave them holding slots and a worker for the next module."""
    yield
    import sys

    lab = sys.modules.get("demos.latent.lab")
    if lab is not None:
        lab.stop_all()


@pytest.fixture(autouse=True)
def _lab_slots_free_for_lab_tests(request):
    """The lab's own tests start from free slots, whatever ran before them."""
    if request.module.__name__.endswith("test_training_lab"):
        from demos.latent import lab as training_lab

        training_lab.stop_all()
    yield


# --- tiny real models -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A 2-layer Llama (GQA) that never emits end-of-turn: replies run to max_new_tokens."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    """A Stable-Diffusion-architecture pipeline of tiny real parts (CLIP text encoder, UNet, VAE)."""
    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A 2-layer BERT: bidirectional attention."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_llama_stops_dir(tmp_path_factory):
    """The same tiny Llama, but end-of-turn ends a reply, and a 64-token window."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-stops"), window=64, stops=True)


# --- the real app, started the way the README starts it -------------------------------------


@pytest.fixture(scope="session")
def live_app():
    """`python app.py` on the bundled models, offline, on a free loopback port. Yields its URL."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    port = free_port()
    (root / "artifacts").mkdir(exist_ok=True)
    log = open(root / "artifacts" / "live_app.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "app.py",
            "--port",
            str(port),
            "--chat-engine",
            "transformers",
            "--share-dir",
            tempfile.mkdtemp(prefix="shares-"),
            "--shares-per-hour",
            "1000",
        ],  # fmt: skip
        cwd=root,
        env={
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    import httpx

    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}; see artifacts/live_app.log")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("app.py did not start within 120 s")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def chromium(live_app):
    """Debian's Chromium driven by Playwright, one for every browser test (each page is its own context)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# --- the app launched in-process on tiny catalog models (for API and security tests) --------


@pytest.fixture(scope="module")
def test_catalog():
    """``add(*specs)`` puts test models in the catalog for this module; the catalog is restored after."""
    from shared import catalog

    with pytest.MonkeyPatch.context() as patch:

        def add(*specs):
            for entry in specs:
                patch.setitem(catalog.CATALOG, entry.key, entry)

        yield add


@pytest.fixture(scope="module")
def launched_app(tiny_llama_dir, tiny_bert_dir, tiny_sd_dir, tmp_path_factory, test_catalog):
    """`app.build_app()` launched on loopback with tiny real models added to the catalog."""
    import app as app_module
    from shared import runtime

    broken = tmp_path_factory.mktemp("broken")
    (broken / "config.json").write_text("{broken")
    (broken / "model.safetensors").write_bytes(b"not a tensor file")
    broken_sd = tmp_path_factory.mktemp("broken-sd")
    (broken_sd / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers"')
    (broken_sd / "unet").mkdir()
    (broken_sd / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a tensor file")
    test_catalog(
        spec(tiny_llama_dir, "tiny-chat", revision="0" * 40),
        spec(broken, "broken-chat"),
        spec("HuggingFaceTB/SmolLM2-360M-Instruct", "hub-chat", revision="0" * 40),
        spec(tiny_bert_dir, "tiny-bert", "attention"),
        spec(build_tiny_mamba(tmp_path_factory.mktemp("mamba")), "tiny-mamba", "attention"),
        spec(broken, "broken-latent", "latent", kind="vae", dataset="digits"),
        spec(tiny_sd_dir, "tiny-sd", "text-to-image"),
        spec(broken_sd, "broken-sd", "text-to-image"),
        spec(build_tiny_sd_pipeline(tmp_path_factory.mktemp("nan"), output="nan"), "nan-sd", "text-to-image"),
        spec(build_tiny_sd_pipeline(tmp_path_factory.mktemp("black"), output="black"), "black-sd", "text-to-image"),
    )
    runtime.configure(app_settings(port=free_port(), cache_dir=tmp_path_factory.mktemp("c")))
    demo = app_module.build_app()
    app_module.launch(demo, runtime.get().settings, prevent_thread_lock=True, quiet=True)
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def app_url(launched_app):
    return launched_app.local_url


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)
