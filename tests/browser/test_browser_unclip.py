"""DALL-E 2's three stages in Chromium, on the bundled shapes-unclip: the text embedding and the prior's
steps (the strip), the nearest training images per step, and the three swaps; a bad input gets a
message and the panel keeps working."""

import pytest
from playwright.sync_api import expect

from tests.helpers import ARTIFACTS, dismiss_toasts, open_panel

pytestmark = [pytest.mark.browser, pytest.mark.full]


def test_the_three_stages_and_the_swaps(chromium, live_app):
    page = open_panel(
        chromium, live_app, "Text to image", "DALL-E 2's three stages: text embedding → prior → decoder", height=1600
    )
    page.locator("#unclip-run").click()
    summary = page.locator("#unclip-summary")
    expect(summary).to_contain_text("1 · text embedding", timeout=120_000)
    expect(summary).to_contain_text("2 · the prior took 25 steps")
    expect(summary).to_contain_text("3 · the decoder")
    expect(page.locator("#unclip-strip img")).to_have_count(1)
    expect(page.locator("#unclip-steps-gallery img")).to_have_count(6)
    expect(page.locator("#unclip-pair img")).to_have_count(2)
    expect(page.locator("#unclip-mix img")).to_have_count(5)
    expect(page.locator("#unclip-seeds img")).to_have_count(4)
    ARTIFACTS.mkdir(exist_ok=True)
    dismiss_toasts(page)
    page.locator("#unclip-panel").first.screenshot(path=str(ARTIFACTS / "unclip-panel.png"))
    page.locator("#unclip-prompt textarea").fill("  ")  # refused with a message; the panel keeps working
    page.locator("#unclip-run").click()
    expect(page.get_by_text("prompt").filter(visible=True).first).to_be_visible()
    page.close()
