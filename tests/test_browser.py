"""A person in a real browser: Debian's Chromium driven by Playwright against `python app.py`."""

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def page(live_app):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1500})
        page.goto(live_app)
        yield page
        browser.close()


def send(page, text: str) -> None:
    page.locator("#chat-input textarea").fill(text)
    page.locator("#chat-send").click()


def test_chat_streams_a_reply_with_stats_and_token_view(page):
    page.get_by_label("temperature").first.fill("0")
    page.get_by_label("temperature").first.press("Enter")
    send(page, "What is the capital of France?")
    bot = page.locator('[data-testid="bot"]').last
    expect(bot).to_contain_text("Paris", timeout=120_000)
    stats = page.locator("#chat-stats")
    expect(stats).to_contain_text("tokens/s", timeout=60_000)
    expect(stats).to_contain_text("ended: end of turn")
    expect(page.locator("#token-view .tok").first).to_be_visible()
    page.get_by_text("What the model sees").click()
    expect(page.locator("#prompt-view")).to_contain_text("<|im_start|>assistant")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-chat.png"), full_page=True)


def test_empty_message_shows_an_error_and_keeps_the_chat(page):
    before = page.locator('[data-testid="user"]').count()
    send(page, "   ")
    expect(page.get_by_text("Type a message first").first).to_be_visible(timeout=10_000)
    assert page.locator('[data-testid="user"]').count() == before


def test_stop_ends_the_reply(page):
    page.get_by_label("temperature").first.fill("0.7")
    page.get_by_label("temperature").first.press("Enter")
    send(page, "Write a very long story about a dragon who learns to bake bread.")
    bot = page.locator('[data-testid="bot"]')
    expect(bot.last).not_to_contain_text("Paris", timeout=60_000)
    page.wait_for_timeout(1500)
    page.locator("#chat-stop").click()
    expect(page.locator("#chat-stats")).to_contain_text("ended: stopped", timeout=20_000)


def test_undo_puts_the_message_back_and_export_offers_files(page):
    users = page.locator('[data-testid="user"]')
    count = users.count()
    page.locator("#chat-undo").click()
    expect(users).to_have_count(count - 1, timeout=10_000)
    expect(page.locator("#chat-input textarea")).to_have_value(
        "Write a very long story about a dragon who learns to bake bread."
    )
    page.locator("#chat-export").click()
    files = page.locator("#chat-export-files")
    expect(files.get_by_role("cell", name="conversation.json")).to_be_visible(timeout=10_000)
    expect(files.get_by_role("cell", name="conversation.md")).to_be_visible()
    link = files.get_by_role("link").first.get_attribute("href")
    exported = page.request.get(link).json()
    assert exported["model"] == "smollm2-135m-instruct"
    assert exported["messages"][0] == {"role": "user", "content": "What is the capital of France?"}
