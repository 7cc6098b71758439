"""A chat reply streamed token by token, from an in-process transformers model or a server.

``stream_from`` picks the engine a catalog entry names (shared.engines): a server is fed the
conversation fitted to its window with its own tokenizer where it has one (llama.cpp), and streams
through the ``openai`` client; the rest of this file is the in-process transformers engine.

The conversation is fitted into the model's window and rendered through its chat template;
``model.generate`` runs on a model worker (shared.compute) and hands each token to the caller's
thread, which streams the text. A logits processor keeps every token's probability and the
alternatives the model passed over; a stopping criterion ends the reply within one token of Stop.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Iterator

import torch
from transformers import LogitsProcessor, StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from demos.chat.core import GenerationSettings
from shared import compute, engines, runtime
from shared.engines import MAX_REPLY_S, MIN_TEMPERATURE, TOP_ALTERNATIVES, Reply, ReplyStats, TokenInfo
from shared.loaders import CausalLM
from shared.validation import MAX_SEED

STREAM_TIMEOUT_S = 300.0  # a generate that stalls this long is reported, never hangs the UI
# MAX_REPLY_S: a reply ends there ("time limit"), so one request cannot hold a model slot for minutes.
# MIN_TEMPERATURE: below it temperature counts as 0 (greedy): scores / temperature overflow float32 to
# ±inf below ~1e-39 and generate fails ("probability tensor contains inf"); at 1e-3 a score 0.01 lower
# is already e^10 times less likely, so sampling would pick the top token anyway but for exact ties.
TEMPLATE_TOKENS = 4  # about how many tokens a chat template adds around one message (role markers)


# --- prompt building ------------------------------------------------------------------------


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    """The conversation exactly as the model reads it, special tokens and all."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def fit_to_context(
    tokenizer, messages: list[dict[str, str]], window: int, max_new_tokens: int
) -> tuple[list[dict[str, str]], list[int], int]:
    """Drop the oldest turns until prompt + reply fit the window.

    Returns (messages kept, prompt token ids, number of messages dropped). The system prompt and
    the last user message are never dropped; if they alone don't fit, ValueError says so.
    Whatever the history's length, only about a window's worth of it is ever tokenized.
    """
    if max_new_tokens >= window:
        raise ValueError(f"max_new_tokens must be below the model's window of {window:,} tokens.")
    budget = window - max_new_tokens
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system) :]
    # 1. newest first, count each message's own tokens until the window is full: older ones cannot fit
    turns, dropped = _newest_that_may_fit(tokenizer, turns, budget)
    while True:
        # 2. the real template on what is left; drop a few more of the oldest until it fits
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
            excess -= len(tokenizer.encode(turns[cut]["content"], add_special_tokens=False)) + TEMPLATE_TOKENS
            cut += 1
        cut = max(cut, 1)
        while cut < len(turns) - 1 and turns[cut]["role"] != "user":
            cut += 1  # start the kept part on a user turn
        turns = turns[cut:]
        dropped += cut


def _newest_that_may_fit(tokenizer, turns: list[dict[str, str]], budget: int) -> tuple[list[dict[str, str]], int]:
    """The newest turns whose own tokens fit ``budget`` (a template only adds tokens, so an older
    one cannot fit), starting on a user turn, and how many were left out. The last turn is always kept.

    This bounds the cost of a request by the window, not by the history it carries: a 10 MB history
    is read message by message from the end, and tokenizing stops once the window is full."""
    used, start = 0, len(turns)
    while start > 0:
        used += len(tokenizer.encode(turns[start - 1]["content"], add_special_tokens=False))
        if used > budget and start < len(turns):
            break
        start -= 1
    while 0 < start < len(turns) - 1 and turns[start]["role"] != "user":
        start += 1
    return turns[start:], start


def _encode(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(encoded["input_ids"])


# --- a server (llama.cpp, or any OpenAI-compatible one) ------------------------------------------


def stream_from_server(
    endpoint: engines.Endpoint,
    messages: list[dict[str, str]],
    settings: GenerationSettings,
    stop: threading.Event,
    interval: float = 0.0,
) -> Iterator[Reply]:
    """Stream a server's reply. llama.cpp renders and counts the conversation itself, so it is fitted
    to the window exactly and "what the model sees" is shown; other servers get it as it is."""
    flavor = engines.FLAVORS.get(endpoint.flavor, engines.FLAVORS["openai"])
    fitted = dict(context_window=endpoint.context_window)
    if flavor.renders_template:
        tokenizer = engines.ServerTokenizer(endpoint)
        try:
            window = endpoint.context_window or tokenizer.context_window()
            messages, prompt_ids, dropped = fit_to_context(tokenizer, messages, window, settings.max_new_tokens)
            prompt = render_prompt(tokenizer, messages)
        finally:
            tokenizer.close()
        fitted = dict(prompt=prompt, prompt_tokens=len(prompt_ids), context_window=window, dropped=dropped)
    else:
        fitted["prompt"] = (
            f"# {flavor.label} renders the chat template itself and doesn't show the result.\n"
            f"# These are the messages it was sent:\n{json.dumps(messages, indent=2, ensure_ascii=False)}"
        )
    yield Reply("", prompt=fitted["prompt"])  # what the model sees, before the first token
    yield from engines.stream_chat(endpoint, messages, settings, stop, interval, **fitted)


# --- generation in process (transformers) ----------------------------------------------------------


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
    """Ends ``generate`` at the next token once ``event`` is set (Stop, or the client left), or
    once ``seconds`` have passed (then ``timed_out`` is set)."""

    def __init__(self, event: threading.Event, seconds: float = math.inf) -> None:
        self.event, self.seconds = event, seconds
        self.deadline: float | None = None  # set at the first token: the clock counts generation only
        self.timed_out = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        now = time.perf_counter()
        if self.deadline is None:
            self.deadline = now + self.seconds
        if not self.event.is_set() and now > self.deadline:
            self.timed_out = True
        done = self.event.is_set() or self.timed_out
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def stream_reply(
    lm: CausalLM,
    messages: list[dict[str, str]],
    settings: GenerationSettings,
    stop: threading.Event | None = None,
    interval: float = 0.0,
) -> Iterator[Reply]:
    """Stream the assistant's reply to ``messages``; the last Reply carries stats and token info.

    ``generate`` runs on a model worker (shared.compute) and hands each token to this thread,
    which yields the text so far at most every ``interval`` seconds. Closing the iterator (a
    client that went away) stops the generation too.
    """
    stop = stop or threading.Event()
    start = time.perf_counter()
    # 1. fit the conversation into the window and render it through the chat template
    kept, prompt_ids, dropped = fit_to_context(lm.tokenizer, messages, lm.context_window, settings.max_new_tokens)
    prompt = render_prompt(lm.tokenizer, kept)
    device = next(lm.model.parameters()).device
    input_ids = torch.tensor([prompt_ids], device=device)  # (1, T)
    seed = settings.seed if settings.seed >= 0 else int(torch.randint(0, MAX_SEED, ()).item())

    # 2. generate on a model worker; the streamer hands each new token to this thread
    streamer = TokenStreamer()
    recorder = ProbabilityRecorder(lm.tokenizer)
    stopper = StopOnEvent(stop, MAX_REPLY_S)
    kwargs = _generate_kwargs(lm, input_ids, settings, recorder, stopper, streamer)
    result: dict[str, object] = {}

    def work() -> None:
        worker = threading.current_thread()
        name, worker.name = worker.name, "chat-generate"  # what the worker is doing, for tests and py-spy
        try:
            torch.manual_seed(seed)
            with torch.inference_mode():
                result["sequences"] = lm.model.generate(**kwargs)
        except BaseException as exc:  # reported to the user below, never swallowed
            result["error"] = exc
            streamer.end()
        finally:
            worker.name = name

    job = compute.submit(work, lane=compute.INTERACTIVE)

    # 3. relay text as it arrives
    text, first_token_at = yield from _relay(streamer, lm.tokenizer, prompt, stop, interval)
    job.result()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]

    # 4. the final update: statistics and per-token probabilities
    end = time.perf_counter()
    generated = result["sequences"][0, input_ids.shape[1] :].tolist()  # type: ignore[index]
    n = len(generated)
    first = first_token_at or end
    stats = ReplyStats(
        prompt_tokens=len(prompt_ids),
        completion_tokens=n,
        ttft_s=first - start,
        tokens_per_s=(n - 1) / (end - first) if n > 1 and end > first else 0.0,
        context_window=lm.context_window,
        dropped_messages=dropped,
        seed=seed,
        finish="time limit" if stopper.timed_out else _finish(lm, generated, stop),
        greedy=not kwargs["do_sample"],
    )
    yield Reply(text, stats=stats, tokens=recorder.finish(generated), prompt=prompt)


@compute.gpu_entry(
    model=lambda model, *args: model,
    seconds=lambda model, messages, settings, interval: 10 + settings.max_new_tokens / 20,  # ≥ 20 tokens/s
)
def reply_on_gpu(model: str, messages: list[dict[str, str]], settings: GenerationSettings, interval: float):
    """A whole reply from plain values, for ZeroGPU's forked worker: the model was loaded at startup, the
    generation thread starts in here, and Stop arrives as Gradio's cancellation (the worker closes this
    generator at its next yield, which sets the generation's stop flag)."""
    yield from stream_reply(runtime.causal_lm(model), messages, settings, None, interval)


def _relay(streamer: TokenStreamer, tokenizer, prompt: str, stop: threading.Event, interval: float):
    """Yield the reply so far as tokens arrive, at most every ``interval`` seconds; return
    (the whole text, when the first token came). A consumer that leaves early, or a model that
    stalls, ends the generation through ``stop``."""
    text = ""
    first_token_at: float | None = None
    relayed = False
    try:
        last_yield = 0.0
        for text in streamer.text(tokenizer, STREAM_TIMEOUT_S):
            now = time.perf_counter()
            if first_token_at is None:
                first_token_at = now
            # Each update costs the server and client a few ms of CPU that the model would
            # otherwise use; on fast hardware tokens come faster than anyone reads. Coalesce.
            if now - last_yield >= interval:
                last_yield = now
                yield Reply(text, prompt=prompt)
        relayed = True
    except queue.Empty:
        raise RuntimeError(
            f"The model produced nothing for {STREAM_TIMEOUT_S:.0f} s; generation was stopped."
        ) from None
    finally:
        if not relayed:  # the consumer left early (GeneratorExit) or timed out: end the generation
            stop.set()
    return text, first_token_at


def _generate_kwargs(lm: CausalLM, input_ids: torch.Tensor, settings, recorder, stopper, streamer) -> dict:
    """``model.generate``'s arguments for these settings (temperature 0, or below MIN_TEMPERATURE,
    = greedy: no sampling knobs)."""
    sampling = settings.temperature >= MIN_TEMPERATURE
    return dict(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=settings.max_new_tokens,
        do_sample=sampling,
        temperature=settings.temperature if sampling else None,
        top_p=settings.top_p if sampling else None,
        top_k=settings.top_k if sampling else None,
        repetition_penalty=settings.repetition_penalty,
        logits_processor=[recorder],
        stopping_criteria=[stopper],
        streamer=streamer,
        pad_token_id=lm.tokenizer.pad_token_id or lm.tokenizer.eos_token_id,
    )


def _finish(lm: CausalLM, generated: list[int], stop: threading.Event) -> str:
    """Why the reply ended: "stopped" (Stop or a client that left), "end of turn" or "length"."""
    if stop.is_set():
        return "stopped"
    return "end of turn" if generated and generated[-1] in _eos_ids(lm) else "length"


def _eos_ids(lm: CausalLM) -> set[int]:
    eos = lm.model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if lm.tokenizer.eos_token_id is not None:
        ids.add(lm.tokenizer.eos_token_id)
    return ids
