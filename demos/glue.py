"""What every tab's Gradio glue shares: who is asking, how to stop their job, one way to turn a
failure into a message, and the model pickers. How the app is served (the queue, admission, the
secure launch) is ``demos/server.py``; the rule for typed numbers is ``demos/numbers.py``.

Each handler keeps its own ``try/except`` in sight and calls ``user_error(exc)`` for the message:

    try:
        result = compute.run(pure_function, model_key, settings)
    except Exception as exc:
        raise user_error(exc) from None
"""

from __future__ import annotations

import logging
import threading

import gradio as gr
import torch

from shared import catalog, runtime
from shared.engines import EngineError
from shared.loaders import ModelLoadError

logger = logging.getLogger("genai_playground")

HEAVY = "gpu"  # the concurrency group of long model jobs (images, latents); its limit is the device's concurrency
INTERACTIVE = "interactive"  # chat and attention: their own group and model worker, ahead of long jobs (compute.py)
MODEL_GROUPS = (HEAVY, INTERACTIVE)  # the groups whose jobs count against a visitor's limit


def session_id(request: gr.Request | None) -> str:
    """The browser session (or API client) a request comes from."""
    return getattr(request, "session_hash", None) or "no-session"


def user_error(exc: BaseException, action: str = "That request") -> gr.Error:
    """One clear, path-free message for any failure of a handler.

    - ``gr.Error``: already a message;
    - ``ValueError`` (bad input, checked by our code) and ``ModelLoadError``: their own words;
    - out of memory (torch's, or a CUDA allocator's): the model cache is emptied and memory freed;
    - anything else: its type only (the traceback goes to the server log, never to the user).
    """
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, (ValueError, ModelLoadError, EngineError)) and not isinstance(exc, UnicodeError):
        return gr.Error(str(exc))
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        runtime.get().cache.clear()
        return gr.Error(
            "Out of memory: the loaded models were unloaded to free it. Try a smaller request or a smaller model."
        )
    logger.error("%s failed", action, exc_info=(type(exc), exc, exc.__traceback__))
    return gr.Error(f"{action} failed ({type(exc).__name__}). The next request will try again.")


class StopFlags:
    """Per-session stop flags for a tab's running job: Stop (or a closed tab) sets its flag."""

    def __init__(self) -> None:
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, request: gr.Request | None) -> threading.Event:
        """A fresh flag for this session's new job (replacing any older one)."""
        flag = threading.Event()
        with self._lock:
            self._flags[session_id(request)] = flag
        return flag

    def finish(self, request: gr.Request | None, flag: threading.Event) -> None:
        """The job ended: its flag is set (ending any thread still watching it) and forgotten."""
        flag.set()
        with self._lock:
            if self._flags.get(session_id(request)) is flag:
                del self._flags[session_id(request)]

    def stop(self, request: gr.Request | None) -> None:
        with self._lock:
            flag = self._flags.get(session_id(request))
        if flag is not None:
            flag.set()


def model_choices(*tasks: str, bundled: bool | None = None) -> list[tuple[str, str]]:
    """(label, key) pairs for a model picker: the catalog's models of these tasks, bundled first,
    then hub models that can load, then those that can't, labelled with the reason (offline…).
    Only the chat tab (tasks[0] == "chat") lists models that run on a server (llama.cpp, OpenAI-compatible)."""
    rows = []
    for task in tasks:
        for spec in catalog.models_for(task):
            if bundled is not None and spec.bundled != bundled:
                continue
            if tasks[0] != "chat" and spec.engine != "transformers":  # other tabs read weights: a server has none
                continue
            reason = runtime.unavailable(spec)
            label = spec.label() if reason is None else f"⛔ {spec.key} — unavailable: {reason}"
            rows.append(((not spec.bundled) + 2 * (reason is not None), label, spec.key))
    return [(label, key) for _, label, key in sorted(rows, key=lambda row: row[0])]


def default_model(task: str) -> str:
    return runtime.default_model(task)
