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
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterator
from html import escape
from pathlib import Path

import gradio as gr
import torch
from transformers import LogitsProcessor, StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from shared import catalog, runtime
from shared.loaders import CausalLM, ModelLoadError

# --- knobs: defaults and the limits the server enforces -------------------------------------

TEMPERATURE = 0.7  # 0 = greedy: always the most likely token
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
    "seed": (-1, 2**32 - 1, True),
}
SLIDERS = {  # name: (UI low, UI high, default, step, one-line explanation); the server enforces LIMITS
    "temperature": (0, 2, TEMPERATURE, 0.05, "Randomness: 0 = always the likeliest token (greedy)."),
    "top_p": (0.01, 1, TOP_P, 0.01, "Sample only from the likeliest tokens that add up to this probability."),
    "top_k": (0, 200, TOP_K, 1, "…and from at most this many tokens (0 = no limit)."),
    "max_new_tokens": (1, 2048, MAX_NEW_TOKENS, 1, "Longest reply, in tokens."),
    "repetition_penalty": (1, 2, REPETITION_PENALTY, 0.05, "Above 1, tokens already used become less likely."),
}
MAX_MESSAGE_CHARS = 20_000  # one message; the window would drop everything else anyway
MAX_HISTORY_MESSAGES = 500  # messages accepted in a history (API); older turns get dropped to fit
TOP_ALTERNATIVES = 5  # alternatives kept per token for the token view
STREAM_TIMEOUT_S = 300.0  # a generate that stalls this long is reported, never hangs the UI
STREAM_INTERVAL_S = float(os.environ.get("PLAYGROUND_STREAM_INTERVAL", 0.2))  # UI/API updates at most this often
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


def _check_number(name: str, value: object) -> float | int:
    low, high, integer = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(str(value).strip())
        except ValueError:
            raise ValueError(f"{name} must be a number, got {str(value)[:40]!r}.") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number between {low} and {high}.")
    if integer and value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value:g}.")
    return int(value) if integer else float(value)


def validate_settings(**raw: object) -> GenerationSettings:
    """GenerationSettings from untrusted values; ValueError names the first bad one."""
    return GenerationSettings(**{name: _check_number(name, value) for name, value in raw.items()})


def validate_message(message: object) -> str:
    if not isinstance(message, str):
        raise ValueError("The message must be text.")
    if not message.strip():
        raise ValueError("Type a message first: it is empty.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise ValueError(
            f"That message is {len(message):,} characters; the limit is {MAX_MESSAGE_CHARS:,}. "
            "Shorten it or split it into parts."
        )
    return message


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


def normalize_history(history: object) -> list[dict[str, str]]:
    """Plain ``{"role", "content"}`` messages from a Gradio or API history, or a clear ValueError."""
    if history is None:
        return []
    if not isinstance(history, list):
        raise ValueError("History must be a list of {role, content} messages.")
    if len(history) > MAX_HISTORY_MESSAGES:
        raise ValueError(
            f"History has {len(history):,} messages; the limit is {MAX_HISTORY_MESSAGES:,}. Send only the recent part."
        )
    messages = []
    for index, item in enumerate(history):
        if not isinstance(item, dict) or "role" not in item or "content" not in item:
            raise ValueError(f"History message {index} must be an object with 'role' and 'content'.")
        role = item["role"]
        if role not in ROLES:
            raise ValueError(f"History message {index} has role {str(role)[:40]!r}; use user, assistant or system.")
        text = _text_of(item["content"], index)
        if len(text) > MAX_MESSAGE_CHARS:
            raise ValueError(f"History message {index} is longer than {MAX_MESSAGE_CHARS:,} characters.")
        messages.append({"role": role, "content": text})
    return messages


# --- prompt building ------------------------------------------------------------------------


def build_messages(system_prompt: str, history: list[dict[str, str]]) -> list[dict[str, str]]:
    """System prompt (if any) + history. An empty system prompt keeps the model's own default."""
    if not isinstance(system_prompt, str):
        raise ValueError("The system prompt must be text.")
    if len(system_prompt) > MAX_MESSAGE_CHARS:
        raise ValueError(f"The system prompt is longer than {MAX_MESSAGE_CHARS:,} characters.")
    turns = [m for m in history if m["role"] != "system"]
    system = system_prompt.strip() or next((m["content"] for m in history if m["role"] == "system"), "")
    return ([{"role": "system", "content": system}] if system else []) + turns


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    """The conversation exactly as the model reads it, special tokens and all."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def fit_to_context(
    tokenizer, messages: list[dict[str, str]], window: int, max_new_tokens: int
) -> tuple[list[dict[str, str]], list[int], int]:
    """Drop the oldest turns until prompt + reply fit the window.

    Returns (messages kept, prompt token ids, number of messages dropped). The system prompt and
    the last user message are never dropped; if they alone don't fit, ValueError says so.
    """
    if max_new_tokens >= window:
        raise ValueError(f"max_new_tokens must be below the model's window of {window:,} tokens.")
    budget = window - max_new_tokens
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system) :]
    dropped = 0
    while True:
        ids = _encode(tokenizer, system + turns)
        if len(ids) <= budget:
            return system + turns, ids, dropped
        if len(turns) <= 1:
            raise ValueError(
                f"The message needs {len(ids):,} tokens, but only {budget:,} of the model's {window:,}-token "
                f"window are left after reserving {max_new_tokens:,} for the reply. Shorten it or lower max new tokens."
            )
        # Estimate how many of the oldest messages cover the excess, then check with the real template.
        excess = len(ids) - budget
        cut = 0
        while cut < len(turns) - 1 and excess > 0:
            excess -= len(tokenizer.encode(turns[cut]["content"], add_special_tokens=False)) + 4
            cut += 1
        cut = max(cut, 1)
        while cut < len(turns) - 1 and turns[cut]["role"] != "user":
            cut += 1  # start the kept part on a user turn
        turns = turns[cut:]
        dropped += cut


def _encode(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(encoded["input_ids"])


# --- generation -----------------------------------------------------------------------------


@dataclasses.dataclass
class TokenInfo:
    token_id: int
    token: str  # the token as text
    prob: float  # the probability the model gave it (before temperature / top-k / top-p)
    top: list[tuple[str, float]]  # the likeliest tokens at that step, with probabilities


@dataclasses.dataclass
class ReplyStats:
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float  # request start → first token
    tokens_per_s: float  # decode speed after the first token
    context_window: int
    dropped_messages: int
    seed: int
    finish: str  # "end of turn" | "length" | "stopped"


@dataclasses.dataclass
class Reply:
    text: str
    stats: ReplyStats | None = None  # set on the last update only
    tokens: list[TokenInfo] | None = None  # set on the last update only
    prompt: str = ""  # the rendered prompt the model saw


class ProbabilityRecorder(LogitsProcessor):
    """Keeps, for each generated token, its probability and the top alternatives.

    Custom processors run after repetition penalty and before temperature/top-k/top-p, so these
    are the model's own probabilities, not the sampling distribution. At step t the token chosen at
    step t-1 is the last of ``input_ids``; the last token is looked up in ``finish()``.
    """

    def __init__(self, tokenizer, top: int = TOP_ALTERNATIVES) -> None:
        self.tokenizer = tokenizer
        self.top = top
        self.steps: list[tuple[list[int], list[float]]] = []  # (top ids, top probs) per step
        self.chosen_probs: list[float] = []
        self._last: torch.Tensor | None = None  # (vocab,) probabilities of the previous step

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._last is not None:
            self.chosen_probs.append(float(self._last[input_ids[0, -1]]))
        probs = torch.softmax(scores[0].float(), dim=-1)  # scores: (batch=1, vocab)
        values, ids = probs.topk(self.top)
        self.steps.append((ids.tolist(), values.tolist()))
        self._last = probs
        return scores

    def finish(self, generated: list[int]) -> list[TokenInfo]:
        if self._last is not None and len(self.chosen_probs) < len(self.steps) and generated:
            self.chosen_probs.append(float(self._last[generated[len(self.chosen_probs)]]))

        def as_text(token_id: int) -> str:  # byte-level pieces decoded to readable text
            return self.tokenizer.decode([token_id], skip_special_tokens=False)

        return [
            TokenInfo(token_id, as_text(token_id), prob, [(as_text(i), p) for i, p in zip(ids, probs, strict=True)])
            for token_id, prob, (ids, probs) in zip(generated, self.chosen_probs, self.steps, strict=False)
        ]


class TokenStreamer(BaseStreamer):
    """Hands generated token ids to the consuming thread and nothing more.

    ``TextIteratorStreamer`` decodes inside ``generate``'s loop; here ``put`` is O(1) and the
    decoding happens in the consumer, off the generation thread, so streaming costs the model
    almost nothing.
    """

    def __init__(self) -> None:
        self.queue: queue.Queue[list[int] | None] = queue.Queue()
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate first puts the prompt
            self.prompt_seen = True
            return
        self.queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.queue.put(None)

    def text(self, tokenizer, timeout: float) -> Iterator[str]:
        """The reply so far, each time new text is complete (no half UTF-8 characters)."""
        ids: list[int] = []
        shown = ""
        while True:
            batch = [self.queue.get(timeout=timeout)]
            while batch[-1] is not None and not self.queue.empty():
                batch.append(self.queue.get_nowait())  # catch up if we fell behind
            done = batch[-1] is None
            ids += [token for part in batch if part is not None for token in part]
            text = tokenizer.decode(ids, skip_special_tokens=True)
            if text != shown and (done or not text.endswith("\ufffd")):
                shown = text
                yield text
            if done:
                return


class StopOnEvent(StoppingCriteria):
    """Ends ``generate`` at the next token once ``event`` is set (Stop, or the client left)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def stream_reply(
    lm: CausalLM,
    messages: list[dict[str, str]],
    settings: GenerationSettings,
    stop: threading.Event | None = None,
) -> Iterator[Reply]:
    """Stream the assistant's reply to ``messages``; the last Reply carries stats and token info.

    Closing the iterator (a client that went away) stops the generation thread too.
    """
    stop = stop or threading.Event()
    start = time.perf_counter()
    # 1. fit the conversation into the window and render it through the chat template
    kept, prompt_ids, dropped = fit_to_context(lm.tokenizer, messages, lm.context_window, settings.max_new_tokens)
    prompt = render_prompt(lm.tokenizer, kept)
    device = next(lm.model.parameters()).device
    input_ids = torch.tensor([prompt_ids], device=device)  # (1, T)
    seed = settings.seed if settings.seed >= 0 else int(torch.randint(0, 2**31 - 1, ()).item())

    # 2. generate in a thread; the streamer hands each new token to this one
    streamer = TokenStreamer()
    recorder = ProbabilityRecorder(lm.tokenizer)
    sampling = settings.temperature > 0
    kwargs = dict(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=settings.max_new_tokens,
        do_sample=sampling,
        temperature=settings.temperature if sampling else None,
        top_p=settings.top_p if sampling else None,
        top_k=settings.top_k if sampling else None,
        repetition_penalty=settings.repetition_penalty,
        logits_processor=[recorder],
        stopping_criteria=[StopOnEvent(stop)],
        streamer=streamer,
        pad_token_id=lm.tokenizer.pad_token_id or lm.tokenizer.eos_token_id,
    )
    result: dict[str, object] = {}

    def work() -> None:
        try:
            torch.manual_seed(seed)
            with torch.inference_mode():
                result["sequences"] = lm.model.generate(**kwargs)
        except BaseException as exc:  # reported to the user below, never swallowed
            result["error"] = exc
            streamer.end()

    thread = threading.Thread(target=work, name="chat-generate", daemon=True)
    thread.start()

    # 3. relay text as it arrives
    text = ""
    first_token_at: float | None = None
    relayed = False
    try:
        last_yield = 0.0
        for text in streamer.text(lm.tokenizer, STREAM_TIMEOUT_S):
            now = time.perf_counter()
            if first_token_at is None:
                first_token_at = now
            # Each update costs the server and client a few ms of CPU that the model would
            # otherwise use; on fast hardware tokens come faster than anyone reads. Coalesce.
            if now - last_yield >= STREAM_INTERVAL_S:
                last_yield = now
                yield Reply(text, prompt=prompt)
        relayed = True
    except queue.Empty:
        raise RuntimeError(
            f"The model produced nothing for {STREAM_TIMEOUT_S:.0f} s; generation was stopped."
        ) from None
    finally:
        if not relayed:  # the consumer left early (GeneratorExit) or timed out: end the thread
            stop.set()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]

    # 4. the final update: statistics and per-token probabilities
    end = time.perf_counter()
    generated = result["sequences"][0, input_ids.shape[1] :].tolist()  # type: ignore[index]
    tokens = recorder.finish(generated)
    n = len(generated)
    eos = _eos_ids(lm)
    finish = "stopped" if stop.is_set() else "end of turn" if generated and generated[-1] in eos else "length"
    first = first_token_at or end
    stats = ReplyStats(
        prompt_tokens=len(prompt_ids),
        completion_tokens=n,
        ttft_s=first - start,
        tokens_per_s=(n - 1) / (end - first) if n > 1 and end > first else 0.0,
        context_window=lm.context_window,
        dropped_messages=dropped,
        seed=seed,
        finish=finish,
    )
    yield Reply(text, stats=stats, tokens=tokens, prompt=prompt)


def _eos_ids(lm: CausalLM) -> set[int]:
    eos = lm.model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if lm.tokenizer.eos_token_id is not None:
        ids.add(lm.tokenizer.eos_token_id)
    return ids


# --- presentation: pure functions from results to Markdown / HTML ---------------------------


def stats_markdown(stats: ReplyStats) -> str:
    used = stats.prompt_tokens + stats.completion_tokens
    parts = [
        f"**{stats.ttft_s:.2f} s** to first token",
        f"**{stats.tokens_per_s:.1f}** tokens/s",
        f"{stats.prompt_tokens:,} prompt + {stats.completion_tokens:,} completion tokens",
        f"context {used:,} / {stats.context_window:,}",
        f"seed {stats.seed}",
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


# --- Gradio glue: cached model in, pure functions, ValueError → gr.Error ---------------------

_stop_events: dict[str, threading.Event] = {}  # session → its running reply's stop flag
_stop_lock = threading.Lock()


def _load(model: str) -> CausalLM:
    try:
        return runtime.causal_lm(model)
    except (ValueError, ModelLoadError) as exc:
        raise gr.Error(str(exc)) from None


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "no-session"


def _generate(
    model: str, system_prompt: str, history: object, settings: dict, request: gr.Request | None
) -> Iterator[Reply]:
    """Validate, load, stream; registers a stop flag for this session while it runs."""
    try:
        messages = build_messages(system_prompt if system_prompt is not None else "", normalize_history(history))
        generation = validate_settings(**settings)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    if not messages or messages[-1]["role"] != "user":
        raise gr.Error("The conversation must end with a user message.")
    lm = _load(model)
    stop = threading.Event()
    session = _session(request)
    with _stop_lock:
        _stop_events[session] = stop
    try:
        yield from stream_reply(lm, messages, generation, stop)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    except torch.OutOfMemoryError:
        runtime.get().cache.clear()
        raise gr.Error(
            "Out of memory while generating: models were unloaded. Try a shorter reply or a smaller model."
        ) from None
    except gr.Error:
        raise
    except Exception as exc:
        raise gr.Error(f"Generation failed ({type(exc).__name__}). The next message will try again.") from None
    finally:
        stop.set()  # a client that left (GeneratorExit) or an error ends the thread too
        with _stop_lock:
            if _stop_events.get(session) is stop:
                del _stop_events[session]


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

    `model` is a catalog key (empty = the preset's chat model). temperature 0 = greedy.
    """
    try:
        text = validate_message(message)
        history = normalize_history(history)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    model = model or catalog.default_model("chat", runtime.get().settings.models)
    settings = dict(zip(LIMITS, (temperature, top_p, top_k, max_new_tokens, repetition_penalty, seed), strict=True))
    for reply in _generate(model, system_prompt, [*history, {"role": "user", "content": text}], settings, request):
        yield reply.text


def stop_generation(request: gr.Request) -> None:
    with _stop_lock:
        event = _stop_events.get(_session(request))
    if event is not None:
        event.set()


def add_user_message(message: str, history: list) -> tuple[list, str]:
    try:
        text = validate_message(message)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
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
    prompt_shown = False
    for reply in _generate(model, system_prompt, history, settings, request):
        chat_update = [*history, {"role": "assistant", "content": reply.text}]
        if reply.stats is None:
            if not prompt_shown:  # show what the model sees as soon as it is known
                prompt_shown = True
                yield chat_update, gr.skip(), gr.skip(), gr.skip(), gr.skip(), reply.prompt
            else:
                yield chat_update, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            continue
        used = reply.stats.prompt_tokens + reply.stats.completion_tokens
        yield (
            chat_update,
            stats_markdown(reply.stats),
            context_gauge_html(used, reply.stats.context_window),
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
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    return [*list(history or [])[:index], {"role": "user", "content": value}]


def conversation_as_seen(model: str, history: list, system_prompt: str) -> tuple[str, str]:
    """(model, the conversation rendered through its chat template) for the attention tab."""
    try:
        messages = build_messages(system_prompt or "", normalize_history(history))
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    if not messages:
        raise gr.Error("Chat first: there is no conversation to look at yet.")
    lm = _load(model)
    return model, lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)


def export(history: list, model: str) -> gr.File:
    messages = normalize_history(history)
    if not messages:
        raise gr.Error("Nothing to export yet.")
    folder = Path(tempfile.mkdtemp(prefix="chat-export-"))
    (folder / "conversation.json").write_text(to_json(messages, model), encoding="utf-8")
    (folder / "conversation.md").write_text(to_markdown(messages), encoding="utf-8")
    return gr.File(value=[str(folder / "conversation.json"), str(folder / "conversation.md")], visible=True)


def build_ui() -> dict:
    """The Chat tab, rendered inside the app's Blocks (or alone, below). Returns the components
    that other tabs link to."""
    rt = runtime.get()
    heavy = dict(concurrency_id="gpu", concurrency_limit=rt.concurrency)
    choices = [(spec.label(), spec.key) for spec in catalog.models_for("chat")]
    default = catalog.default_model("chat", rt.settings.models)

    with gr.Row():
        with gr.Column(scale=3):
            model = gr.Dropdown(choices, value=default, label="Model", allow_custom_value=rt.settings.allow_any_model)
            chatbot = gr.Chatbot(
                label="Conversation",
                editable="user",
                height=460,
                elem_id="chatbot",
                buttons=["copy", "copy_all"],
                placeholder="Ask anything. Replies stream token by token.",
            )
            with gr.Row():
                message = gr.Textbox(
                    placeholder="Type a message and press Enter",
                    show_label=False,
                    scale=5,
                    elem_id="chat-input",
                    autofocus=True,
                )
                send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
                stop = gr.Button("Stop", variant="stop", scale=1, elem_id="chat-stop")
            with gr.Row():
                regenerate = gr.Button("Regenerate", size="sm", elem_id="chat-regenerate")
                undo_btn = gr.Button("Undo", size="sm", elem_id="chat-undo")
                clear = gr.Button("Clear", size="sm", elem_id="chat-clear")
                export_btn = gr.Button("Export JSON + Markdown", size="sm", elem_id="chat-export")
                to_attention = gr.Button("See its attention →", size="sm", elem_id="chat-to-attention")
            stats = gr.Markdown("Reply statistics appear here.", elem_id="chat-stats")
            gauge = gr.HTML(context_gauge_html(0, 1))
            files = gr.File(
                label="Exported conversation", file_count="multiple", visible=False, elem_id="chat-export-files"
            )
        with gr.Column(scale=2):
            system_prompt = gr.Textbox(
                label="System prompt",
                lines=3,
                placeholder="Empty = the model's own default",
                info="Instructions the model reads before the conversation.",
            )
            temperature, top_p, top_k, max_new_tokens, repetition_penalty = (
                gr.Slider(low, high, default, step=step, label=name, info=info)
                for name, (low, high, default, step, info) in SLIDERS.items()
            )
            seed = gr.Number(
                SEED, precision=0, label="seed", info="Same seed + settings = same reply. -1 = random each time."
            )

    with gr.Accordion("Token view of the last reply", open=True):
        token_html = gr.HTML("<i>Send a message to see each token with its probability.</i>", elem_id="token-view")
        tokens = gr.Dataframe(
            headers=["#", "token", "p", "top alternatives"], label="Tokens", max_height=260, interactive=False
        )
    with gr.Accordion("What the model sees (chat template, special tokens visible)", open=False):
        prompt_view = gr.Code(label="Rendered prompt", language=None, elem_id="prompt-view", interactive=False)
    with gr.Accordion("How it works", open=False):
        gr.Markdown(HOW_IT_WORKS)

    settings = [system_prompt, temperature, top_p, top_k, max_new_tokens, repetition_penalty, seed]
    outputs = [chatbot, stats, gauge, token_html, tokens, prompt_view]
    private = dict(api_visibility="private")

    def reply_after(event):
        return event.success(respond, [model, chatbot, *settings], outputs, **heavy, **private)

    # Enter / Send: add the message (kept in the box if invalid), then stream the reply.
    submitted = [
        reply_after(trigger(add_user_message, [message, chatbot], [chatbot, message], **private))
        for trigger in (message.submit, send.click)
    ]
    regenerated = [
        reply_after(trigger(last_user_turn, chatbot, chatbot, **private))
        for trigger in (regenerate.click, chatbot.retry)
    ]
    edited = reply_after(chatbot.edit(edit, chatbot, chatbot, **private))
    stop.click(stop_generation, None, None, concurrency_limit=None, **private)
    for trigger in (undo_btn.click, chatbot.undo):
        trigger(undo, chatbot, [chatbot, message], **private)
    clear.click(
        lambda: ([], "Reply statistics appear here.", context_gauge_html(0, 1), "", None, ""), None, outputs, **private
    )
    export_btn.click(export, [chatbot, model], files, **private)
    del submitted, regenerated, edited

    # The documented API: message, history, settings → streamed reply text.
    gr.api(chat, api_name="chat", **heavy)
    return {"to_attention": to_attention, "model": model, "chatbot": chatbot, "system_prompt": system_prompt}


if __name__ == "__main__":
    from shared.settings import parse_settings

    runtime.configure(parse_settings())
    with gr.Blocks(title="Chat · GenAI Playground") as demo:
        build_ui()
    demo.queue().launch()
