"""Test-wide rules: no network beyond loopback, offline hub, no analytics; tiny models; the app."""

from __future__ import annotations

import ipaddress
import os
import socket

# Before any gradio / huggingface_hub import, so they read it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from tests.tiny_models import build_tiny_llama  # noqa: E402

# --- network guard: any connection to a non-loopback address fails the test -----------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkAccessError(RuntimeError):
    pass


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
    raise NetworkAccessError(f"tests must not reach the network: connect to {address!r}")


def _guarded_connect(self, address):
    _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


# --- tiny real models -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A 2-layer Llama (GQA) that never emits end-of-turn: replies run to max_new_tokens."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_llama_stops_dir(tmp_path_factory):
    """The same tiny Llama, but end-of-turn ends a reply, and a 64-token window."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-stops"), window=64, stops=True)
