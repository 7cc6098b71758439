"""The ecosystem's variables, as every Gradio container and Space sets them: GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT and GRADIO_ROOT_PATH are honoured, and our own flags and PLAYGROUND_* still win.
They go through our settings (not around them), so an app bound to 0.0.0.0 this way counts as
hosted: no operator controls, a per-visitor job limit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shared.settings import JOBS_PER_VISITOR_HOSTED, parse_settings
from tests.helpers import free_port

pytestmark = pytest.mark.full  # minutes: queues filled, hosting presets, soaks

ROOT = Path(__file__).resolve().parents[2]


def test_gradio_variables_are_read_and_ours_win():
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861", "GRADIO_ROOT_PATH": "/playground"}
    settings = parse_settings([], env=env)
    assert (settings.host, settings.port, settings.root_path) == ("0.0.0.0", 7861, "/playground")
    assert not settings.operator_controls_on and settings.jobs_per_visitor == JOBS_PER_VISITOR_HOSTED
    assert parse_settings(["--host", "127.0.0.1", "--port", "9000"], env=env).host == "127.0.0.1"
    assert parse_settings(["--port", "9000"], env=env).port == 9000
    assert parse_settings([], env={**env, "PLAYGROUND_HOST": "127.0.0.1"}).host == "127.0.0.1"
    assert parse_settings([], env={}).host == "127.0.0.1" and parse_settings([], env={}).root_path == ""
    with pytest.raises(SystemExit):
        parse_settings([], env={"GRADIO_SERVER_PORT": "not-a-port"})


def _listening_on(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp, IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_gradio_server_name_makes_python_app_py_listen_on_all_interfaces():
    """``GRADIO_SERVER_NAME=0.0.0.0 python app.py`` binds every interface (checked on loopback only)."""
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ROOT_PATH": "/playground",
        "PLAYGROUND_PRELOAD": "false",
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/config", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("app.py did not start within 120 s")
        assert _listening_on(port) == {"0.0.0.0"}
        config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=10).json()
        assert config["root"].endswith("/playground")  # the URLs the page builds go through the proxy's path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
