"""The chat conversation stays true: a message sent mid-reply is kept, a failed reply leaves a note
(never two user turns in a row for the model), Undo clears what described the undone reply, exports
say how the conversation was made, time to first token counts from Send, and the three modes
(direct, few-shot, retrieval) change what the model sees. On a tiny real Llama through the app."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import gradio as gr
import pytest
from gradio_client.exceptions import AppError

from demos.chat import modes as chat_modes
from demos.chat import ui as chat_ui
from demos.chat import view as chat_view
from shared import compute
from tests.helpers import GOOD

pytestmark = pytest.mark.fast

QUESTIONS = json.loads((Path(__file__).resolve().parents[1] / "data" / "concept_questions.json").read_text())

SETTINGS = ("", 0.0, 1.0, 0, 8, 1.0, 0)  # system prompt, temperature … seed: a short greedy reply


def final(model, history, *settings, mode="direct", sent_at=None, session="turns"):
    *_, last = chat_ui.respond(
        model, history, *(settings or SETTINGS), mode, sent_at, request=gr.Request(session_hash=session)
    )
    return last


def user(text):
    return {"role": "user", "content": text}


def test_a_message_sent_while_a_reply_is_written_stays_in_the_box(launched_app):
    """Send during a reply is refused with a message (the page keeps the text in the box: the event
    fails, so neither the box nor the conversation changes); once the reply ends it goes through."""
    request = gr.Request(session_hash="busy")
    history, box, send, stop, _files, sent_at = chat_ui.add_user_message("first", [], request)
    assert box == "" and history == [user("first")] and send.interactive is False and stop.interactive is True
    with pytest.raises(gr.Error, match="still being written. Your message stays in the box") as refused:
        chat_ui.add_user_message("second", history, request)
    assert refused.value.title == "Still replying"
    for blocked in (lambda: chat_ui.undo(history, request), lambda: chat_ui.clear(request)):
        with pytest.raises(gr.Error, match="press Stop first"):
            blocked()
    reply = final("tiny-chat", history, sent_at=sent_at, session="busy")
    assert reply[0][-1]["role"] == "assistant" and not chat_view.is_failure_note(reply[0][-1])
    send, stop = chat_ui.reply_done(request)
    assert send.interactive is True and stop.interactive is False
    assert chat_ui.add_user_message("second", reply[0], request)[0][-1] == user("second")
    chat_ui.reply_done(request)


def test_a_failed_reply_leaves_a_note_and_the_next_message_is_answered_alone(launched_app):
    """Seed −7 fails: the user's turn stays with a note saying why (no exception, so no red badge over
    the conversation); the next message is answered and the model sees it without the failed turn."""
    history = [user("hello how are you ?")]
    failed = final("tiny-chat", history, "", 0.0, 1.0, 0, 8, 1.0, -7)
    conversation, stats = failed[0], failed[1]
    assert conversation[:-1] == history and chat_view.is_failure_note(conversation[-1])
    assert "seed" in conversation[-1]["content"] and stats.startswith("⚠️ **No reply:**") and "seed" in stats
    again = [*conversation, user("what is the capital of france ?")]
    answered = final("tiny-chat", again)
    prompt = answered[5]
    assert "what is the capital of france ?" in prompt and "hello how are you ?" not in prompt
    assert answered[0][:-1] == again and answered[0][-1]["role"] == "assistant"  # the page keeps everything
    assert chat_view.answered_turns(answered[0]) == [again[-1], answered[0][-1]]


def test_regenerate_after_a_failure_retries_the_same_message(launched_app):
    history = [user("hello how are you ?")]
    failed = final("tiny-chat", history, "", 0.0, 1.0, 0, 8, 1.0, -7)[0]
    request = gr.Request(session_hash="retry")
    retried = chat_ui.last_user_turn(failed, request)[0]
    assert retried == history
    assert final("tiny-chat", retried, session="retry")[0][-1]["role"] == "assistant"
    chat_ui.reply_done(request)


def test_stop_before_the_reply_started_ends_it_at_once(launched_app):
    request = gr.Request(session_hash="early-stop")
    history, *_ = chat_ui.add_user_message("hello", [], request)
    chat_ui.stop_generation(request)
    stopped = final("tiny-chat", history, session="early-stop")
    assert chat_view.is_failure_note(stopped[0][-1]) and "Stopped before the reply started" in stopped[1]
    chat_ui.reply_done(request)


def test_undo_clears_the_panels_that_described_the_undone_reply(launched_app):
    reply = final("tiny-chat", [user("hello how are you ?")])
    assert "tokens/s" in reply[1] and reply[5]
    conversation, box, stats, gauge, token_html, tokens, prompt, passages, files = chat_ui.undo(reply[0])
    assert conversation == [] and box == "hello how are you ?"
    assert (
        stats == chat_view.STATS_PLACEHOLDER
        and "nothing yet" in gauge
        and token_html == chat_view.TOKEN_VIEW_PLACEHOLDER
    )
    assert tokens is None and prompt == "" and passages == "" and files.visible is False


def test_the_context_gauge_says_nothing_yet_before_a_reply():
    gauge = chat_view.context_gauge_html(0, 0)
    assert "nothing yet" in gauge and "/ 1 " not in gauge and "0 / 1" not in gauge


def test_an_export_says_how_the_conversation_was_made(launched_app):
    settings = ("Be brief.", 0.7, 0.9, 40, 8, 1.1, -1)
    reply = final("tiny-chat", [user("hello how are you ?")], *settings)
    meta = reply[7]
    files = chat_ui.export(reply[0], "tiny-chat", "Be brief.", "direct", meta).value
    exported = json.loads(open(files[0]["path"], encoding="utf-8").read())
    assert exported["model"] == "tiny-chat" and exported["revision"] == "0" * 40
    assert exported["system_prompt"] == "Be brief." and exported["mode"] == "direct"
    assert exported["settings"]["top_k"] == 40 and exported["settings"]["seed"] == -1
    assert exported["last_reply"]["seed_used"] >= 0 and exported["last_reply"]["finish"]
    assert exported["messages"] == [
        user("hello how are you ?"),
        {"role": "assistant", "content": reply[0][-1]["content"]},
    ]
    markdown = open(files[1]["path"], encoding="utf-8").read()
    assert '"Be brief."' in markdown and "seed_used" in markdown


def test_time_to_first_token_counts_from_send(launched_app):
    reply = final("tiny-chat", [user("hello how are you ?")], sent_at=time.time() - 1.5)
    waited = float(reply[1].split("(")[1].split(" s waiting")[0])
    total = float(reply[1].split("**")[1].split(" s")[0])
    assert "from Send to first token" in reply[1] and waited >= 1.5 and total >= waited
    assert "from Send" not in final("tiny-chat", [user("hello")], sent_at="not a time")[1]


# --- the three ways to use an LLM ---------------------------------------------------------------


def test_few_shot_puts_example_turns_before_the_conversation(launched_app):
    prompt = final("tiny-chat", [user("what is a GAN ?")], mode="few-shot")[5]
    examples = [m["content"] for m in chat_modes.FEW_SHOT]
    positions = [prompt.index(text) for text in examples]
    assert positions == sorted(positions) and positions[-1] < prompt.index("what is a GAN ?")


def test_retrieval_shows_the_passages_and_places_them_in_the_prompt(launched_app):
    reply = final("tiny-chat", [user("What is an attention sink?")], mode="retrieval")
    prompt, passages = reply[5], reply[6]
    assert "Retrieved for the last question" in passages and "attention sink" in passages
    assert "attention sink" in prompt.split("What is an attention sink?")[0]  # in the system prompt, before
    direct = final("tiny-chat", [user("What is an attention sink?")])
    assert "Passage 1" not in direct[5] and "Pick Retrieval" in direct[6]


def test_the_api_takes_a_mode_and_refuses_an_unknown_one(launched_app, client):
    assert isinstance(client.predict(**GOOD, mode="retrieval", api_name="/chat"), str)
    with pytest.raises(AppError, match="Unknown chat mode 'oracle'"):
        client.predict(**GOOD, mode="oracle", api_name="/chat")


def test_retrieval_finds_the_answer_to_every_graded_question():
    """For each graded question, the passages placed in the prompt hold its key terms: what the
    model needs to answer is in what it sees (the model's own accuracy is in bench/chat_modes.py)."""
    missed = []
    for item in QUESTIONS["questions"]:
        text = " ".join(p.text for p, _ in chat_modes.index().search(item["question"]))
        if not chat_modes.grade(text, item["all"]):
            missed.append(item["question"])
    assert missed == []


def test_the_graded_set_is_graded_by_terms_the_question_does_not_contain():
    questions = QUESTIONS["questions"]
    assert len(questions) >= 30 and {q["topic"] for q in questions} >= {"gan", "vae", "attention", "diffusion"}
    for item in questions:
        assert not any(t.lower() in item["question"].lower() for group in item["all"] for t in group), item
    assert chat_modes.grade("A Generative Adversarial network", [["generative adversarial"]])
    assert not chat_modes.grade("General Negative Approximation", [["generative adversarial"]])
    assert not chat_modes.grade("the generator", [["generator"], ["discriminator"]])


def test_answered_turns_never_gives_two_user_turns_in_a_row():
    note = chat_view.failure_note("boom")
    history = [user("a"), note, user("b"), user("c"), {"role": "assistant", "content": "ok"}, user("d")]
    assert chat_view.answered_turns(history) == [user("c"), {"role": "assistant", "content": "ok"}, user("d")]
    assert chat_view.answered_turns([]) == [] and chat_view.answered_turns([user("x")]) == [user("x")]


# --- pickers and the interactive lane -------------------------------------------------------------


def test_pickers_list_bundled_models_first_and_mark_offline_hub_models(launched_app):
    from demos import glue

    for tasks in (("chat",), ("attention", "chat"), ("text-to-image",)):
        choices = glue.model_choices(*tasks)
        bundled = [i for i, (label, _) in enumerate(choices) if "bundled" in label]
        offline = [i for i, (label, _) in enumerate(choices) if "unavailable: offline (HF_HUB_OFFLINE is set)" in label]
        assert bundled and bundled == list(range(len(bundled))), choices
        assert offline and min(offline) > max(bundled)
        assert any(label.startswith("⛔ hub-chat") for label, _ in glue.model_choices("chat"))


def test_a_long_job_steps_aside_while_interactive_work_runs(launched_app):
    """On the CPU interactive work (chat, attention) runs before a long job (images) that was waiting,
    and inside a running one between its steps, on the same torch thread."""
    order, release = [], threading.Event()

    def interactive():
        order.append(("interactive", threading.current_thread().name))
        release.wait(5)
        order.append(("interactive done", None))

    def long_job():  # waits before it starts (and would at each yield_to_interactive between steps)
        order.append(("long step", time.perf_counter()))
        assert compute.yield_to_interactive() < 0.1  # nothing interactive runs any more

    first = compute.submit(interactive, lane=compute.INTERACTIVE)
    while not compute.interactive_running():
        time.sleep(0.01)
    second = compute.submit(long_job)
    time.sleep(0.5)
    assert [o[0] for o in order] == ["interactive"] and order[0][1].startswith("model-work")  # the one torch thread
    released = time.perf_counter()
    release.set()
    first.result(5), second.result(5)
    assert [o[0] for o in order] == ["interactive", "interactive done", "long step"] and order[2][1] >= released


def test_send_comes_back_after_every_reply_even_one_the_queue_refused(launched_app):
    """Each reply event is followed by reply_done on success and on failure (Gradio 6 runs no .then
    after a failed event: a job refused for a full queue would leave Send greyed out)."""
    fns = list(launched_app.fns.values())
    replies = {fn._id for fn in fns if fn.name == "respond"}
    followers = [fn for fn in fns if fn.name == "reply_done" and fn.trigger_after in replies]
    assert len(replies) == 5 and len(followers) == 10
    assert sum(fn.trigger_only_on_failure for fn in followers) == 5


def test_a_running_long_job_runs_waiting_interactive_work_between_its_steps(launched_app):
    steps, ran_inside = [], []

    def long_job():
        for step in range(30):
            steps.append(step)
            compute.yield_to_interactive()
            time.sleep(0.02)

    def interactive():
        ran_inside.append((len(steps), threading.current_thread().name))
        return "answer"

    job = compute.submit(long_job)
    while len(steps) < 3:
        time.sleep(0.005)
    assert compute.submit(interactive, lane=compute.INTERACTIVE).result(5) == "answer"
    assert 3 <= ran_inside[0][0] < 30 and ran_inside[0][1].startswith("model-work")  # mid-job, same thread
    job.result(5)


def test_a_typed_number_a_slider_cannot_take_is_set_to_the_nearest_with_a_warning():
    temperature = gr.Slider(0, 2, elem_id="chat-temperature", render=False)
    with pytest.warns(UserWarning, match="temperature: 5 is above the maximum, 2; set to 2."):
        assert chat_ui.fit_slider(gr.EventData(temperature, 5)) == [2, gr.skip(), gr.skip(), gr.skip(), gr.skip()]
    top_k = gr.Slider(0, 200, elem_id="chat-top_k", render=False)
    with pytest.warns(UserWarning, match="top_k: 2.5 is not a whole number; set to 3."):
        assert chat_ui.fit_slider(gr.EventData(top_k, 2.5))[2] == 3
    assert chat_ui.fit_slider(gr.EventData(temperature, 0.33)) == [gr.skip()] * 5  # any number in range stands
