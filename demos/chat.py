"""Chat with an LLM, and see how it works: next-token prediction, chat templates and sampling.

Replies stream token by token from ``model.generate`` running in a thread; a Stop button (or a
client that goes away) ends that thread within about one token. Each reply reports time to
first token, tokens/s and how much of the context window it used, and shows every token shaded
by the probability the model gave it, with the alternatives it passed over.

Run alone: ``python -m demos.chat``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from html import escape

import gradio as gr

from demos._glue import StopFlags, default_model, model_choices, run_alone, user_error
from demos.chat_engine import (  # noqa: F401  (the tab's engine; tests reach it through the tab too)
    MIN_TEMPERATURE,
    ProbabilityRecorder,
    Reply,
    ReplyStats,
    TokenInfo,
    TokenStreamer,
    fit_to_context,
    render_prompt,
    stream_reply,
)
from shared import compute, runtime, scratch
from shared.loaders import CausalLM
from shared.validation import MAX_SEED, check_number, check_text

# --- knobs: defaults and the limits the server enforces -------------------------------------

TEMPERATURE = 0.7  # 0 (or below MIN_TEMPERATURE, 0.001) = greedy: always the most likely token
TOP_P = 0.9  # sample from the smallest set of tokens whose probabilities add up to this
TOP_K = 50  # ...and from at most this many tokens (0 = no limit)
MAX_NEW_TOKENS = 512  # reply length cap
REPETITION_PENALTY = 1.1  # > 1 makes tokens already in the text less likely
SEED = -1  # -1 = a new random seed each reply (the one used is reported)

LIMITS = {  # name: (low, high, integer?), in the order the handlers take them
    "temperature": (0.0, 2.0, False),
    "top_p": (0.01, 1.0, False),
    "top_k": (0, 1000, True),
    "max_new_tokens": (1, 4096, True),
    "repetition_penalty": (1.0, 2.0, False),
    "seed": (-1, MAX_SEED, True),
}
SLIDERS = {  # name: (UI low, UI high, default, step, one-line explanation); the server enforces LIMITS
    "temperature": (
        0,
        2,
        TEMPERATURE,
        0.05,
        f"Randomness: 0 (or below {MIN_TEMPERATURE:g}) = always the likeliest token (greedy).",
    ),
    "top_p": (0.01, 1, TOP_P, 0.01, "Sample only from the likeliest tokens that add up to this probability."),
    "top_k": (0, 200, TOP_K, 1, "…and from at most this many tokens (0 = no limit)."),
    "max_new_tokens": (1, 2048, MAX_NEW_TOKENS, 1, "Longest reply, in tokens."),
    "repetition_penalty": (1, 2, REPETITION_PENALTY, 0.05, "Above 1, tokens already used become less likely."),
}
MAX_MESSAGE_CHARS = 20_000  # one message; the window would drop everything else anyway
MAX_HISTORY_MESSAGES = 500  # messages accepted in a history (API), besides the new one; older turns get dropped to fit
MAX_HISTORY_CHARS = 1_000_000  # all of a history's messages together (~250k tokens, 30× SmolLM2's window)
MAX_MODEL_CHARS = 300  # a model key or hub id
ROLES = ("system", "user", "assistant")

HOW_IT_WORKS = """
**Next-token prediction.** A language model reads a sequence of tokens (pieces of words) and
outputs, for every token in its vocabulary, how likely it is to come next. Generating text is a
loop: pick one token, append it, predict again. The token view below shows that loop: each token
of the last reply shaded by the probability the model gave it, and what else it considered.

**Chat templates.** The model never sees "messages" — it sees one long text in which special
tokens mark who speaks (for SmolLM2, `<|im_start|>user … <|im_end|>`). The template turns the
conversation into that text; open *What the model sees* to read it. The reply ends when the model
itself predicts the end-of-turn token.

**Sampling.** *Temperature* divides the scores before they become probabilities: below 1 the
likely tokens get likelier (0 = always take the top one, "greedy"); above 1 the distribution
flattens and replies get more surprising. *Top-k* keeps only the k likeliest tokens, *top-p* the
smallest set whose probabilities add up to p; sampling then draws from what is left. *Repetition
penalty* lowers the scores of tokens already in the text. The *seed* fixes the random draws, so
the same seed and settings give the same reply.

**How a chat model is made.** Pre-training teaches next-token prediction on a huge amount of
text. *Supervised fine-tuning* (SFT) then trains on example conversations written in the chat
template. For *RLHF*, people rank several replies to the same prompt; a *reward model* learns to
score replies the way they ranked them; then the chat model is tuned with reinforcement learning
(*PPO*) to produce replies the reward model scores highly, while a penalty keeps it close to the
SFT model so it doesn't learn to game the reward. (SmolLM2-Instruct used SFT and DPO, a simpler
method that learns from the same preference pairs without a separate reward model.)
"""


# --- validation: every input is checked here, whatever the browser allowed -----------------


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    temperature: float = TEMPERATURE
    top_p: float = TOP_P
    top_k: int = TOP_K
    max_new_tokens: int = MAX_NEW_TOKENS
    repetition_penalty: float = REPETITION_PENALTY
    seed: int = SEED


def validate_settings(**raw: object) -> GenerationSettings:
    """GenerationSettings from untrusted values; ValueError names the first bad one."""
    checked = {}
    for name, value in raw.items():
        low, high, integer = LIMITS[name]
        checked[name] = check_number(name, value, low, high, integer=integer)
    return GenerationSettings(**checked)


def validate_message(message: object) -> str:
    if isinstance(message, str) and len(message) > MAX_MESSAGE_CHARS:
        raise ValueError(
            f"That message is {len(message):,} characters; the limit is {MAX_MESSAGE_CHARS:,}. "
            "Shorten it or split it into parts."
        )
    if isinstance(message, str) and not message.strip():
        raise ValueError("Type a message first: it is empty.")
    return check_text("message", message, MAX_MESSAGE_CHARS, required=True)


def _text_of(content: object, index: int) -> str:
    """Text of a message's content: a string, or Gradio's list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise ValueError(f"History message {index} has non-text content; this chat reads text only.")
        return "".join(texts)
    raise ValueError(f"History message {index} has content of type {type(content).__name__}; expected text.")


def normalize_history(
    history: object, *, max_messages: int = MAX_HISTORY_MESSAGES, max_chars: int = MAX_HISTORY_CHARS
) -> list[dict[str, str]]:
    """Plain ``{"role", "content"}`` messages from a Gradio or API history, or a clear ValueError."""
    if history is None:
        return []
    if not isinstance(history, list):
        raise ValueError("History must be a list of {role, content} messages.")
    if len(history) > max_messages:
        raise ValueError(
            f"History has {len(history):,} messages; the limit is {max_messages:,}. Send only the recent part."
        )
    messages, chars = [], 0
    for index, item in enumerate(history):
        if not isinstance(item, dict) or "role" not in item or "content" not in item:
            raise ValueError(f"History message {index} must be an object with 'role' and 'content'.")
        role = item["role"]
        if role not in ROLES:
            raise ValueError(f"History message {index} has role {str(role)[:40]!r}; use user, assistant or system.")
        text = _text_of(item["content"], index)
        if len(text) > MAX_MESSAGE_CHARS:
            raise ValueError(f"History message {index} is longer than {MAX_MESSAGE_CHARS:,} characters.")
        check_text(f"history message {index}", text, MAX_MESSAGE_CHARS)
        chars += len(text)
        if chars > max_chars:
            raise ValueError(
                f"History has more than {max_chars:,} characters (by message {index}); the model's window "
                "holds far less, so send only the recent part."
            )
        messages.append({"role": role, "content": text})
    return messages


def recent(history: list) -> tuple[list, int]:
    """The newest part of the page's conversation that a request may carry (MAX_HISTORY_MESSAGES
    and MAX_HISTORY_CHARS, besides the message being answered), starting on a user turn; and how
    many older messages were left out. The page keeps the whole conversation; the model's window
    holds far less than this anyway, so a long chat keeps working as it does in ChatGPT."""
    start, chars = len(history), 0
    while start > 0 and len(history) - start <= MAX_HISTORY_MESSAGES:
        item = history[start - 1]
        chars += len(str(item.get("content", ""))) if isinstance(item, dict) else 0  # an estimate; validated after
        if chars > MAX_HISTORY_CHARS + MAX_MESSAGE_CHARS:
            break
        start -= 1
    while 0 < start < len(history) - 1 and not (
        isinstance(history[start], dict) and history[start].get("role") == "user"
    ):
        start += 1
    return history[start:], start


# --- prompt building ------------------------------------------------------------------------


def build_messages(system_prompt: str, history: list[dict[str, str]]) -> list[dict[str, str]]:
    """System prompt (if any) + history. An empty system prompt keeps the model's own default."""
    check_text("system prompt", system_prompt, MAX_MESSAGE_CHARS)
    turns = [m for m in history if m["role"] != "system"]
    system = system_prompt.strip() or next((m["content"] for m in history if m["role"] == "system"), "")
    return ([{"role": "system", "content": system}] if system else []) + turns


# --- presentation: pure functions from results to Markdown / HTML ---------------------------


def stats_markdown(stats: ReplyStats) -> str:
    used = stats.prompt_tokens + stats.completion_tokens
    parts = [
        f"**{stats.ttft_s:.2f} s** to first token",
        f"**{stats.tokens_per_s:.1f}** tokens/s",
        f"{stats.prompt_tokens:,} prompt + {stats.completion_tokens:,} completion tokens",
        f"context {used:,} / {stats.context_window:,}",
        "greedy" if stats.greedy else f"sampled, seed {stats.seed}",
        f"ended: {stats.finish}",
    ]
    text = " · ".join(parts)
    if stats.dropped_messages:
        text += (
            f"\n\n⚠️ The conversation outgrew the model's {stats.context_window:,}-token window: the oldest "
            f"{stats.dropped_messages} message(s) were left out of what the model saw."
        )
    return text


def context_gauge_html(used: int, window: int) -> str:
    share = min(used / window, 1.0) if window else 0.0
    colour = "#16a34a" if share < 0.7 else "#d97706" if share < 0.9 else "#dc2626"
    return (
        f'<div class="context-gauge" title="{used:,} of {window:,} tokens">'
        f'<div style="font-size:0.85em">Context: {used:,} / {window:,} tokens ({share:.0%})</div>'
        f'<div style="background:#e5e7eb;border-radius:4px;height:8px">'
        f'<div style="width:{share * 100:.1f}%;background:{colour};height:8px;border-radius:4px"></div></div></div>'
    )


def _show(token: str) -> str:
    """A token as readable text, newlines made visible."""
    return token.replace("\n", "\\n")


def token_view_html(tokens: list[TokenInfo]) -> str:
    """Each token shaded by its probability (darker = less likely); hover for the alternatives."""
    spans = []
    for info in tokens:
        alternatives = "\n".join(f"{_show(t)!r}: {p:.1%}" for t, p in info.top)
        alpha = 0.05 + 0.6 * (1 - info.prob)
        spans.append(
            f'<span class="tok" style="background:rgba(220,38,38,{alpha:.2f});border-radius:3px;'
            f'padding:1px 0;white-space:pre-wrap" title="p={info.prob:.1%}\n{escape(alternatives, quote=True)}">'
            f"{escape(_show(info.token))}</span>"
        )
    legend = (
        '<div style="font-size:0.8em;margin-bottom:4px">Shade = how surprised the model was '
        "(white: it was sure; red: it was a long shot). Hover a token for its top alternatives.</div>"
    )
    return legend + '<div class="token-view" style="line-height:1.9">' + "".join(spans) + "</div>"


def token_table(tokens: list[TokenInfo]) -> list[list[str]]:
    return [
        [str(i), _show(info.token), f"{info.prob:.1%}", ", ".join(f"{_show(t)} {p:.0%}" for t, p in info.top)]
        for i, info in enumerate(tokens)
    ]


def to_markdown(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"**{m['role'].capitalize()}:**\n\n{m['content']}" for m in messages) + "\n"


def to_json(messages: list[dict[str, str]], model: str) -> str:
    return json.dumps({"model": model, "messages": messages}, ensure_ascii=False, indent=2)


# --- Gradio glue: cached model in, pure functions, failures → one message ---------------------

_stops = StopFlags()  # session → its running reply's stop flag


def _load(model: str) -> CausalLM:
    """The cached model, loaded on a model worker (the load runs torch ops too)."""
    try:
        return compute.run(runtime.causal_lm, model)
    except Exception as exc:
        raise user_error(exc, "Loading the model") from None


def _generate(
    model: str, system_prompt: str, history: object, settings: dict, request: gr.Request | None
) -> Iterator[Reply]:
    """Validate, load, stream; registers a stop flag for this session while it runs. ``history`` ends
    with the message to answer, so it may hold one message more than a history."""
    try:
        conversation = normalize_history(
            history, max_messages=MAX_HISTORY_MESSAGES + 1, max_chars=MAX_HISTORY_CHARS + MAX_MESSAGE_CHARS
        )
        messages = build_messages(system_prompt if system_prompt is not None else "", conversation)
        generation = validate_settings(**settings)
        if not messages or messages[-1]["role"] != "user":
            raise ValueError("The conversation must end with a user message.")
    except Exception as exc:
        raise user_error(exc, "Generation") from None
    lm = _load(model)
    stop = _stops.start(request)
    try:
        yield from stream_reply(lm, messages, generation, stop, runtime.get().settings.stream_interval)
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
    request: gr.Request = None,  # type: ignore[assignment]
) -> Iterator[str]:
    """Reply to `message` given `history` (openai-style {role, content} dicts); streams the reply text.

    `model` is a catalog key (empty = the preset's chat model). temperature 0 (or below 0.001) = greedy.
    A reply ends after max_new_tokens, at end of turn, or after 120 s.
    """
    try:
        text = validate_message(message)
        history = normalize_history(history)
    except Exception as exc:
        raise user_error(exc, "Generation") from None
    model = default_model("chat") if model is None or model == "" else model  # anything else: resolve's message
    settings = dict(zip(LIMITS, (temperature, top_p, top_k, max_new_tokens, repetition_penalty, seed), strict=True))
    for reply in _generate(model, system_prompt, [*history, {"role": "user", "content": text}], settings, request):
        yield reply.text


def stop_generation(request: gr.Request) -> None:
    _stops.stop(request)


def add_user_message(message: str, history: list) -> tuple[list, str]:
    try:
        text = validate_message(message)
    except Exception as exc:
        raise user_error(exc) from None
    return [*history, {"role": "user", "content": text}], ""


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
    request: gr.Request,
    progress=gr.Progress(track_tqdm=True),
):  # noqa: B008 (Gradio's idiom)
    """Stream the reply into the chatbot; at the end fill the stats, token view and prompt view."""
    settings = dict(zip(LIMITS, (temperature, top_p, top_k, max_new_tokens, repetition_penalty, seed), strict=True))
    history = list(history or [])
    carried, left_out = recent(history)  # the page keeps the whole conversation; a request carries its newest part
    prompt_shown = False
    for reply in _generate(model, system_prompt, carried, settings, request):
        chat_update = [*history, {"role": "assistant", "content": reply.text}]
        if reply.stats is None:
            if not prompt_shown:  # show what the model sees as soon as it is known
                prompt_shown = True
                yield chat_update, gr.skip(), gr.skip(), gr.skip(), gr.skip(), reply.prompt
            else:
                yield chat_update, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            continue
        stats = dataclasses.replace(reply.stats, dropped_messages=reply.stats.dropped_messages + left_out)
        used = stats.prompt_tokens + stats.completion_tokens
        yield (
            chat_update,
            stats_markdown(stats),
            context_gauge_html(used, stats.context_window),
            token_view_html(reply.tokens or []),
            token_table(reply.tokens or []),
            reply.prompt,
        )


def last_user_turn(history: list) -> list:
    """History up to and including the last user message (what regenerate answers again)."""
    history = list(history or [])
    while history and history[-1]["role"] != "user":
        history.pop()
    if not history:
        raise gr.Error("There is no message to regenerate a reply for.")
    return history


def undo(history: list) -> tuple[list, str]:
    """Remove the last user message and its reply; put the message back in the box to edit."""
    history = list(history or [])
    while history and history[-1]["role"] != "user":
        history.pop()
    if not history:
        return [], ""
    last = history.pop()
    return history, _text_of(last["content"], len(history))


def edit(history: list, edit_data: gr.EditData) -> list:
    """Keep the conversation up to the edited user message, with its new text; a reply follows."""
    index = edit_data.index[0] if isinstance(edit_data.index, (list, tuple)) else edit_data.index
    value = edit_data.value if isinstance(edit_data.value, str) else _text_of(edit_data.value, index)
    try:
        value = validate_message(value)
    except Exception as exc:
        raise user_error(exc) from None
    return [*list(history or [])[:index], {"role": "user", "content": value}]


def conversation_as_seen(model: str, history: list, system_prompt: str) -> tuple[str, str]:
    """(model, the conversation rendered through its chat template) for the attention tab."""
    try:
        messages = build_messages(system_prompt or "", normalize_history(history))
        if not messages:
            raise ValueError("Chat first: there is no conversation to look at yet.")
    except Exception as exc:
        raise user_error(exc) from None
    lm = _load(model)
    return model, lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)


def export(history: list, model: str) -> gr.File:
    """The conversation as JSON and Markdown files in the swept scratch folder (deleted after
    scratch.MAX_AGE_S, or sooner when the folder outgrows its budget); one export is at most
    MAX_HISTORY_MESSAGES messages and MAX_HISTORY_CHARS characters."""
    try:
        messages = normalize_history(history)
        if not messages:
            raise ValueError("Nothing to export yet.")
        model = check_text("model", model, MAX_MODEL_CHARS)
        folder = scratch.folder("chat-export")
        (folder / "conversation.json").write_text(to_json(messages, model), encoding="utf-8")
        (folder / "conversation.md").write_text(to_markdown(messages), encoding="utf-8")
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


def _conversation_column(choices, default: str, allow_custom: bool) -> dict:
    """Model picker, conversation, message box and the row of actions."""
    parts = {}
    parts["model"] = gr.Dropdown(choices, value=default, label="Model", allow_custom_value=allow_custom)
    parts["chatbot"] = gr.Chatbot(
        label="Conversation",
        editable="user",
        height=460,
        elem_id="chatbot",
        buttons=["copy", "copy_all"],
        placeholder="Ask anything. Replies stream token by token.",
    )
    with gr.Row():
        parts["message"] = gr.Textbox(
            placeholder="Type a message and press Enter",
            show_label=False,
            scale=5,
            elem_id="chat-input",
            autofocus=True,
        )
        parts["send"] = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
        parts["stop"] = gr.Button("Stop", variant="stop", scale=1, elem_id="chat-stop")
    with gr.Row():
        parts["regenerate"] = gr.Button("Regenerate", size="sm", elem_id="chat-regenerate")
        parts["undo"] = gr.Button("Undo", size="sm", elem_id="chat-undo")
        parts["clear"] = gr.Button("Clear", size="sm", elem_id="chat-clear")
        parts["export"] = gr.Button("Export JSON + Markdown", size="sm", elem_id="chat-export")
        parts["to_attention"] = gr.Button("See its attention →", size="sm", elem_id="chat-to-attention")
    parts["stats"] = gr.Markdown("Reply statistics appear here.", elem_id="chat-stats")
    parts["gauge"] = gr.HTML(context_gauge_html(0, 1))
    parts["files"] = gr.File(
        label="Exported conversation", file_count="multiple", visible=False, elem_id="chat-export-files"
    )
    return parts


def _settings_column() -> list:
    """System prompt, the sampling sliders and the seed, in the order ``respond`` takes them."""
    system_prompt = gr.Textbox(
        label="System prompt",
        lines=3,
        placeholder="Empty = the model's own default",
        info="Instructions the model reads before the conversation.",
    )
    sliders = [
        gr.Slider(low, high, default, step=step, label=name, info=info)
        for name, (low, high, default, step, info) in SLIDERS.items()
    ]
    seed = gr.Number(SEED, precision=0, label="seed", info="Same seed + settings = same reply. -1 = random each time.")
    return [system_prompt, *sliders, seed]


def _explainer_panels() -> list:
    """Token view, the rendered prompt and "How it works", below the conversation."""
    with gr.Accordion("Token view of the last reply", open=True):
        token_html = gr.HTML("<i>Send a message to see each token with its probability.</i>", elem_id="token-view")
        tokens = gr.Dataframe(
            headers=["#", "token", "p", "top alternatives"], label="Tokens", max_height=260, interactive=False
        )
    with gr.Accordion("What the model sees (chat template, special tokens visible)", open=False):
        prompt_view = gr.Code(label="Rendered prompt", language=None, elem_id="prompt-view", interactive=False)
    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS)
    return [token_html, tokens, prompt_view]


def build_ui() -> ChatUI:
    """The Chat tab, rendered inside the app's Blocks (or alone, below)."""
    rt = runtime.get()
    heavy = dict(concurrency_id="gpu", concurrency_limit=rt.concurrency)
    private = dict(api_visibility="private")
    with gr.Row():
        with gr.Column(scale=3):
            ui = _conversation_column(model_choices("chat"), default_model("chat"), rt.settings.allow_any_model)
        with gr.Column(scale=2):
            settings = _settings_column()
    token_html, tokens, prompt_view = _explainer_panels()
    model, chatbot, message = ui["model"], ui["chatbot"], ui["message"]
    outputs = [chatbot, ui["stats"], ui["gauge"], token_html, tokens, prompt_view]

    def reply_after(event):
        return event.success(respond, [model, chatbot, *settings], outputs, **heavy, **private)

    # Enter / Send: add the message (kept in the box if invalid), then stream the reply.
    for trigger in (message.submit, ui["send"].click):
        reply_after(trigger(add_user_message, [message, chatbot], [chatbot, message], **private))
    for trigger in (ui["regenerate"].click, chatbot.retry):
        reply_after(trigger(last_user_turn, chatbot, chatbot, **private))
    reply_after(chatbot.edit(edit, chatbot, chatbot, **private))
    ui["stop"].click(stop_generation, None, None, concurrency_limit=None, **private)
    for trigger in (ui["undo"].click, chatbot.undo):
        trigger(undo, chatbot, [chatbot, message], **private)
    ui["clear"].click(
        lambda: ([], "Reply statistics appear here.", context_gauge_html(0, 1), "", None, ""), None, outputs, **private
    )
    ui["export"].click(export, [chatbot, model], ui["files"], **private)

    # The documented API: message, history, settings → streamed reply text.
    gr.api(chat, api_name="chat", **heavy)
    return ChatUI(model=model, chatbot=chatbot, system_prompt=settings[0], to_attention=ui["to_attention"])


if __name__ == "__main__":
    run_alone(build_ui, "Chat")
