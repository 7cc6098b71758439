"""Chat with an LLM, and see how it works: next-token prediction, chat templates and sampling.

Replies stream token by token from ``model.generate`` running in a thread; a Stop button (or a
client that goes away) ends that thread within about one token. Each reply reports time to
first token, tokens/s and how much of the context window it used, and shows every token shaded
by the probability the model gave it, with the alternatives it passed over.

Run alone: ``python -m demos.chat``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from shared import runtime
from shared.engines import MIN_TEMPERATURE
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
    "temperature": (0, 2, TEMPERATURE, 0.05, f"Randomness: 0 (or below {MIN_TEMPERATURE:g}) = the likeliest token."),
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

HOW_IT_WORKS = (Path(__file__).parent / "how_it_works.md").read_text()  # also chat's retrieval corpus


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
        checked[name] = check_number(name, value, low, runtime.capped(high, name), integer=integer)
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
