"""Where a chat reply comes from: one interface, three engines.

- ``transformers``: in process (``demos.chat_engine.stream_reply``), exact probabilities; the
  attention tab reads the same weights.
- ``openai``: any OpenAI-compatible server (vLLM, SGLang, TGI, Ollama, llama.cpp, OpenAI itself),
  streamed through the ``openai`` client. Its URL, model and key come from the operator's settings,
  never from a request, and the key never appears in the page, the logs or a message.
- ``llama.cpp``: a ``llama-server`` the app runs itself on 127.0.0.1 (``shared.llama_server``),
  reached through the ``openai`` engine.

Every engine streams the same ``Reply`` objects: the text so far, and on the last one the stats, the
token view and the prompt as the model read it (where the engine can render it).
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Iterator

import httpx

TOP_ALTERNATIVES = 5  # alternatives kept per token for the token view
MIN_TEMPERATURE = 1e-3  # below this, temperature counts as 0 (greedy), on every engine
CONNECT_TIMEOUT_S = 5.0  # an unreachable server is reported within this
STALL_TIMEOUT_S = 30.0  # a stream that sends nothing this long is ended and reported
MAX_REPLY_S = 120.0  # a reply ends here ("time limit"), whatever the engine


# --- what every engine streams ---------------------------------------------------------------


@dataclasses.dataclass
class TokenInfo:
    token_id: int  # -1 where the engine reports text only
    token: str  # the token as text
    prob: float  # the probability the model gave it (see ReplyStats.probs_note for when it was taken)
    top: list[tuple[str, float]]  # the likeliest tokens at that step, with probabilities


@dataclasses.dataclass
class ReplyStats:
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float  # request start → first token
    tokens_per_s: float  # decode speed after the first token
    context_window: int  # 0 = the engine doesn't say
    dropped_messages: int
    seed: int
    finish: str  # "end of turn" | "length" | "stopped" | "time limit"
    greedy: bool = False  # temperature 0 (or below MIN_TEMPERATURE): always the likeliest token
    engine: str = "transformers"
    probs_note: str = "after repetition penalty, before temperature, top-k and top-p"
    notices: tuple[str, ...] = ()  # settings this engine ignored, and why the numbers may differ


@dataclasses.dataclass
class Reply:
    text: str
    stats: ReplyStats | None = None  # set on the last update only
    tokens: list[TokenInfo] | None = None  # set on the last update only
    prompt: str = ""  # the rendered prompt the model saw ("" until known)


class EngineError(RuntimeError):
    """A serving engine failed in a way the user should read about (its words are shown as they are)."""


# --- the servers an operator can name: how each takes our settings --------------------------


@dataclasses.dataclass(frozen=True)
class Flavor:
    """How one kind of OpenAI-compatible server takes the settings the standard API lacks."""

    label: str
    top_k: str | None = None  # extra_body name for top-k (None: the server ignores it)
    top_k_off: int = 0  # the value that means "no limit"
    repetition_penalty: str | None = None  # extra_body name
    seed: bool = True
    logprobs: bool = True
    renders_template: bool = False  # POST /apply-template shows what the model reads (llama.cpp)
    probs_note: str = "as the server reports them"


FLAVORS = {
    "llama.cpp": Flavor(
        "llama.cpp",
        top_k="top_k",
        repetition_penalty="repeat_penalty",
        renders_template=True,
        probs_note="the model's raw probabilities, before repetition penalty and temperature",
    ),
    "vllm": Flavor(
        "vLLM",
        top_k="top_k",
        top_k_off=-1,
        repetition_penalty="repetition_penalty",
        probs_note="vLLM's raw log-probabilities, before any penalty or temperature",
    ),
    "sglang": Flavor(
        "SGLang", top_k="top_k", top_k_off=-1, repetition_penalty="repetition_penalty", probs_note="SGLang's"
    ),
    "tgi": Flavor("TGI", probs_note="TGI's, after its own processing"),
    "ollama": Flavor("Ollama (/v1)", logprobs=False),
    "openai": Flavor("OpenAI API", probs_note="the API's"),
}


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One OpenAI-compatible server and the model the app asks it for."""

    url: str  # the API base, e.g. http://127.0.0.1:8080/v1
    model: str
    flavor: str = "openai"
    api_key: str = dataclasses.field(default="", repr=False)  # never shown, logged or put in a message
    context_window: int = 0  # 0 = ask the server, or don't fit the conversation here

    @property
    def root(self) -> str:
        """The server's own root (llama.cpp's /health, /tokenize, /apply-template live there)."""
        return self.url.removesuffix("/").removesuffix("/v1")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self):
        import openai
        from openai import OpenAI

        # openai's own Timeout: its transport is httpx2 now, which refuses an httpx.Timeout (TypeError
        # on every request). Never hand one HTTP library's objects to another's client.
        timeout = openai.Timeout(STALL_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        return OpenAI(base_url=self.url, api_key=self.api_key or "none", timeout=timeout, max_retries=0)

    def redact(self, text: str) -> str:
        return text.replace(self.api_key, "•••") if self.api_key else text


# --- llama.cpp's tokenizer and template, over HTTP -------------------------------------------


class ServerTokenizer:
    """The two things fitting a conversation needs, answered by a llama.cpp server: its chat template
    (``/apply-template``) and its tokenizer (``/tokenize``), so the window is counted exactly."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._http = httpx.Client(base_url=endpoint.root, headers=endpoint.headers(), timeout=CONNECT_TIMEOUT_S * 2)

    def _post(self, path: str, body: dict) -> dict:
        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise connection_error(self.endpoint, exc) from None
        if response.status_code != 200:
            raise status_error(self.endpoint, response.status_code, response.text)
        return response.json()

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self._post("/tokenize", {"content": text, "add_special": add_special_tokens})["tokens"]

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=False, return_dict=False):
        prompt = self._post("/apply-template", {"messages": messages})["prompt"]
        if not tokenize:
            return prompt
        ids = self._post("/tokenize", {"content": prompt, "add_special": False, "parse_special": True})["tokens"]
        return {"input_ids": ids} if return_dict else ids

    def context_window(self) -> int:
        """The server's window per conversation (llama.cpp's ``/props``)."""
        try:
            response = self._http.get("/props")
        except httpx.HTTPError as exc:
            raise connection_error(self.endpoint, exc) from None
        if response.status_code != 200:
            raise status_error(self.endpoint, response.status_code, response.text)
        return int(response.json()["default_generation_settings"]["n_ctx"])

    def close(self) -> None:
        self._http.close()


# --- errors: a clear sentence, never the key, never a traceback -------------------------------


def _is_transport_error(exc: BaseException) -> bool:
    """An HTTP transport failure, from our httpx or from the library the openai client carries (httpx2
    today): told by the class names both share, so a move of openai's transport can't turn a dropped
    connection into "a stream this app can't read"."""
    return any(cls.__name__ in ("HTTPError", "TransportError") for cls in type(exc).__mro__)


def connection_error(endpoint: Endpoint, exc: BaseException) -> EngineError:
    if any("Timeout" in cls.__name__ for cls in type(exc).__mro__):
        return EngineError(
            f"The {_name(endpoint)} sent nothing for {STALL_TIMEOUT_S:.0f} s, so the reply was ended. "
            "Your conversation is kept; try again."
        )
    return EngineError(
        f"The {_name(endpoint)} can't be reached. Your conversation is kept; send again once it is back."
    )


def status_error(endpoint: Endpoint, status: int, body: str = "") -> EngineError:
    name = _name(endpoint)
    if status in (401, 403):
        return EngineError(f"The {name} refused this app's API key ({status}). The operator must set the right one.")
    if status == 404:
        return EngineError(f"The {name} doesn't serve model {endpoint.model!r} (404). The operator must fix its name.")
    if status == 429:
        return EngineError(f"The {name} is busy (429: too many requests). Try again in a moment.")
    if status >= 500:
        return EngineError(f"The {name} is overloaded or failing ({status}). Try again in a moment.")
    detail = endpoint.redact(body)[:200].strip()
    return EngineError(f"The {name} refused the request ({status}){': ' + detail if detail else ''}.")


def _name(endpoint: Endpoint) -> str:
    return f"{FLAVORS.get(endpoint.flavor, FLAVORS['openai']).label} server at {endpoint.root}"


def translate(endpoint: Endpoint, exc: BaseException) -> EngineError:
    """Any failure of the ``openai`` client as an EngineError that names no secret."""
    import openai

    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        return status_error(endpoint, exc.status_code, _error_text(exc))
    if isinstance(exc, openai.APIConnectionError) or _is_transport_error(exc):
        return connection_error(endpoint, exc)
    return EngineError(
        f"The {_name(endpoint)} sent a stream this app can't read ({type(exc).__name__}); the reply was ended."
    )


def _error_text(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        body = body.get("error", body)
        body = body.get("message", "") if isinstance(body, dict) else body
    return body if isinstance(body, str) else ""


# --- the request: our settings in this server's words ----------------------------------------


def request_options(flavor: Flavor, settings, seed: int) -> tuple[dict, list[str]]:
    """(keyword arguments for ``chat.completions.create``, notices of settings this server ignores)."""
    greedy = settings.temperature < MIN_TEMPERATURE
    options: dict = dict(max_tokens=settings.max_new_tokens, temperature=0.0 if greedy else settings.temperature)
    extra: dict = {}
    notices: list[str] = []
    if not greedy:
        options["top_p"] = settings.top_p
        if flavor.top_k:
            extra[flavor.top_k] = settings.top_k or flavor.top_k_off
        elif settings.top_k:
            notices.append(f"{flavor.label} ignores top-k: only top-p limited the choice")
    if flavor.repetition_penalty:
        extra[flavor.repetition_penalty] = settings.repetition_penalty
        if flavor.label == "llama.cpp" and settings.repetition_penalty != 1:
            notices.append("llama.cpp applies the repetition penalty to the last 64 tokens only")
    elif settings.repetition_penalty != 1:
        notices.append(f"{flavor.label} ignores the repetition penalty")
    if flavor.seed:
        options["seed"] = seed
    else:
        notices.append(f"{flavor.label} ignores the seed: replies can't be repeated exactly")
    if flavor.logprobs:
        options.update(logprobs=True, top_logprobs=TOP_ALTERNATIVES)
    else:
        notices.append(f"{flavor.label} reports no token probabilities: the token view stays empty")
    if extra:
        options["extra_body"] = extra
    return options, notices


def new_seed(seed: int) -> int:
    return seed if seed >= 0 else random.randrange(2**31)


# --- streaming ---------------------------------------------------------------------------------


def stream_chat(
    endpoint: Endpoint,
    messages: list[dict[str, str]],
    settings,
    stop: threading.Event,
    interval: float = 0.0,
    *,
    prompt: str = "",
    prompt_tokens: int = 0,
    context_window: int = 0,
    dropped: int = 0,
) -> Iterator[Reply]:
    """Stream a reply from an OpenAI-compatible server; the last Reply carries stats and tokens.

    Stop (``stop`` set) or a consumer that leaves closes the HTTP stream, which ends the server's
    generation too. ``prompt`` is the rendered prompt when the caller could get it."""
    flavor = FLAVORS.get(endpoint.flavor, FLAVORS["openai"])
    seed = new_seed(settings.seed)
    options, notices = request_options(flavor, settings, seed)
    start = time.perf_counter()
    try:
        stream = endpoint.client().chat.completions.create(
            model=endpoint.model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            **options,
        )
    except Exception as exc:
        raise translate(endpoint, exc) from None
    watcher = threading.Thread(target=_close_on_stop, args=(stop, stream), name="engine-stop", daemon=True)
    watcher.start()
    got = _Received()
    try:
        yield from _read(stream, got, stop, interval, prompt)
    except Exception as exc:
        if not stop.is_set():
            raise translate(endpoint, exc) from None
    finally:
        stopped = stop.is_set() and not got.timed_out
        stop.set()  # ends the watcher; closes the stream if the consumer left early
        stream.close()
    if got.finish is None and not stopped and not got.timed_out:  # the connection ended mid-reply
        raise EngineError(
            f"The {_name(endpoint)} closed the stream before the reply was finished. "
            "Your conversation is kept; send again."
        )
    end = time.perf_counter()
    usage, tokens = got.usage, got.tokens
    completion = usage.completion_tokens if usage is not None and usage.completion_tokens else len(tokens)
    first = got.first_token_at or end
    stats = ReplyStats(
        prompt_tokens=usage.prompt_tokens if usage is not None and usage.prompt_tokens else prompt_tokens,
        completion_tokens=completion,
        ttft_s=first - start,
        tokens_per_s=(completion - 1) / (end - first) if completion > 1 and end > first else 0.0,
        context_window=context_window,
        dropped_messages=dropped,
        seed=seed,
        finish="time limit" if got.timed_out else "stopped" if stopped else _finish(got.finish),
        greedy=settings.temperature < MIN_TEMPERATURE,
        engine=flavor.label,
        probs_note=flavor.probs_note if flavor.logprobs else "",
        notices=tuple(notices),
    )
    yield Reply(got.text, stats=stats, tokens=tokens, prompt=prompt)


@dataclasses.dataclass
class _Received:
    """What a stream has delivered so far."""

    text: str = ""
    tokens: list[TokenInfo] = dataclasses.field(default_factory=list)
    usage: object = None
    finish: str | None = None
    first_token_at: float | None = None
    timed_out: bool = False


def _read(stream, got: _Received, stop: threading.Event, interval: float, prompt: str) -> Iterator[Reply]:
    """Relay the stream's text, at most every ``interval`` seconds, collecting tokens and usage."""
    last_yield = 0.0
    for chunk in stream:
        if chunk.usage is not None:
            got.usage = chunk.usage
        for choice in chunk.choices[:1]:
            if choice.logprobs is not None and choice.logprobs.content:
                got.tokens += [_token(entry) for entry in choice.logprobs.content]
            got.finish = choice.finish_reason or got.finish
            piece = choice.delta.content if choice.delta is not None else None
            if piece:
                got.text += piece
                now = time.perf_counter()
                got.first_token_at = got.first_token_at or now
                if now - got.first_token_at > MAX_REPLY_S:
                    got.timed_out = True
                    stop.set()
                if now - last_yield >= interval:
                    last_yield = now
                    yield Reply(got.text, prompt=prompt)
        if stop.is_set():
            return


def _close_on_stop(stop: threading.Event, stream) -> None:
    """Stop pressed mid-stream (or a stall): close the connection, so the server stops generating."""
    stop.wait()
    try:
        stream.close()
    except Exception:  # already closed by the reader
        pass


def _token(entry) -> TokenInfo:
    top = [(alt.token, math.exp(alt.logprob)) for alt in (entry.top_logprobs or [])]
    return TokenInfo(-1, entry.token, math.exp(entry.logprob), top)


def _finish(reason: str | None) -> str:
    return {"stop": "end of turn", "length": "length"}.get(reason or "", reason or "end of turn")


# --- health, for the System panel --------------------------------------------------------------


def health(endpoint: Endpoint) -> str:
    """ "ok", or what is wrong, in a few words (one short request; never the key)."""
    path = "/health" if endpoint.flavor == "llama.cpp" else "/models"
    base = endpoint.root if endpoint.flavor == "llama.cpp" else endpoint.url.removesuffix("/")
    try:
        response = httpx.get(base + path, headers=endpoint.headers(), timeout=2.0)
    except httpx.HTTPError:
        return "unreachable"
    if response.status_code == 200:
        return "ok"
    return {401: "key refused (401)", 403: "key refused (403)", 503: "loading or overloaded (503)"}.get(
        response.status_code, f"HTTP {response.status_code}"
    )
