"""The Chat tab's Gradio glue and layout: a turn begins, streams and ends; ``build_ui``.

Run alone: ``python -m demos.chat``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import gradio as gr

from demos.chat.core import (
    HOW_IT_WORKS,
    LIMITS,
    MAX_HISTORY_CHARS,
    MAX_HISTORY_MESSAGES,
    MAX_MESSAGE_CHARS,
    MAX_MODEL_CHARS,
    MAX_NEW_TOKENS,
    REPETITION_PENALTY,
    SEED,
    SLIDERS,
    TEMPERATURE,
    TOP_K,
    TOP_P,
    _text_of,
    build_messages,
    normalize_history,
    recent,
    validate_message,
    validate_settings,
)
from demos.chat.engine import (
    reply_on_gpu,
    stream_from_server,
    stream_reply,
)
from demos.chat.modes import MODES, apply_mode, check_mode, passages_markdown
from demos.chat.view import (
    STATS_PLACEHOLDER,
    TOKEN_VIEW_PLACEHOLDER,
    answered_turns,
    context_gauge_html,
    export_about,
    failure_note,
    is_failure_note,
    stats_markdown,
    to_json,
    to_markdown,
    token_table,
    token_view_html,
)
from demos.glue import INTERACTIVE, StopFlags, default_model, model_choices, session_id, user_error
from demos.numbers import Box, fitted_updates
from shared import catalog, compute, runtime, scratch
from shared.engines import Reply
from shared.loaders import CausalLM
from shared.validation import check_text

# --- Gradio glue: cached model in, pure functions, failures → one message ---------------------

_stops = StopFlags()  # session → its running reply's stop flag


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


_turns = Turns()


def _load(model: str) -> CausalLM:
    """The cached model, loaded on a model worker (the load runs torch ops too)."""
    try:
        return compute.run(runtime.causal_lm, model, lane=compute.INTERACTIVE)
    except Exception as exc:
        raise user_error(exc, "Loading the model") from None


def _generate(
    model: str,
    system_prompt: str,
    history: object,
    settings: dict,
    request: gr.Request | None,
    mode: object = "direct",
    retrieved: list | None = None,
) -> Iterator[Reply]:
    """Validate, apply the mode, load, stream; registers a stop flag for this session while it runs.
    ``history`` ends with the message to answer, so it may hold one message more than a history.
    The passages retrieval found (if any) are added to ``retrieved``."""
    try:
        conversation = normalize_history(
            history, max_messages=MAX_HISTORY_MESSAGES + 1, max_chars=MAX_HISTORY_CHARS + MAX_MESSAGE_CHARS
        )
        messages = build_messages(system_prompt if system_prompt is not None else "", conversation)
        generation = validate_settings(**settings)
        if not messages or messages[-1]["role"] != "user":
            raise ValueError("The conversation must end with a user message.")
        messages, found = apply_mode(check_mode(mode), messages)
        spec = catalog.resolve(model, "chat", allow_any_model=runtime.get().settings.allow_any_model)
    except Exception as exc:
        raise user_error(exc, "Generation") from None
    if retrieved is not None:
        retrieved.extend(found)
    gpu = compute.on_gpu(reply_on_gpu, (model,), {})  # ZeroGPU: the whole reply in its worker
    lm = _load(model) if spec.engine == "transformers" and not gpu else None
    stop = _stops.start(request)
    interval = runtime.get().settings.stream_interval
    try:
        if gpu:
            yield from compute.stream(reply_on_gpu, model, messages, generation, interval)
        elif lm is not None:
            yield from stream_reply(lm, messages, generation, stop, interval)
        else:
            yield from stream_from_server(runtime.endpoint(spec), messages, generation, stop, interval)
    except Exception as exc:
        raise user_error(exc, "Generation") from None
    finally:
        _stops.finish(request, stop)  # a client that left (GeneratorExit) or an error ends the generation too


def chat(
    message: str,
    history: list | None = None,
    system_prompt: str = "",
    temperature: float = TEMPERATURE,
    top_p: float = TOP_P,
    top_k: int = TOP_K,
    max_new_tokens: int = MAX_NEW_TOKENS,
    repetition_penalty: float = REPETITION_PENALTY,
    seed: int = SEED,
    model: str = "",
    mode: str = "direct",
    request: gr.Request = None,  # type: ignore[assignment]
) -> Iterator[str]:
    """Reply to `message` given `history` (openai-style {role, content} dicts); streams the reply text.

    `model` is a catalog key (empty = the preset's chat model). temperature 0 (or below 0.001) = greedy.
    `mode`: "direct", "few-shot" (example turns first) or "retrieval" (passages from the app's own
    explanations in the system prompt). A reply ends after max_new_tokens, at end of turn, or after 120 s.
    """
    try:
        text = validate_message(message)
        history = normalize_history(history)
    except Exception as exc:
        raise user_error(exc, "Generation") from None
    model = default_model("chat") if model is None or model == "" else model  # anything else: resolve's message
    settings = dict(zip(LIMITS, (temperature, top_p, top_k, max_new_tokens, repetition_penalty, seed), strict=True))
    history = [*history, {"role": "user", "content": text}]
    for reply in _generate(model, system_prompt, history, settings, request, mode):
        if reply.text or reply.stats is not None:
            yield reply.text


# --- the page's events: a turn begins (Send, Regenerate, Edit), streams, ends -----------------


def _busy() -> tuple:
    """Send shows that a reply is on its way; Stop becomes active; old export files go."""
    return gr.Button("Replying…", interactive=False), gr.Button(interactive=True), gr.File(value=None, visible=False)


def reply_done(request: gr.Request) -> tuple:
    """After every reply, whatever its outcome: Send is back, Stop goes quiet."""
    _turns.end(request)
    return gr.Button("Send", interactive=True), gr.Button(interactive=False)


def stop_generation(request: gr.Request) -> None:
    _stops.stop(request)
    _turns.request_stop(request)


def add_user_message(message: str, history: list, request: gr.Request = None) -> tuple:  # type: ignore[assignment]
    """Add the typed message to the conversation (a refused one stays in the box), and begin a turn."""
    try:
        text = validate_message(message)
    except Exception as exc:
        raise user_error(exc) from None
    _turns.begin(request)
    return [*(history or []), {"role": "user", "content": text}], "", *_busy(), time.time()


def last_user_turn(history: list, request: gr.Request = None) -> tuple:  # type: ignore[assignment]
    """History up to and including the last user message (what regenerate answers again)."""
    history = list(history or [])
    while history and history[-1]["role"] != "user":
        history.pop()
    if not history:
        raise gr.Error("There is no message to regenerate a reply for.")
    _turns.begin(request)
    return history, *_busy(), time.time()


def edit(history: list, edit_data: gr.EditData, request: gr.Request = None) -> tuple:  # type: ignore[assignment]
    """Keep the conversation up to the edited user message, with its new text; a reply follows."""
    index = edit_data.index[0] if isinstance(edit_data.index, (list, tuple)) else edit_data.index
    value = edit_data.value if isinstance(edit_data.value, str) else _text_of(edit_data.value, index)
    try:
        value = validate_message(value)
    except Exception as exc:
        raise user_error(exc) from None
    _turns.begin(request)
    return [*list(history or [])[:index], {"role": "user", "content": value}], *_busy(), time.time()


RESPOND_OUTPUTS = ("chatbot", "stats", "gauge", "token_html", "tokens", "prompt", "passages", "meta")


def _update(conversation: list, **changes) -> tuple:
    """One update of respond's outputs: the conversation, and whichever panels ``changes`` names."""
    return (conversation, *(changes.get(name, gr.skip()) for name in RESPOND_OUTPUTS[1:]))


def _queued(sent_at: object, began: float) -> float | None:
    """Seconds from Send to the model starting on it (None when the page sent no time)."""
    if isinstance(sent_at, (int, float)) and not isinstance(sent_at, bool) and 0 <= began - sent_at < 86_400:
        return began - sent_at
    return None


def respond(
    model,
    history,
    system_prompt,
    temperature,
    top_p,
    top_k,
    max_new_tokens,
    repetition_penalty,
    seed,
    mode="direct",
    sent_at=None,
    request: gr.Request = None,  # type: ignore[assignment]
    progress=gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's idiom)
):
    """Stream the reply into the chatbot; at the end fill the stats, token view and prompt view.

    The model is fed the conversation's answered turns (``answered_turns``). A failure never raises:
    the conversation gets a failure note with the reason (the panels say it too), so nothing the
    user typed is lost and the next Send or ↻ works."""
    queued = _queued(sent_at, time.time())
    settings = dict(zip(LIMITS, (temperature, top_p, top_k, max_new_tokens, repetition_penalty, seed), strict=True))
    history = list(history or [])
    carried, left_out = recent(answered_turns(history))  # a request carries the conversation's newest part
    retrieved: list = []
    prompt_shown = False
    try:
        if _turns.stop_requested(request):
            raise gr.Error("Stopped before the reply started.")
        for reply in _generate(model, system_prompt, carried, settings, request, mode, retrieved):
            conversation = [*history, {"role": "assistant", "content": reply.text}] if reply.text else history
            if reply.stats is None:
                shown = {} if prompt_shown else {"prompt": reply.prompt, "passages": passages_markdown(retrieved, mode)}
                prompt_shown = True  # what the model sees, as soon as it is known
                yield _update(conversation, **shown)
                continue
            stats = dataclasses.replace(reply.stats, dropped_messages=reply.stats.dropped_messages + left_out)
            yield _update(
                conversation,
                stats=stats_markdown(stats, queued),
                gauge=context_gauge_html(stats.prompt_tokens + stats.completion_tokens, stats.context_window),
                token_html=token_view_html(reply.tokens or [], stats.probs_note),
                tokens=token_table(reply.tokens or []),
                prompt=reply.prompt,
                passages=passages_markdown(retrieved, mode),
                meta={
                    "model": model,
                    "mode": mode,
                    "settings": settings,
                    "seed_used": stats.seed,
                    "finish": stats.finish,
                    "engine": stats.engine,
                    "tokens": [dataclasses.asdict(info) for info in reply.tokens or []],  # for a share link
                    "probs_note": stats.probs_note,
                },
            )
    except gr.Error as exc:
        yield _update(
            [*history, failure_note(exc.message)],
            stats=f"⚠️ **No reply:** {exc.message}",
            token_html=TOKEN_VIEW_PLACEHOLDER,
            tokens=None,
        )
    finally:
        _turns.end(request)


def cleared_panels() -> tuple:
    """The panels with no reply to describe: stats, gauge, token view, tokens, prompt, passages, export files."""
    no_files = gr.File(value=None, visible=False)
    return STATS_PLACEHOLDER, context_gauge_html(0, 0), TOKEN_VIEW_PLACEHOLDER, None, "", "", no_files


def undo(history: list, request: gr.Request = None) -> tuple:  # type: ignore[assignment]
    """Remove the last user message, its reply and the panels about it; the message goes back in the box."""
    if _turns.busy(request):
        raise gr.Error("A reply is being written: press Stop first, then Undo.", title="Still replying")
    history = list(history or [])
    while history and history[-1]["role"] != "user":
        history.pop()
    if not history:
        return [], "", *cleared_panels()
    last = history.pop()
    return history, _text_of(last["content"], len(history)), *cleared_panels()


def clear(request: gr.Request = None) -> tuple:  # type: ignore[assignment]
    if _turns.busy(request):
        raise gr.Error("A reply is being written: press Stop first, then Clear.", title="Still replying")
    return [], *cleared_panels()


# The sliders' own ranges (the server's LIMITS are wider for the API): a typed number past one is set
# to its end by the slider; fit_slider says so. Whole-number sliders take whole numbers.
BOXES = {
    f"chat-{name}": Box(name, low, high, 1 if LIMITS[name][2] else None)
    for name, (low, high, _default, _step, _info) in SLIDERS.items()
}


def fit_slider(evt: gr.EventData) -> list:
    """A slider let go or its box left: a typed number it could not take is set to the nearest one, with a warning."""
    return fitted_updates(BOXES, evt)


def mode_note(mode: str) -> str:
    try:
        mode = check_mode(mode)
    except Exception as exc:
        raise user_error(exc) from None
    return f"*{MODES[mode]} — applies from the next reply.*"


def conversation_as_seen(model: str, history: list, system_prompt: str) -> tuple[str, str]:
    """(model, the conversation rendered through its chat template) for the attention tab."""
    try:
        messages = build_messages(system_prompt or "", normalize_history(answered_turns(list(history or []))))
        if not messages:
            raise ValueError("Chat first: there is no conversation to look at yet.")
    except Exception as exc:
        raise user_error(exc) from None
    lm = _load(model)
    return model, lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)


def export(
    history: list, model: str, system_prompt: str = "", mode: str = "direct", last: dict | None = None
) -> gr.File:
    """The conversation as JSON and Markdown files in the swept scratch folder (deleted after
    scratch.MAX_AGE_S, or sooner when the folder outgrows its budget), with what made it: the model
    and its revision, system prompt, mode, the last reply's settings and the seed it used. One export
    is at most MAX_HISTORY_MESSAGES messages and MAX_HISTORY_CHARS characters."""
    try:
        messages = normalize_history([m for m in (history or []) if not is_failure_note(m)])
        if not messages:
            raise ValueError("Nothing to export yet.")
        model = check_text("model", model, MAX_MODEL_CHARS)
        system_prompt = check_text("system prompt", system_prompt or "", MAX_MESSAGE_CHARS)
        spec = catalog.CATALOG.get(model)
        last = last if isinstance(last, dict) else {}
        about = export_about(
            model,
            spec.revision if spec else None,
            system_prompt,
            check_mode(mode),
            last.get("settings"),
            {k: v for k, v in last.items() if k in ("seed_used", "finish", "mode", "model", "engine")},
        )
        folder = scratch.folder("chat-export")
        (folder / "conversation.json").write_text(to_json(messages, model, about), encoding="utf-8")
        (folder / "conversation.md").write_text(to_markdown(messages, {"model": model, **about}), encoding="utf-8")
    except Exception as exc:
        raise user_error(exc, "Export") from None
    return gr.File(value=[str(folder / "conversation.json"), str(folder / "conversation.md")], visible=True)


@dataclasses.dataclass
class ChatUI:
    """The Chat tab's components that other tabs link to (the bridge to attention)."""

    model: gr.Dropdown
    chatbot: gr.Chatbot
    system_prompt: gr.Textbox
    to_attention: gr.Button
    settings: list  # the sampling controls, in LIMITS' order
    mode: gr.Radio
    stats: gr.Markdown
    meta: gr.State  # the last reply's settings, seed and tokens


def _conversation_column(choices, default: str, allow_custom: bool) -> dict:
    """Model picker, conversation, message box and the row of actions."""
    parts = {}
    parts["model"] = gr.Dropdown(
        choices, value=default, label="Model", allow_custom_value=allow_custom, elem_id="chat-model"
    )
    parts["chatbot"] = gr.Chatbot(
        label="Conversation",
        editable="user",
        height=460,
        elem_id="chatbot",
        buttons=["copy", "copy_all"],
        placeholder="Ask anything. Replies stream token by token.",
    )
    with gr.Row(elem_id="chat-compose"):
        parts["message"] = gr.Textbox(
            placeholder="Type a message and press Enter",
            show_label=False,
            scale=5,
            elem_id="chat-input",
            autofocus=True,
        )
        parts["send"] = gr.Button("Send", variant="primary", scale=1, min_width=70, elem_id="chat-send")
        parts["stop"] = gr.Button("Stop", variant="stop", scale=1, min_width=70, elem_id="chat-stop", interactive=False)
    with gr.Row(elem_id="chat-actions"):
        for name, label in (
            ("regenerate", "Regenerate"),
            ("undo", "Undo"),
            ("clear", "Clear"),
            ("export", "Export"),
            ("to_attention", "See its attention →"),
        ):
            parts[name] = gr.Button(label, size="sm", min_width=0, elem_id=f"chat-{name.replace('_', '-')}")
    parts["stats"] = gr.Markdown(STATS_PLACEHOLDER, elem_id="chat-stats")
    parts["gauge"] = gr.HTML(context_gauge_html(0, 0), elem_id="chat-gauge")
    parts["files"] = gr.File(
        label="Exported conversation", file_count="multiple", visible=False, elem_id="chat-export-files"
    )
    return parts


def _settings_column() -> list:
    """The mode, system prompt, sampling sliders and the seed, in the order ``respond`` takes them."""
    mode = gr.Radio(
        [(label, key) for key, label in MODES.items()],
        value="direct",
        label="How the model is used",
        info="Few-shot and retrieval change the prompt itself: see the panels below the conversation.",
        elem_id="chat-mode",
    )
    system_prompt = gr.Textbox(
        label="System prompt",
        lines=2,
        placeholder="Empty = the model's own default",
        info="Instructions the model reads before the conversation.",
        elem_id="chat-system",
    )
    with gr.Accordion("Sampling", open=True, elem_id="chat-sampling"):
        sliders = [
            gr.Slider(low, high, default, step=step, label=name, info=info, elem_id=f"chat-{name}")
            for name, (low, high, default, step, info) in SLIDERS.items()
        ]
        seed = gr.Number(
            SEED, precision=0, label="seed", info="Same seed + settings = same reply. -1 = random each time."
        )
    return [mode, system_prompt, *sliders, seed]


def _explainer_panels() -> list:
    """Retrieved passages, token view, the rendered prompt and "How it works", below the conversation."""
    with gr.Accordion("What retrieval found (Retrieval mode)", open=True):
        passages = gr.Markdown(passages_markdown([], "direct"), elem_id="chat-passages")
    with gr.Accordion("Token view of the last reply", open=True):
        token_html = gr.HTML(TOKEN_VIEW_PLACEHOLDER, elem_id="token-view")
        tokens = gr.Dataframe(
            headers=["#", "token", "p", "top alternatives"], label="Tokens", max_height=260, interactive=False
        )
    with gr.Accordion("What the model sees (chat template, special tokens visible)", open=False):
        prompt_view = gr.Code(label="Rendered prompt", language=None, elem_id="prompt-view", interactive=False)
    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS)
    return [passages, token_html, tokens, prompt_view]


def build_ui() -> ChatUI:
    """The Chat tab, rendered inside the app's Blocks (or alone, below)."""
    rt = runtime.get()
    heavy = dict(concurrency_id=INTERACTIVE, concurrency_limit=rt.concurrency)
    private = dict(api_visibility="private")
    with gr.Row():
        with gr.Column(scale=3):
            ui = _conversation_column(model_choices("chat"), default_model("chat"), rt.settings.allow_any_model)
        with gr.Column(scale=2):
            mode, system_prompt, *settings = _settings_column()
    passages, token_html, tokens, prompt_view = _explainer_panels()
    model, chatbot, message = ui["model"], ui["chatbot"], ui["message"]
    meta, sent_at = gr.State(None), gr.State(None)  # the last reply's settings and seed; when Send was pressed
    # A refused Send / Undo / Clear says why in a toast; its badge goes on a State (nothing to cover), so no red
    # "Error" hides the conversation and the reply still streaming into it.
    quiet = dict(api_visibility="private", show_progress="hidden", show_progress_on=[sent_at])
    outputs = [chatbot, ui["stats"], ui["gauge"], token_html, tokens, prompt_view, passages, meta]
    begun = [ui["send"], ui["stop"], ui["files"], sent_at]
    panels = [ui["stats"], ui["gauge"], token_html, tokens, prompt_view, passages, ui["files"]]

    replies = []

    def reply_after(event):
        inputs = [model, chatbot, system_prompt, *settings, mode, sent_at]
        # progress (queue position, a refusal) shows on the stats line; the reply streams into the conversation
        reply = event.success(respond, inputs, outputs, show_progress_on=[ui["stats"]], **heavy, **private)
        replies.append(reply)  # what Stop cancels on ZeroGPU, where its flag can't reach the forked worker
        for after in (reply.then, reply.failure):  # a job the queue refused (full, job limit) runs no .then
            after(reply_done, None, [ui["send"], ui["stop"]], **quiet)

    # Enter / Send: add the message (kept in the box if refused), then stream the reply.
    for trigger in (message.submit, ui["send"].click):
        reply_after(trigger(add_user_message, [message, chatbot], [chatbot, message, *begun], **quiet))
    for trigger in (ui["regenerate"].click, chatbot.retry):
        reply_after(trigger(last_user_turn, chatbot, [chatbot, *begun], **quiet))
    reply_after(chatbot.edit(edit, chatbot, [chatbot, *begun], **quiet))
    cancels = replies if rt.settings.zero_gpu else None
    ui["stop"].click(stop_generation, None, None, concurrency_limit=None, cancels=cancels, **private)
    for trigger in (ui["undo"].click, chatbot.undo):
        trigger(undo, chatbot, [chatbot, message, *panels], **quiet)
    ui["clear"].click(clear, None, [chatbot, *panels], **quiet)
    mode.change(mode_note, mode, passages, **quiet)
    sliders = settings[:-1]  # the seed is a plain number box: the server refuses a bad one, with a note
    gr.on([s.release for s in sliders], fit_slider, None, sliders, concurrency_limit=None, **quiet)
    ui["export"].click(export, [chatbot, model, system_prompt, mode, meta], ui["files"], **private)

    # The documented API: message, history, settings → streamed reply text.
    gr.api(chat, api_name="chat", **heavy)
    return ChatUI(model, chatbot, system_prompt, ui["to_attention"], settings, mode, ui["stats"], meta)
