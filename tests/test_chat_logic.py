"""The chat tab's pure functions on a tiny real Llama: validation, context fitting, streaming, Stop."""

import json
import math
import threading
import time

import pytest
import torch

from demos import chat, chat_engine
from shared.loaders import load_causal_lm
from tests.tiny_models import spec


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
    return chat.validate_settings(**{**base, **kw})


def run(lm, messages, **kw):
    replies = list(chat.stream_reply(lm, messages, settings(**kw)))
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
        chat.validate_message(message)


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
        chat.normalize_history(history)


def test_gradio_content_parts_are_read():
    history = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}],
            "metadata": None,
            "options": None,
        }
    ]
    assert chat.normalize_history(history) == [{"role": "user", "content": "hi there"}]


def test_system_prompt_goes_first():
    messages = chat.build_messages("be brief", [{"role": "user", "content": "hi"}])
    assert messages[0] == {"role": "system", "content": "be brief"}


def test_prompt_shows_special_tokens(lm):
    prompt = chat.render_prompt(lm.tokenizer, chat.build_messages("be brief", USER))
    assert prompt.startswith("<|im_start|>system\nbe brief<|im_end|>") and prompt.endswith("<|im_start|>assistant\n")


def test_stream_runs_to_max_new_tokens_and_reports(lm):
    replies = list(chat.stream_reply(lm, USER, settings(max_new_tokens=12)))
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
    messages = chat.build_messages("be brief", history + USER)
    kept, ids, dropped = chat.fit_to_context(lm_stops.tokenizer, messages, window=64, max_new_tokens=8)
    assert dropped > 0 and len(ids) <= 56
    assert kept[0]["role"] == "system" and kept[-1] == USER[-1] and kept[1]["role"] == "user"
    final = run(lm_stops, messages, max_new_tokens=8)
    assert final.stats.dropped_messages == dropped
    assert "oldest" in chat.stats_markdown(final.stats)


def test_message_that_cannot_fit_is_refused(lm_stops):
    words = " ".join(["paris"] * 200)
    with pytest.raises(ValueError, match="window"):
        chat.fit_to_context(lm_stops.tokenizer, [{"role": "user", "content": words}], window=64, max_new_tokens=8)


def _generation_threads():
    return [t for t in threading.enumerate() if t.name == "chat-generate" and t.is_alive()]


def test_stop_ends_the_generation_thread(lm):
    stop = threading.Event()
    stream = chat.stream_reply(lm, USER, settings(max_new_tokens=200), stop)
    next(stream)
    stop.set()
    replies = list(stream)
    assert replies[-1].stats.finish == "stopped" and replies[-1].stats.completion_tokens < 200
    deadline = time.time() + 2
    while _generation_threads() and time.time() < deadline:
        time.sleep(0.02)
    assert not _generation_threads()


def test_closing_the_stream_ends_the_thread(lm):
    stream = chat.stream_reply(lm, USER, settings(max_new_tokens=200))
    next(stream)
    stream.close()  # what Gradio does when a client disconnects or cancels
    deadline = time.time() + 2
    while _generation_threads() and time.time() < deadline:
        time.sleep(0.02)
    assert not _generation_threads()


def test_error_in_generation_thread_reaches_the_caller(lm):
    class Broken(chat.ProbabilityRecorder):
        def __call__(self, input_ids, scores):
            raise RuntimeError("kaboom")

    original = chat_engine.ProbabilityRecorder
    chat_engine.ProbabilityRecorder = Broken
    try:
        start = time.time()
        with pytest.raises(RuntimeError, match="kaboom"):
            list(chat.stream_reply(lm, USER, settings()))
        assert time.time() - start < 5
    finally:
        chat_engine.ProbabilityRecorder = original


def test_views_and_exports(lm):
    final = run(lm, USER, max_new_tokens=5)
    html = chat.token_view_html(final.tokens)
    assert html.count('class="tok"') == 5 and "p=" in html
    assert len(chat.token_table(final.tokens)) == 5
    messages = USER + [{"role": "assistant", "content": final.text}]
    assert json.loads(chat.to_json(messages, "m"))["messages"] == messages
    assert "**Assistant:**" in chat.to_markdown(messages)
    gauge = chat.context_gauge_html(50, 100)
    assert "50 / 100" in gauge and "50%" in gauge


def test_updates_are_coalesced_but_nothing_is_lost(lm):
    every = list(chat.stream_reply(lm, USER, settings(max_new_tokens=150)))
    coalesced = list(chat.stream_reply(lm, USER, settings(max_new_tokens=150), interval=10.0))
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
    assert chat.edit(HISTORY, data) == [*HISTORY[:2], {"role": "user", "content": "how are you ?"}]
    with pytest.raises(gr.Error, match="empty"):
        chat.edit(HISTORY, gr.EditData(None, {"index": 0, "value": "  ", "previous_value": "hi"}))


def test_regenerate_and_undo():
    assert chat.last_user_turn(HISTORY) == HISTORY[:3]
    assert chat.undo(HISTORY) == (HISTORY[:2], HISTORY[2]["content"])
    assert chat.undo([]) == ([], "")
