"""What every tab's Gradio glue shares: who is asking, how to stop their job, one way to turn a
failure into a message, and the queue every request goes through.

Each handler keeps its own ``try/except`` in sight and calls ``user_error(exc)`` for the message:

    try:
        result = compute.run(pure_function, model_key, settings)
    except Exception as exc:
        raise user_error(exc) from None
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import gradio as gr
import torch
from fastapi.responses import JSONResponse
from gradio.route_utils import FnIndexInferError

from shared import catalog, runtime
from shared.engines import EngineError
from shared.loaders import ModelLoadError
from shared.settings import Settings, is_loopback, parse_settings
from shared.validation import check_number

logger = logging.getLogger("genai_playground")

HEAVY = "gpu"  # the concurrency group of long model jobs (images, latents); its limit is the device's concurrency
INTERACTIVE = "interactive"  # chat and attention: their own group and model worker, ahead of long jobs (compute.py)
MODEL_GROUPS = (HEAVY, INTERACTIVE)  # the groups whose jobs count against a visitor's limit
TEMP_FILES = (600, 3600)  # Gradio's copies of returned files: every 10 min, those older than 1 h are deleted
FLOAT_MAX = sys.float_info.max


def session_id(request: gr.Request | None) -> str:
    """The browser session (or API client) a request comes from."""
    return getattr(request, "session_hash", None) or "no-session"


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


class Turns:
    """Sessions whose reply is on its way, from Send until the reply ends. While one is, the page
    refuses another Send (the message stays in the box), Undo and Clear: the streaming reply would
    otherwise write its own copy of the conversation over theirs. A Stop pressed before the reply
    started is remembered, so the reply ends at once. A mark past its deadline (a reply whose end
    never came) is ignored."""

    DEADLINE_S = 600.0

    def __init__(self) -> None:
        self._turns: dict[str, list] = {}  # session → [deadline, stop requested]
        self._lock = threading.Lock()

    def busy(self, request: gr.Request | None) -> bool:
        with self._lock:
            turn = self._turns.get(session_id(request))
            return turn is not None and turn[0] > time.monotonic()

    def begin(self, request: gr.Request | None) -> None:
        if self.busy(request):
            raise gr.Error(
                "A reply is still being written. Your message stays in the box: send it when the reply "
                "ends, or press Stop first.",
                title="Still replying",
            )
        with self._lock:
            self._turns[session_id(request)] = [time.monotonic() + self.DEADLINE_S, False]

    def request_stop(self, request: gr.Request | None) -> None:
        with self._lock:
            if (turn := self._turns.get(session_id(request))) is not None:
                turn[1] = True

    def stop_requested(self, request: gr.Request | None) -> bool:
        with self._lock:
            turn = self._turns.get(session_id(request))
            return turn is not None and turn[1]

    def end(self, request: gr.Request | None) -> None:
        with self._lock:
            self._turns.pop(session_id(request), None)


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


def number_problem(name: str, value: object, *, optional: bool) -> str | None:
    """What is wrong with a raw value for a page's number input, by the shared rule; None if nothing.

    The page sends a JSON number (or null for an empty ``gr.Number``). Only what Gradio's
    preprocessing cannot take is refused here; its bounds stay Gradio's (a session may have changed them)."""
    if value is None and optional:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{name} must be a number, got {type(value).__name__}."
    try:
        check_number(name, value, -FLOAT_MAX, FLOAT_MAX)  # NaN, ±inf and integers past a float's range
    except ValueError as exc:
        return str(exc)
    return None


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


# --- numbers typed into a box: one rule for every tab -------------------------------------------
# Gradio's slider clamps a typed number to its range when the box is left, silently. Each tab's
# sliders follow one visible rule instead: the number is set to the nearest value the box takes,
# with a warning that says what changed (the API refuses out-of-range values and names the range).


@dataclasses.dataclass(frozen=True)
class Box:
    """A number box: its label, its range, the spacing of the values it takes (None: any number) and
    what its maximum is (for the message)."""

    label: str
    low: float
    high: float
    step: float | None = 1
    maximum_is: str = "the maximum"


def _shown(value: float) -> str:
    if isinstance(value, int) and abs(value) >= 10**15:
        return f"a {len(str(abs(value)))}-digit number"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"


def fit_number(box: Box, raw: object) -> tuple[float | None, str | None]:
    """(the value the box takes, a message saying what changed) for a number typed into it.

    Past either end it is set to that end; between two values it takes (Width's multiples of 8,
    whole steps) to the nearer one, halves going up; an empty box to the minimum (what Gradio's
    slider does with one). ``(value, None)`` when nothing changes; ``(None, None)`` for what is no
    number at all (text, NaN): nothing to fit."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):  # an emptied box: the slider takes its minimum
        return box.low, f"{box.label}: the box was left empty; set to the minimum, {_shown(box.low)}."
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw  # exact, however large (a float of it could overflow)
    else:
        try:
            number = check_number(box.label, raw, -math.inf, math.inf)  # refuses NaN, ±inf, text, None, bools
        except ValueError:
            return None, None
        if number.is_integer() and box.step is not None:
            number = int(number)
    if number > box.high:
        return (
            box.high,
            f"{box.label}: {_shown(number)} is above {box.maximum_is}, {_shown(box.high)}; set to {_shown(box.high)}.",
        )
    if number < box.low:
        return (
            box.low,
            f"{box.label}: {_shown(number)} is below the minimum, {_shown(box.low)}; set to {_shown(box.low)}.",
        )
    if box.step is None:
        return number, None
    steps = math.floor((number - box.low) / box.step + 0.5)
    fitted = min(box.low + steps * box.step, box.high)
    fitted = int(fitted) if float(fitted).is_integer() else fitted
    if fitted == number:
        return fitted, None
    kind = "a whole number" if box.step == 1 else f"a multiple of {_shown(box.step)}"
    return fitted, f"{box.label}: {_shown(number)} is not {kind}; set to {_shown(fitted)}."


def fitted_updates(boxes: dict[str, Box], evt: gr.EventData) -> list:
    """For a slider's ``release`` (its outputs: the sliders of ``boxes``, in order, by elem_id): the
    number as typed (``evt`` carries it; the slider itself has already clamped it, silently) fitted by
    the rule into its slider, with a warning saying what changed; the others untouched."""
    updates = [gr.skip()] * len(boxes)
    name = getattr(evt.target, "elem_id", None)
    if name in boxes:
        value, message = fit_number(boxes[name], getattr(evt, "_data", None))
        if message:
            gr.Warning(message)
            updates[list(boxes).index(name)] = value
    return updates
