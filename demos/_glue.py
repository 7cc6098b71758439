"""What every tab's Gradio glue shares: who is asking, how to stop their job, and one way to turn a
failure into a message.

Each handler keeps its own ``try/except`` in sight and calls ``user_error(exc)`` for the message:

    try:
        result = compute.run(pure_function, model_key, settings)
    except Exception as exc:
        raise user_error(exc) from None
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

import gradio as gr
import torch

from shared import catalog, runtime
from shared.loaders import ModelLoadError
from shared.settings import Settings, parse_settings

logger = logging.getLogger("genai_playground")


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
    if isinstance(exc, (ValueError, ModelLoadError)) and not isinstance(exc, UnicodeError):
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
    """(label, key) pairs for a model picker: the catalog's models of these tasks."""
    return [
        (spec.label(), spec.key)
        for task in tasks
        for spec in catalog.models_for(task)
        if bundled is None or spec.bundled == bundled
    ]


def default_model(task: str) -> str:
    return catalog.default_model(task, runtime.get().settings.models)


CSS = """
.token-view .tok:hover { outline: 1px solid #555; }
.pixelated img { image-rendering: pixelated; }
"""


def launch(demo: gr.Blocks, settings: Settings, **kwargs):
    """Launch with the secure defaults: loopback, no share without auth, capped uploads."""
    if settings.share and settings.auth is None:
        raise ValueError("Refusing to share the app publicly without --auth.")
    return demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        auth=settings.auth,
        max_file_size=settings.max_file_size,
        show_error=False,  # errors reach users as our own messages, never tracebacks
        css=CSS,
        footer_links=["api"],
        **kwargs,
    )


def run_alone(build_ui: Callable[[], object], title: str, argv: list[str] | None = None) -> None:
    """``python -m demos.<tab>``: the tab on its own, with the app's settings and secure launch."""
    settings = parse_settings(sys.argv[1:] if argv is None else argv)
    runtime.configure(settings)
    launch(standalone(build_ui, title), settings)


def standalone(build_ui: Callable[[], object], title: str) -> gr.Blocks:
    """One tab in Blocks of its own, queued like the app."""
    with gr.Blocks(title=f"{title} · GenAI Playground", analytics_enabled=False) as demo:
        build_ui()
    demo.queue(max_size=runtime.get().settings.max_queue, default_concurrency_limit=1)
    return demo
