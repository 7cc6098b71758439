"""The chat tab's pure functions on a tiny real Llama: validation, context fitting, streaming, Stop."""

import json
import math
import threading
import time

import pytest
import torch

from demos.chat import core as chat_core
from demos.chat import engine as chat_engine
from demos.chat import ui as chat_ui
from demos.chat import view as chat_view
from shared import engines as chat_engines
from shared.loaders import load_causal_lm
from tests.tiny_models import spec

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def lm(tiny_llama_dir, tmp_path_factory):
    return load_causal_lm(
        spec(str(tiny_llama_dir)), device="cpu", dtype=torch.float32, cache_dir=tmp_path_factory.mktemp("cache")
    )


@pytest.fixture(scope="module")
def lm_stops(tiny_llama_stops_dir, tmp_path_factory):
    return load_causal_lm(
        spec(str(tiny_llama_stops_dir)), device="cpu", dtype=torch.float32, cache_dir=tmp_path_factory.mktemp("cache")
    )


def settings(**kw):
    base = dict(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=12, repetition_penalty=1.0, seed=0)
    return chat_core.validate_settings(**{**base, **kw})


def run(lm, messages, **kw):
    replies = list(chat_engine.stream_reply(lm, messages, settings(**kw)))
    return replies[-1]


USER = [{"role": "user", "content": "hello how are you ?"}]


@pytest.mark.parametrize(
    "name, value",
    [
        ("temperature", -0.1),
        ("temperature", 2.5),
        ("temperature", math.nan),
        ("temperature", math.inf),
        ("top_p", 0),
        ("top_p", 1.5),
        ("top_k", -1),
        ("top_k", 2.5),
        ("top_k", 10**9),
        ("max_new_tokens", 0),
        ("max_new_tokens", 10**6),
        ("repetition_penalty", 0.5),
        ("seed", 2**70),
        ("seed", "abc"),
        ("temperature", True),
        ("temperature", None),
        ("max_new_tokens", "NaN"),
    ],
)
def test_bad_settings_are_refused_with_the_name(name, value):
    with pytest.raises(ValueError, match=name):
        settings(**{name: value})


def test_numeric_strings_are_accepted():
    assert settings(temperature="0.5", top_k="7").top_k == 7


@pytest.mark.parametrize("message", ["", "   \n\t", "x" * 200_000, None, 42])
def test_bad_messages(message):
    with pytest.raises(ValueError):
        chat_core.validate_message(message)


@pytest.mark.parametrize(
    "history, match",
    [
        ([{"role": "wizard", "content": "hi"}], "role"),
        ([{"role": "user", "content": 42}], "type int"),
        ([{"role": "user", "content": {"path": "/etc/passwd"}}], "non-text"),
        ([{"role": "user"}], "role' and 'content"),
        ("not a list", "list"),
        ([{"role": "user", "content": "hi"}] * 10_000, "10,000 messages"),
    ],
)
def test_bad_histories(history, match):
    with pytest.raises(ValueError, match=match):
        chat_core.normalize_history(history)


def test_gradio_content_parts_are_read():
    history = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}],
            "metadata": None,
            "options": None,
        }
    ]
    assert chat_core.normalize_history(history) == [{"role": "user", "content": "hi there"}]


def test_system_prompt_goes_first():
    messages = chat_core.build_messages("be brief", [{"role": "user", "content": "hi"}])
    assert messages[0] == {"role": "system", "content": "be brief"}


def test_prompt_shows_special_tokens(lm):
    prompt = chat_engine.render_prompt(lm.tokenizer, chat_core.build_messages("be brief", USER))
    assert prompt.startswith("<|im_start|>system\nbe brief<|im_end|>") and prompt.endswith("<|im_start|>assistant\n")


def test_stream_runs_to_max_new_tokens_and_reports(lm):
    replies = list(chat_engine.stream_reply(lm, USER, settings(max_new_tokens=12)))
    assert len(replies) >= 2 and replies[-1].stats is not None
    assert all(r.stats is None for r in replies[:-1])
    stats = replies[-1].stats
    assert stats.completion_tokens == 12 and stats.finish == "length"
    assert stats.prompt_tokens == len(chat_engine._encode(lm.tokenizer, USER))
    assert stats.ttft_s > 0 and stats.tokens_per_s > 0 and stats.context_window == 256
    assert len(replies[-1].tokens) == 12


def test_token_probabilities_are_the_models(lm):
    """Greedy: each token is the top alternative, and its probability is softmax(logits) recomputed."""
    final = run(lm, USER, max_new_tokens=6)
    ids = chat_engine._encode(lm.tokenizer, USER)
    generated = [t.token_id for t in final.tokens]
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids + generated])).logits[0]
    for step, info in enumerate(final.tokens):
        probs = torch.softmax(logits[len(ids) - 1 + step], -1)
        assert info.top[0][0] == info.token
        assert info.prob == pytest.approx(float(probs[generated[step]]), abs=1e-5)
        assert [p for _, p in info.top] == sorted((p for _, p in info.top), reverse=True)


def test_same_seed_same_reply_when_sampling(lm):
    a = run(lm, USER, temperature=1.0, top_k=20, top_p=0.95, seed=123)
    b = run(lm, USER, temperature=1.0, top_k=20, top_p=0.95, seed=123)
    c = run(lm, USER, temperature=1.0, top_k=20, top_p=0.95, seed=124)
    assert a.text == b.text and a.stats.seed == 123
    assert [t.token for t in a.tokens] != [t.token for t in c.tokens]


def test_end_of_turn_ends_the_reply(lm_stops):
    # Make end-of-turn the certain next token by biasing the output layer, then check the finish.
    eos = lm_stops.tokenizer.eos_token_id
    with torch.no_grad():
        saved = lm_stops.model.lm_head.weight[eos].clone()
        lm_stops.model.lm_head.weight[eos] = 50 * lm_stops.model.lm_head.weight.abs().max()
        lm_stops.model.model.norm.weight.abs_()
    try:
        final = run(lm_stops, USER, max_new_tokens=20)
    finally:
        with torch.no_grad():
            lm_stops.model.lm_head.weight[eos] = saved
    assert final.stats.finish == "end of turn" and final.stats.completion_tokens < 20


def test_long_history_drops_oldest_turns_with_a_notice(lm_stops):
    history = []
    for i in range(30):
        history += [
            {"role": "user", "content": f"what is the capital of france {i}"},
            {"role": "assistant", "content": "paris is the capital"},
        ]
    messages = chat_core.build_messages("be brief", history + USER)
    kept, ids, dropped = chat_engine.fit_to_context(lm_stops.tokenizer, messages, window=64, max_new_tokens=8)
    assert dropped > 0 and len(ids) <= 56
    assert kept[0]["role"] == "system" and kept[-1] == USER[-1] and kept[1]["role"] == "user"
    final = run(lm_stops, messages, max_new_tokens=8)
    assert final.stats.dropped_messages == dropped
    assert "oldest" in chat_view.stats_markdown(final.stats)


def test_message_that_cannot_fit_is_refused(lm_stops):
    words = " ".join(["paris"] * 200)
    with pytest.raises(ValueError, match="window"):
        chat_engine.fit_to_context(
            lm_stops.tokenizer, [{"role": "user", "content": words}], window=64, max_new_tokens=8
        )


def _generation_threads():
    return [t for t in threading.enumerate() if t.name == "chat-generate" and t.is_alive()]


def test_stop_ends_the_generation_thread(lm):
    stop = threading.Event()
    stream = chat_engine.stream_reply(lm, USER, settings(max_new_tokens=200), stop)
    next(stream)
    stop.set()
    replies = list(stream)
    assert replies[-1].stats.finish == "stopped" and replies[-1].stats.completion_tokens < 200
    deadline = time.time() + 2
    while _generation_threads() and time.time() < deadline:
        time.sleep(0.02)
    assert not _generation_threads()


def test_closing_the_stream_ends_the_thread(lm):
    stream = chat_engine.stream_reply(lm, USER, settings(max_new_tokens=200))
    next(stream)
    stream.close()  # what Gradio does when a client disconnects or cancels
    deadline = time.time() + 2
    while _generation_threads() and time.time() < deadline:
        time.sleep(0.02)
    assert not _generation_threads()


def test_error_in_generation_thread_reaches_the_caller(lm):
    class Broken(chat_engine.ProbabilityRecorder):
        def __call__(self, input_ids, scores):
            raise RuntimeError("kaboom")

    original = chat_engine.ProbabilityRecorder
    chat_engine.ProbabilityRecorder = Broken
    try:
        start = time.time()
        with pytest.raises(RuntimeError, match="kaboom"):
            list(chat_engine.stream_reply(lm, USER, settings()))
        assert time.time() - start < 5
    finally:
        chat_engine.ProbabilityRecorder = original


def test_views_and_exports(lm):
    final = run(lm, USER, max_new_tokens=5)
    html = chat_view.token_view_html(final.tokens)
    assert html.count('class="tok"') == 5 and "p=" in html
    assert len(chat_view.token_table(final.tokens)) == 5
    messages = USER + [{"role": "assistant", "content": final.text}]
    assert json.loads(chat_view.to_json(messages, "m"))["messages"] == messages
    assert "**Assistant:**" in chat_view.to_markdown(messages)
    gauge = chat_view.context_gauge_html(50, 100)
    assert "50 / 100" in gauge and "50%" in gauge


def test_updates_are_coalesced_but_nothing_is_lost(lm):
    every = list(chat_engine.stream_reply(lm, USER, settings(max_new_tokens=150)))
    coalesced = list(chat_engine.stream_reply(lm, USER, settings(max_new_tokens=150), interval=10.0))
    assert len(every) > 20 and len(coalesced) <= 3
    assert coalesced[-1].text == every[-1].text and coalesced[-1].stats.completion_tokens == 150


HISTORY = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "what is the capital of france ?"},
    {"role": "assistant", "content": "paris"},
]


def test_edit_keeps_history_up_to_the_edited_message():
    import gradio as gr

    data = gr.EditData(None, {"index": 2, "value": "how are you ?", "previous_value": HISTORY[2]["content"]})
    assert chat_ui.edit(HISTORY, data, gr.Request(session_hash="edit"))[0] == [
        *HISTORY[:2],
        {"role": "user", "content": "how are you ?"},
    ]
    chat_ui._turns.end(gr.Request(session_hash="edit"))
    with pytest.raises(gr.Error, match="empty"):
        chat_ui.edit(HISTORY, gr.EditData(None, {"index": 0, "value": "  ", "previous_value": "hi"}))


def test_regenerate_and_undo():
    import gradio as gr

    request = gr.Request(session_hash="regenerate")
    assert chat_ui.last_user_turn(HISTORY, request)[0] == HISTORY[:3]
    chat_ui._turns.end(request)
    assert chat_ui.undo(HISTORY)[:2] == (HISTORY[:2], HISTORY[2]["content"])
    assert chat_ui.undo([])[:2] == ([], "")


# --- inputs that are valid and used to fail; what one request may cost ---------------------------


@pytest.mark.parametrize("temperature", [1e-300, 5e-324, 1e-40, 1e-4])
def test_temperatures_too_small_to_sample_with_are_greedy(lm, temperature):
    """Sampling divides the scores by the temperature: below ~1e-39 they overflow float32 and
    generate fails ("probability tensor contains inf"); below MIN_TEMPERATURE (0.001) it is greedy."""
    greedy = run(lm, USER, temperature=0.0)
    tiny = run(lm, USER, temperature=temperature, top_k=50, top_p=0.9)
    assert tiny.text == greedy.text and tiny.stats.greedy and greedy.stats.greedy
    assert "greedy" in chat_view.stats_markdown(tiny.stats) and "seed" not in chat_view.stats_markdown(tiny.stats)
    sampled = run(lm, USER, temperature=chat_engines.MIN_TEMPERATURE)
    assert not sampled.stats.greedy and "sampled, seed 0" in chat_view.stats_markdown(sampled.stats)
    assert "0.001" in chat_core.SLIDERS["temperature"][4]


def test_a_reply_stops_at_the_time_limit(lm, monkeypatch):
    monkeypatch.setattr(chat_engine, "MAX_REPLY_S", 0.0)
    final = run(lm, USER, max_new_tokens=200)
    assert final.stats.finish == "time limit" and final.stats.completion_tokens < 200


def test_max_new_tokens_is_bounded_by_the_window(lm):
    with pytest.raises(ValueError, match="below the model's window of 256 tokens"):
        run(lm, USER, max_new_tokens=256)


@pytest.mark.parametrize("text", ["bad \ud800 surrogate", "\udfff"])
def test_lone_surrogates_get_a_clear_message_on_every_path(text):
    import gradio as gr

    history = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    with pytest.raises(ValueError, match="lone surrogate"):
        chat_core.validate_message(text)
    with pytest.raises(ValueError, match="history message 0 contains an invalid character"):
        chat_core.normalize_history(history)
    with pytest.raises(ValueError, match="system prompt contains an invalid character"):
        chat_core.build_messages(text, USER)
    for handler in (
        lambda: chat_ui.add_user_message(text, []),
        lambda: chat_ui.edit(HISTORY, gr.EditData(None, {"index": 0, "value": text, "previous_value": "hi"})),
        lambda: chat_ui.export(history, "tiny"),
        lambda: chat_ui.export(USER, text),
        lambda: chat_ui.conversation_as_seen("tiny", history, ""),
        lambda: chat_ui.conversation_as_seen("tiny", USER, text),
    ):
        with pytest.raises(gr.Error, match="lone surrogate"):
            handler()


def test_a_history_of_exactly_the_limit_is_accepted_with_the_new_message():
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "hi"} for i in range(chat_core.MAX_HISTORY_MESSAGES)
    ]
    assert len(chat_core.normalize_history(history)) == 500
    with pytest.raises(ValueError, match="501 messages; the limit is 500"):
        chat_core.normalize_history([*history, USER[0]])


def test_a_history_over_the_character_cap_is_refused_with_a_clear_message():
    history = [{"role": "user", "content": "x" * chat_core.MAX_MESSAGE_CHARS}] * (
        chat_core.MAX_HISTORY_CHARS // 20_000 + 1
    )
    with pytest.raises(
        ValueError, match="more than 1,000,000 characters .by message 50.; .* send only the recent part"
    ):
        chat_core.normalize_history(history)


def test_the_page_sends_only_the_newest_part_of_a_long_conversation():
    """The page keeps every message; a request carries the newest MAX_HISTORY_MESSAGES (+ the new
    one) within MAX_HISTORY_CHARS, starting on a user turn, so a long chat never gets refused."""
    turns = [{"role": ("user", "assistant")[i % 2], "content": [{"type": "text", "text": f"m{i}"}]} for i in range(700)]
    carried, left_out = chat_core.recent([*turns, USER[0]])
    assert len(carried) == 501 and left_out == 200 and carried[0]["role"] == "user" and carried[-1] == USER[0]
    assert len(chat_core.normalize_history(carried, max_messages=501))
    long = [{"role": ("user", "assistant")[i % 2], "content": "y" * 20_000} for i in range(120)]
    carried, left_out = chat_core.recent(long)
    assert sum(len(m["content"]) for m in carried) <= chat_core.MAX_HISTORY_CHARS + chat_core.MAX_MESSAGE_CHARS
    assert left_out == 120 - len(carried) and carried[0]["role"] == "user" and left_out > 0
    assert chat_core.recent([]) == ([], 0) and chat_core.recent(USER) == (USER, 0)


def test_a_huge_history_costs_what_the_window_holds(lm_stops):
    """500 × 20,000 characters (10 MB): only about a window's worth is ever tokenized (it took
    12 s with the tiny tokenizer and ~40 s with SmolLM2's when the whole history was), and the
    result is what dropping the oldest turns one by one gives."""
    words = ("the cat sat on the mat . " * 1000)[:20_000]
    history = [{"role": ("user", "assistant")[i % 2], "content": words} for i in range(499)] + USER
    start = time.perf_counter()
    kept, ids, dropped = chat_engine.fit_to_context(lm_stops.tokenizer, history, window=64, max_new_tokens=8)
    assert time.perf_counter() - start < 1.5
    assert kept == USER and dropped == 499 and len(ids) <= 56

    short = [{"role": ("user", "assistant")[i % 2], "content": f"what is the capital of france {i}"} for i in range(41)]
    kept, ids, dropped = chat_engine.fit_to_context(lm_stops.tokenizer, short, window=64, max_new_tokens=8)
    reference = short
    while len(chat_engine._encode(lm_stops.tokenizer, reference)) > 56:
        reference = reference[1:]
    while reference[0]["role"] != "user":
        reference = reference[1:]
    assert kept == reference and dropped == len(short) - len(reference)


def test_exports_go_to_the_swept_scratch_folder(monkeypatch):
    """Exports are written under shared/scratch's folder, which deletes old ones past its age or
    byte budget (they used to go to a new temp folder each, never deleted)."""
    from shared import scratch

    def exports():
        return sorted(scratch.root().glob("chat-export-*/conversation.*"))

    messages = [*USER, {"role": "assistant", "content": "fine " * 2000}]
    before = set(exports())
    returned = chat_ui.export(messages, "tiny").value
    written = [p for p in exports() if p not in before]
    assert [p.name for p in written] == ["conversation.json", "conversation.md"]
    assert [f["orig_name"] for f in returned] == ["conversation.json", "conversation.md"]
    assert json.loads(written[0].read_text())["messages"] == messages
    monkeypatch.setattr(scratch, "MAX_BYTES", 1)  # every older export is over the budget now
    chat_ui.export(messages, "tiny")
    assert not any(p.exists() for p in written) and len(exports()) == 2
    too_big = [{"role": "user", "content": "x" * 20_000}] * 500  # the 40 MB export of the issue
    with pytest.raises(Exception, match="more than 1,000,000 characters"):
        chat_ui.export(too_big, "tiny")
    with pytest.raises(Exception, match="model must be text"):
        chat_ui.export(messages, 42)
