"""The container image (Dockerfile), the way a user runs it: built with podman, started, healthy, and
answering /chat and /text_to_image over gradio_client, offline, as uid 1000, on an empty /data volume.

CI here reaches no container registry and only PyPI, so the image is built from a base made locally
(.ci/container-base.sh: debootstrap) with the local torch CPU wheel bind-mounted at build time. Without
podman the test skips on a workstation and fails in CI (CI=true): `make container-tools` installs it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import resource
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("PLAYGROUND_TEST_IMAGE", "localhost/genai-playground:test")
BASE = os.environ.get("PLAYGROUND_CONTAINER_BASE", "localhost/playground-base:bookworm")
WHEELS = Path(os.environ.get("PLAYGROUND_WHEELS", "/opt/wheels"))  # the local torch CPU wheel, if here
LOG = ROOT / "artifacts" / "container.log"
BUILD_S = 1800  # a cold build: pip installs torch, gradio, transformers… (~3 min here); cached: seconds
HEALTHY_S = 180
PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = [pytest.mark.container, pytest.mark.timeout(BUILD_S + 600), pytest.mark.full]


def podman_or_skip() -> str:
    podman = shutil.which("podman")
    if podman is None:  # a skip, except in CI, where tests/conftest.py makes it a failure
        pytest.skip("podman is not installed (`make container-tools`)")
    return podman


def engine_flags() -> list[str]:
    """What podman needs on this kind of host, and harmless elsewhere.

    - crun refuses hosts with cgroups v1 *and* controllers on the v2 hierarchy ("cgroups in hybrid mode
      not supported"); runc runs there;
    - podman raises RLIMIT_NOFILE (1048576) and RLIMIT_NPROC (4194304) for root, which a host without
      CAP_SYS_RESOURCE refuses ("setrlimit RLIMIT_NOFILE: Operation not permitted"): ask for this
      process's own open-files limit instead, and podman's build default of 32768 processes.
    """
    flags = []
    hybrid = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    if hybrid.is_file() and hybrid.read_text().strip() and shutil.which("runc"):
        flags = ["--runtime", "runc"]
    return flags


def ulimits() -> list[str]:
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    _, nproc = resource.getrlimit(resource.RLIMIT_NPROC)
    nofile = 1048576 if nofile == resource.RLIM_INFINITY else nofile
    nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def run(args: list[str], timeout: float, log=None, check=True) -> subprocess.CompletedProcess:
    out = subprocess.run(args, cwd=ROOT, timeout=timeout, text=True, capture_output=log is None,
                         stdout=log, stderr=subprocess.STDOUT if log else None)  # fmt: skip
    if check and out.returncode:
        where = f"see {LOG}" if log else (out.stdout or "") + (out.stderr or "")
        raise AssertionError(f"{' '.join(args[:4])}… exited {out.returncode}: {where[-3000:]}")
    return out


def build_args() -> list[str]:
    """The torch wheel and the CA bundle of this machine, bind-mounted for pip at build time only."""
    args = ["--build-arg", f"BASE={BASE}"]
    if any(WHEELS.glob("torch-*.whl")):  # the local CPU wheel: no PyTorch index needed
        args += ["-v", f"{WHEELS}:/wheels:ro", "--build-arg", "PIP_FIND_LINKS=/wheels", "--build-arg", "TORCH_INDEX="]
    cert = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    if Path(cert).is_file():  # a TLS-inspecting proxy's CA is in the host's bundle, not the image's
        args += ["-v", f"{cert}:/run/pip-ca.crt:ro", "--build-arg", "PIP_CERT=/run/pip-ca.crt"]
    return args


@pytest.fixture(scope="module")
def image():
    podman = podman_or_skip()
    LOG.parent.mkdir(exist_ok=True)
    with open(LOG, "w") as log:
        started = time.perf_counter()
        if not run([podman, "image", "exists", BASE], 30, check=False).returncode == 0:
            run([str(ROOT / ".ci" / "container-base.sh")], 900, log)
        base_s = time.perf_counter() - started
        before = image_id(podman)
        run([podman, *engine_flags(), "build", "--format", "docker",  # docker format: HEALTHCHECK is kept
             "--network", "host", *ulimits(), *build_args(), "-t", IMAGE, "."], BUILD_S, log)  # fmt: skip
        if before and before != image_id(podman):  # the image this test built last time, now untagged
            run([podman, "rmi", before], 120, check=False)
        print(f"\ncontainer: base {base_s:.0f} s, build {time.perf_counter() - started - base_s:.0f} s")
    return podman


def image_id(podman: str) -> str:
    out = run([podman, "image", "inspect", "--format", "{{.Id}}", IMAGE], 30, check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


@pytest.fixture(scope="module")
def container(image):
    """The image started as `docker run -p 127.0.0.1:PORT:7860 -v /data IMAGE` would: its own CMD, an
    empty anonymous /data volume; removed at the end whatever happens. Yields (url, name)."""
    podman, name, port = image, f"playground-test-{uuid.uuid4().hex[:8]}", free_port()
    started = time.perf_counter()
    run([podman, *engine_flags(), "run", "-d", "--rm", "--name", name, *ulimits(), "-v", "/data",
         "-p", f"127.0.0.1:{port}:7860", IMAGE], 60)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + HEALTHY_S
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            state = run([podman, "inspect", "--format", "{{.State.Status}}", name], 30, check=False)
            if state.returncode or state.stdout.strip() != "running":
                raise AssertionError(f"the container stopped: {logs(podman, name)}")
            if time.time() > deadline:
                raise AssertionError(f"not up within {HEALTHY_S} s: {logs(podman, name)}")
            time.sleep(0.5)
        print(f"\ncontainer: up in {time.perf_counter() - started:.1f} s")
        yield url, name
    finally:
        with open(LOG, "a") as log:
            log.write("\n--- podman logs ---\n" + logs(podman, name))
        run([podman, "rm", "-f", "-v", "-t", "5", name], 60, check=False)


def logs(podman: str, name: str) -> str:
    out = run([podman, "logs", name], 30, check=False)
    return (out.stdout + out.stderr)[-4000:]


def test_the_image_is_healthy_and_runs_as_uid_1000(image, container):
    _, name = container
    assert run([image, "healthcheck", "run", name], 60, check=False).returncode == 0, "HEALTHCHECK failed"
    assert run([image, "exec", name, "id", "-u"], 30).stdout.strip() == "1000"


def test_chat_answers_coherently_with_the_model_converted_at_build(image, container):
    from gradio_client import Client

    url, name = container
    reply = Client(url, verbose=False).predict(
        message="What is the capital of France?", temperature=0, max_new_tokens=48, api_name="/chat"
    )
    letters = sum(c.isalpha() or c.isspace() for c in reply)
    assert reply.strip() and letters >= 0.8 * len(reply) and "Paris" in reply, reply
    # The app used the conversion made at build time: no second one (another fingerprint) beside it.
    cache = run([image, "exec", name, "ls", "-A", "/opt/playground-cache"], 30).stdout.split()
    assert len(cache) == 1 and cache[0].startswith("smollm2-135m-instruct-"), cache


def test_text_to_image_returns_a_png_of_the_scene_size(container):
    from gradio_client import Client

    from shared.scenes import SIZE

    url, _ = container
    result = Client(url, verbose=False).predict(prompt="a large red circle at the top", api_name="/text_to_image")
    [png] = [base64.b64decode(image) for image in result["images"]]
    assert png[:8] == PNG and png[12:16] == b"IHDR"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (SIZE, SIZE) == (result["recipe"]["width"], result["recipe"]["height"])
