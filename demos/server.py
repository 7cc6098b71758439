"""How the app is served: the secure launch (loopback, no share without auth, capped uploads), the one
queue every request goes through and its admission (values checked, per-visitor job limit), and a
tab run on its own.
"""

from __future__ import annotations

import inspect
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import gradio as gr
from fastapi.responses import JSONResponse
from gradio.route_utils import FnIndexInferError

from demos.glue import MODEL_GROUPS
from demos.numbers import number_problem
from shared import runtime
from shared.settings import Settings, is_loopback, parse_settings

TEMP_FILES = (600, 3600)  # Gradio's copies of returned files: every 10 min, those older than 1 h are deleted


def visitor(request: Any, *, trust_forwarded_for: bool = False) -> str:
    """Who a request comes from, for the per-visitor job limit: the client's address.

    Gradio's server (uvicorn) already takes X-Forwarded-For from a proxy on this machine (a peer in
    FORWARDED_ALLOW_IPS, by default 127.0.0.1), so a local reverse proxy needs nothing more. With
    ``trust_forwarded_for`` the header's last address (the one your proxy saw) is used from any peer:
    right only when clients can reach the app solely through that proxy, since anyone can send the
    header and would otherwise be a new visitor with each request. ``request`` is a ``gr.Request``
    or the ``fastapi.Request`` the queue keeps with each job.
    """
    if trust_forwarded_for:
        forwarded = ",".join(request.headers.getlist("x-forwarded-for")).rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded
    client = request.client
    return client.host if client else "unknown"


def on_this_machine(request: gr.Request | None) -> bool:
    """The caller is on the machine the app runs on: a loopback address, as the server sees it (a visitor
    through a proxy on this machine has their own address, see ``visitor``)."""
    return request is not None and is_loopback(visitor(request))


CSS = """
.token-view .tok:hover { outline: 1px solid #555; }
.pixelated img { image-rendering: pixelated; }
#chat-compose { flex-wrap: nowrap; align-items: stretch; }
#chat-compose > button { align-self: stretch; }
#chat-actions { flex-wrap: wrap; gap: 6px; }
#chat-actions > button { flex: 1 1 auto; width: auto; }
@media (max-width: 640px) {
  #chatbot { height: 340px !important; max-height: 340px; }
  #chat-compose > button { min-width: 56px !important; padding-left: 6px; padding-right: 6px; }
}
"""


SESSION_CAPACITY = 1000  # sessions whose Gradio-side state is kept in memory


def launch(demo: gr.Blocks, settings: Settings, **kwargs):
    """Launch with the secure defaults: loopback, no share without auth, capped uploads."""
    if settings.share and settings.auth is None:
        raise ValueError("Refusing to share the app publicly without --auth.")
    return demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        root_path=settings.root_path or None,
        share=settings.share,
        auth=settings.auth,
        max_file_size=settings.max_file_size,
        show_error=False,  # errors reach users as our own messages, never tracebacks
        css=CSS,
        footer_links=["api"],
        # a name no endpoint has (/call/<name>, /run/<name>) is a plain 404, not an unhandled error
        app_kwargs={"exception_handlers": {FnIndexInferError: no_such_endpoint}},
        # Gradio keeps ~0.5 MiB of per-session copies for every session it has seen (10,000 by default,
        # ~10 GB); past this many, the oldest sessions' copies go (their results live in shared/results.py)
        state_session_capacity=SESSION_CAPACITY,
        **kwargs,
    )


def no_such_endpoint(request: Any, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "No endpoint has that name; the API page lists the public ones."}, status_code=404)


def queue_securely(demo: gr.Blocks, settings: Settings) -> None:
    """The one queue every request goes through, and nothing around it.

    - ``api_open=False``: ``/run/<name>`` (and ``/api/<name>``) refuse queued events instead of running
      them beside the queue and its ``gpu`` concurrency group; every event is queued;
    - an event meant only for the page (``api_visibility="private"``) gets no name, so no named route
      (``/call/<name>``) reaches it: the page itself calls it by its index through ``/queue/join``;
    - every join passes ``Admission`` before it is queued.
    """
    demo.queue(max_size=settings.max_queue, default_concurrency_limit=1, api_open=False)
    for fn in demo.fns.values():
        if fn.api_visibility == "private":
            fn.api_name = None
    Admission(demo, settings)


class Admission:
    """Every job a client asks for (the page's ``/queue/join``, gradio_client, ``/call/<name>``) passes here
    before it is queued, and is refused with a message if:

    - it sends fewer values than the event takes (Gradio would fail later, with no message);
    - a number for a page's ``gr.Number`` / ``gr.Slider`` is not one the shared rule accepts (Gradio's
      own preprocessing would compare or round a string, NaN or a 400-digit integer and fail with no message);
    - it is a model job (``gpu`` group) and its visitor already has ``jobs_per_visitor`` of them
      queued or running.

    The count is read from the queue itself (jobs leave it when they finish, fail or are cancelled),
    plus the joins of the visitor that are being admitted now, so concurrent joins cannot overshoot.
    The app renders no ``gr.render`` blocks, so every event is in ``demo.fns``.
    """

    def __init__(self, demo: gr.Blocks, settings: Settings) -> None:
        self.fns = demo.fns
        self.queue = demo._queue
        self.limit = settings.jobs_per_visitor
        self.trust_forwarded_for = settings.trust_forwarded_for
        self.joining: Counter[str] = Counter()  # heavy joins per visitor between this check and the queue
        self._push = demo._queue.push
        demo._queue.push = self.push

    async def push(self, body: Any, request: Any, username: str | None):
        """``Queue.push``'s contract: (admitted, event id or message, state)."""
        if body.fn_index is None:
            return await self._push(body, request, username)
        fn = self.fns.get(body.fn_index)
        if fn is None:
            return False, f"There is no event {body.fn_index}.", "error"
        body.data = self.with_defaults(fn, body.data)
        problem = self.values_problem(fn, body.data)
        if problem is not None:
            return self.refuse(fn, *problem, request)
        if fn.concurrency_id not in MODEL_GROUPS or not self.limit:
            return await self._push(body, request, username)
        who = visitor(request, trust_forwarded_for=self.trust_forwarded_for)
        held = self.jobs_of(who)
        if held >= self.limit:
            message = (
                f"You already have {held} model jobs queued or running (the limit is {self.limit} per visitor). "
                "Wait for one to finish, then try again."
            )
            return self.refuse(fn, 0, message, request)
        self.joining[who] += 1  # no await between the count and this: one event loop runs every push
        try:
            return await self._push(body, request, username)
        finally:
            self.joining[who] -= 1
            if not self.joining[who]:
                del self.joining[who]

    def jobs_of(self, who: str) -> int:
        """Model jobs of this visitor in the queue (waiting or running), plus those being admitted."""
        trust = self.trust_forwarded_for
        events = list(self.queue.event_ids_to_events.values())
        queued = sum(
            1
            for e in events
            if e.concurrency_id in MODEL_GROUPS and visitor(e.request, trust_forwarded_for=trust) == who
        )
        return queued + self.joining[who]

    @staticmethod
    def with_defaults(fn: Any, data: list[Any]) -> list[Any]:
        """A documented endpoint's missing trailing values filled from its function's defaults, so a raw
        client written before a parameter was added (``/chat``'s ``mode``) keeps working."""
        if not fn.api_name or not isinstance(data, list) or len(data) >= len(fn.inputs):
            return data
        parameters = inspect.signature(fn.fn).parameters
        missing = fn.input_parameter_names[len(data) : len(fn.inputs)]
        defaults = [getattr(parameters.get(name), "default", inspect.Parameter.empty) for name in missing]
        if not missing or any(d is inspect.Parameter.empty or not isinstance(d, (str, int, float)) for d in defaults):
            return data
        return [*data, *defaults]

    def values_problem(self, fn: Any, data: list[Any]) -> tuple[int, str] | None:
        """(the input at fault, a message) for values the event cannot take, or None."""
        names = [self.parameter(fn, i) for i in range(len(fn.inputs))]
        if len(data) < len(fn.inputs) and not fn.cancels:
            what = f"/{fn.api_name}" if fn.api_name else "This event"
            return 0, f"{what} takes {len(fn.inputs)} values ({', '.join(names)}); the request sent {len(data)}."
        for i, (component, value) in enumerate(zip(fn.inputs, data, strict=False)):
            if isinstance(component, (gr.Number, gr.Slider)):
                problem = number_problem(names[i], value, optional=isinstance(component, gr.Number))
                if problem:
                    return i, problem
        return None

    @staticmethod
    def parameter(fn: Any, i: int) -> str:
        names = fn.input_parameter_names
        label = getattr(fn.inputs[i], "label", None)
        return (names[i] if i < len(names) else None) or label or f"value {i + 1}"

    def refuse(self, fn: Any, index: int, message: str, request: Any):
        """A refusal each client shows. The page (Gradio's frontend marks its joins ``x-gradio-user: app``)
        shows a plain one (HTTP 400) as an error toast, as it does a ``gr.Error``; gradio_client shows only
        a validation answer (HTTP 422: one entry per input, the message on ``index``), raising a
        ``ValidationError`` with it; a raw client reads either in the response's ``detail``."""
        if not fn.inputs or request.headers.get("x-gradio-user") == "app":
            return False, message, "error"
        answer = [{"__type__": "validate", "is_valid": True, "message": ""} for _ in fn.inputs]
        answer[index] = {**answer[index], "is_valid": False, "message": message}
        answer[index]["parameter_name"] = self.parameter(fn, index)
        return False, answer, "validator_error"


def run_alone(build_ui: Callable[[], object], title: str, argv: list[str] | None = None) -> None:
    """``python -m demos.<tab>``: the tab on its own, with the app's settings and secure launch."""
    settings = parse_settings(sys.argv[1:] if argv is None else argv)
    runtime.configure(settings)
    launch(standalone(build_ui, title), settings)


def standalone(build_ui: Callable[[], object], title: str) -> gr.Blocks:
    """One tab in Blocks of its own, queued like the app."""
    with gr.Blocks(title=f"{title} · GenAI Playground", analytics_enabled=False, delete_cache=TEMP_FILES) as demo:
        build_ui()
    queue_securely(demo, runtime.get().settings)
    return demo
