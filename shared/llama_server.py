"""llama.cpp's ``llama-server``, run by the app as a managed subprocess on 127.0.0.1.

``make llama-server`` builds the binary once from a pinned source (portable AVX2-level flags) into
the cache; ``find_binary`` finds it there or on PATH. ``LlamaServer.ensure()`` starts the server on
a free loopback port with a random API key (so no other local process can use it), waits for its
``/health``, restarts it if it died, and ``stop()`` (or the app's exit) ends it. The app talks to
it through the ``openai`` engine like to any other server.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

from shared.engines import Endpoint

LLAMA_CPP_PYTHON = "0.3.36"  # the pinned source in the Makefile
START_TIMEOUT_S = 60.0  # load a GGUF and answer /health within this
DYING_WAIT_S = 2.0  # a killed server that stopped listening gets this long to exit before it is killed again
LOG_LINES_KEPT = 40


# Where `make llama-server` puts it: the user's cache, shared by every clone on this machine.
BUILT = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    / "genai-playground"
    / f"llama.cpp-{LLAMA_CPP_PYTHON}"
    / "llama-server"
)


def find_binary(configured: Path | None = None) -> Path | None:
    """The operator's binary, else the one ``make llama-server`` built, else one on PATH."""
    if configured is not None:
        return configured if configured.is_file() and os.access(configured, os.X_OK) else None
    if BUILT.is_file():
        return BUILT
    found = shutil.which("llama-server")
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:  # PR_SET_PDEATHSIG: the app killed → the server too. SIGKILL, since nobody is left to serve, and
        # a SIGTERM'd llama-server waits on its HTTP threads: CI once saw one outlive its app by 10 s.
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    except OSError:
        pass


# PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process (prctl(2)).
# Gradio runs handlers on anyio worker threads, which end after 10 s idle: a server forked on one would
# be killed under a later request served by another. So every server is forked on this one thread,
# which lives as long as the app (an executor's worker never idles out).
_spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-server-spawner")


def spawn(command: list[str], **popen_options) -> subprocess.Popen:
    """``subprocess.Popen`` on the spawner thread, the child set to die with the app (not with the caller's thread)."""
    return _spawner.submit(subprocess.Popen, command, preexec_fn=_die_with_parent, **popen_options).result()


class LlamaServer:
    """One ``llama-server`` process serving one GGUF file."""

    def __init__(self, binary: Path, gguf: Path, name: str, *, context: int = 8192, threads: int | None = None):
        self.binary, self.gguf, self.name = binary, gguf, name
        self.context, self.threads = context, threads
        self.api_key = secrets.token_urlsafe(24)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.log: list[str] = []
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(
            url=f"http://127.0.0.1:{self.port}/v1",
            model=self.name,
            flavor="llama.cpp",
            api_key=self.api_key,
            context_window=self.context,
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> Endpoint:
        """The server's endpoint, starting (or restarting) it first if it isn't running."""
        with self._lock:
            if self.running() and self._refused():  # killed a moment ago: not reaped yet, but no longer listening
                try:
                    self.proc.wait(timeout=DYING_WAIT_S)
                except subprocess.TimeoutExpired:
                    pass  # alive but refusing connections: kill it and start afresh
                self._kill()
            if not self.running():
                if self.proc is not None:
                    self.restarts += 1
                self._start()
            return self.endpoint

    def _refused(self) -> bool:
        """Whether the port refuses connections (instant on loopback; a busy server still accepts them)."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return False

    def _start(self) -> None:
        self.port = _free_port()
        command = [
            str(self.binary),
            "--model", str(self.gguf),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--ctx-size", str(self.context),
            "--parallel", "1",
            "--jinja",  # the GGUF's own chat template, rendered as transformers renders it
            "--no-webui",
            "--slots",  # /slots shows whether a generation is still running (the tests check Stop reaches it)
        ]  # fmt: skip
        if self.threads:
            command += ["--threads", str(self.threads)]
        self.log = []
        self.proc = spawn(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env={**os.environ, "LLAMA_API_KEY": self.api_key},  # not argv: any local user can read that in /proc
        )
        threading.Thread(target=self._read_log, args=(self.proc,), name="llama-server-log", daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}: {self._last_log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self._kill()
        raise RuntimeError(f"llama-server did not answer /health within {START_TIMEOUT_S:.0f} s: {self._last_log()}")

    def _read_log(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout or ():
            self.log = [*self.log[-LOG_LINES_KEPT + 1 :], line.rstrip()]

    def _last_log(self) -> str:
        return self.log[-1][:300] if self.log else "(no output)"

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def stop(self) -> None:
        with self._lock:
            self._kill()


_servers: dict[Path, LlamaServer] = {}
_servers_lock = threading.Lock()


def server_for(binary: Path, gguf: Path, name: str, **options) -> LlamaServer:
    """The one managed server for this GGUF (created on first use; started by ``ensure``)."""
    with _servers_lock:
        if gguf not in _servers:
            _servers[gguf] = LlamaServer(binary, gguf, name, **options)
        return _servers[gguf]


def servers() -> list[LlamaServer]:
    with _servers_lock:
        return list(_servers.values())


@atexit.register
def stop_all() -> None:
    for server in servers():
        server.stop()
