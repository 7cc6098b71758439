"""The chat tab never contradicts itself, in Chromium at desktop (1440 px) and phone (390 px) widths:
a message sent mid-reply stays in the box, a failed reply leaves a note and the next message is
answered alone, Undo clears the panels, Send and Stop show what is running, the modes change what
the model sees, and on a phone the settings are one screen of scrolling away."""

import pytest
from playwright.sync_api import expect

from tests.helpers import ARTIFACTS, dismiss_toasts

pytestmark = [pytest.mark.browser, pytest.mark.full]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
LONG = "Write a very long story about a dragon who learns to bake bread."


@pytest.fixture(scope="module")
def browser(chromium):
    return chromium


@pytest.fixture
def page(browser, live_app):
    """A fresh visitor (its own session) at desktop width."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(live_app)
    expect(page.locator("#chat-input textarea")).to_be_visible(timeout=60_000)
    yield page
    context.close()


def box(page):
    return page.locator("#chat-input textarea")


def send(page, text: str) -> None:
    box(page).fill(text)
    box(page).press("Enter")


def set_number(page, label: str, value: str) -> None:
    field = page.get_by_role("spinbutton", name=label).first
    field.fill(value)
    field.press("Enter")


def no_error_badges(page) -> None:
    expect(page.locator('[data-testid="status-tracker"] .error')).to_have_count(0)


def wait_for_reply(page, timeout: int = 120_000) -> None:
    """Send is itself again: the reply ended. (Either check alone can pass in the moment between the
    click and the reply's start, so each waits the whole timeout.)"""
    expect(page.locator("#chat-send")).to_have_text("Send", timeout=timeout)
    expect(page.locator("#chat-send")).to_be_enabled(timeout=timeout)


def test_send_and_stop_show_what_is_running_and_a_message_sent_mid_reply_stays(page):
    expect(page.locator("#chat-stop")).to_be_disabled()  # nothing runs yet
    expect(page.locator("#chat-gauge")).to_contain_text("nothing yet")
    set_number(page, "max_new_tokens", "200")
    send(page, LONG)
    expect(page.locator("#chat-send")).to_have_text("Replying…", timeout=10_000)
    expect(page.locator("#chat-stop")).to_be_enabled()
    expect(page.locator('[data-testid="bot"]').last).to_contain_text(" ", timeout=60_000)  # streaming
    users = page.locator('[data-testid="user"]')
    send(page, "And what did the dragon bake first?")
    expect(page.get_by_text("Your message stays in the box").first).to_be_visible(timeout=10_000)
    expect(box(page)).to_have_value("And what did the dragon bake first?")
    expect(users).to_have_count(1)
    no_error_badges(page)  # the refusal is a toast: no red badge over the reply still streaming
    expect(page.locator('[data-testid="bot"]').last).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "chat-send-while-streaming-1440.png"), full_page=True)
    page.locator("#chat-stop").click()
    expect(page.locator("#chat-stats")).to_contain_text("ended: stopped", timeout=30_000)
    wait_for_reply(page)
    expect(page.locator("#chat-stop")).to_be_disabled()
    dismiss_toasts(page)
    box(page).press("Enter")  # the kept message goes now
    expect(users).to_have_count(2, timeout=10_000)
    expect(users.last).to_contain_text("what did the dragon bake first")
    page.locator("#chat-stop").click()
    wait_for_reply(page)
    no_error_badges(page)


def test_a_failed_reply_leaves_a_note_and_the_next_message_is_answered_alone(page):
    set_number(page, "seed", "-7")
    send(page, "What is the capital of Italy?")
    expect(page.locator("#chatbot")).to_contain_text("No reply", timeout=60_000)
    expect(page.locator("#chat-stats")).to_contain_text("No reply:")
    expect(page.locator("#chat-stats")).to_contain_text("seed")
    wait_for_reply(page)
    no_error_badges(page)  # the reason is in the conversation and the stats, no red badge over them
    page.screenshot(path=str(ARTIFACTS / "chat-failed-reply-1440.png"), full_page=True)
    set_number(page, "seed", "0")
    set_number(page, "temperature", "0")
    send(page, "What is the capital of France?")
    expect(page.locator("#chat-stats")).to_contain_text("ended:", timeout=120_000)
    page.get_by_text("What the model sees").click()
    prompt = page.locator("#prompt-view")
    expect(prompt).to_contain_text("What is the capital of France?")
    expect(prompt).not_to_contain_text("Italy")  # the unanswered turn is not fed to the model
    expect(page.locator('[data-testid="user"]')).to_have_count(2)  # but the page keeps it
    expect(page.locator("#chat-stats")).to_contain_text("from Send to first token")


def test_undo_clears_the_panels_of_the_undone_reply(page):
    set_number(page, "temperature", "0")
    set_number(page, "max_new_tokens", "16")
    send(page, "What is the capital of France?")
    expect(page.locator("#chat-stats")).to_contain_text("tokens/s", timeout=120_000)
    expect(page.locator("#token-view .tok").first).to_be_visible()
    page.locator("#chat-export").click()
    expect(page.locator("#chat-export-files")).to_be_visible(timeout=10_000)
    wait_for_reply(page)
    page.locator("#chat-undo").click()
    expect(page.locator('[data-testid="user"]')).to_have_count(0, timeout=10_000)
    expect(box(page)).to_have_value("What is the capital of France?")
    expect(page.locator("#chat-stats")).to_have_text("Reply statistics appear here.")
    expect(page.locator("#token-view .tok")).to_have_count(0)
    expect(page.locator("#chat-export-files")).to_be_hidden()
    expect(page.locator("#chat-gauge")).to_contain_text("nothing yet")


def test_retrieval_mode_shows_the_passages_and_what_the_model_sees(page):
    page.get_by_label("Retrieval: passages from the app's explanations").check()
    expect(page.locator("#chat-passages")).to_contain_text("applies from the next reply")
    set_number(page, "temperature", "0")
    set_number(page, "max_new_tokens", "48")
    send(page, "What is a GAN?")
    expect(page.locator("#chat-passages")).to_contain_text("GAN: generator against discriminator", timeout=120_000)
    expect(page.locator("#chat-stats")).to_contain_text("ended:", timeout=120_000)
    page.get_by_text("What the model sees").click()
    expect(page.locator("#prompt-view")).to_contain_text("Passage 1: [GAN / VAE")
    page.screenshot(path=str(ARTIFACTS / "chat-retrieval-1440.png"), full_page=True)


def test_on_a_phone_the_settings_are_one_screen_of_scrolling_away(browser, live_app):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(live_app)
    expect(page.locator("#chat-input textarea")).to_be_visible(timeout=60_000)
    send_box, send_button = page.locator("#chat-input").bounding_box(), page.locator("#chat-send").bounding_box()
    assert abs(send_box["y"] - send_button["y"]) < 40  # the box and Send share a row
    for settings in ("#chat-mode", "#chat-sampling"):
        top = page.locator(settings).bounding_box()["y"]
        assert top < 2 * PHONE["height"], f"{settings} starts {top:.0f} px down"
    for control in ("#chat-regenerate", "#chat-undo", "#chat-clear", "#chat-export", "#chat-to-attention"):
        assert page.locator(control).bounding_box()["y"] < PHONE["height"]  # one row of actions, on screen
    picker = page.get_by_label("Model").first
    assert picker.evaluate("el => el.scrollWidth <= el.clientWidth + 1")  # the picked model's name is not cut
    page.screenshot(path=str(ARTIFACTS / "chat-phone-390.png"), full_page=True)
    context.close()


def test_a_typed_number_out_of_range_is_set_to_the_nearest_with_a_warning(page):
    field = page.get_by_role("spinbutton", name="temperature").first
    field.fill("5")
    field.blur()  # Gradio's slider box sends a typed number when it is left
    expect(page.get_by_text("temperature: 5 is above the maximum, 2; set to 2.").first).to_be_visible(timeout=10_000)
    expect(page.get_by_role("spinbutton", name="temperature").first).to_have_value("2")
    no_error_badges(page)


def test_a_chat_on_the_llama_cpp_engine_fills_the_token_view(page):
    """The bundled model on llama.cpp's server, picked in the page: the reply streams, the stats name
    the engine, and the token view is filled from the server's log-probabilities."""
    import re

    from shared import llama_server

    if llama_server.find_binary() is None:
        pytest.fail("llama-server is not built: run `make llama-server` (make test does)")
    page.locator("#chat-model input").click()
    page.get_by_role("option", name=re.compile(re.escape("smollm2-135m-instruct-llama.cpp"))).click()
    send(page, "What is the capital of Japan?")
    wait_for_reply(page)  # the first message also starts the llama-server: seconds on a busy machine
    expect(page.locator("#chatbot")).to_contain_text("Tokyo", timeout=120_000)
    expect(page.locator("#chat-stats")).to_contain_text("engine: llama.cpp", timeout=60_000)
    expect(page.locator("#token-view")).to_contain_text("before repetition penalty")
    assert page.locator("#token-view .tok").count() > 3
    page.locator("#token-view .tok").first.hover()
    page.get_by_text("What the model sees").click()
    expect(page.locator("#prompt-view")).to_contain_text("<|im_start|>assistant")
    no_error_badges(page)
    page.screenshot(path=str(ARTIFACTS / "chat-llama-cpp.png"), full_page=True)
