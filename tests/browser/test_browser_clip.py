"""The contrastive-learning panel in Chromium: a batch's similarity matrix with its diagonal, and
"which image matches your caption" over held-out scenes."""

import pytest
from playwright.sync_api import expect

from tests.helpers import ARTIFACTS, dismiss_toasts, open_panel

pytestmark = [pytest.mark.browser, pytest.mark.full]


def test_the_clip_panel_shows_the_batch_matrix_and_finds_a_captions_image(chromium, live_app):
    page = open_panel(
        chromium, live_app, "Text to image", "Contrastive learning: how the text encoder learns (CLIP)", height=1400
    )
    page.locator("#clip-batch-button").click()
    expect(page.locator("#clip-matrix .clip-diagonal")).to_have_count(8, timeout=60_000)
    expect(page.locator("#clip-matrix .clip-caption")).to_have_count(8)
    expect(page.locator("#clip-matrix")).to_contain_text("captions give their own image the highest probability")
    expect(page.locator("#clip-matrix th img")).to_have_count(8)
    page.locator("#clip-caption textarea").fill("a large green circle at the top")
    page.locator("#clip-find").click()
    expect(page.locator("#clip-note")).to_contain_text("CLIP's pick among 32 scenes", timeout=60_000)
    expect(page.locator("#clip-ranking img")).to_have_count(6)
    page.locator("#clip-caption textarea").fill("   ")  # refused with a message; the panel keeps working
    page.locator("#clip-find").click()
    expect(page.get_by_text("caption").filter(visible=True).first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    dismiss_toasts(page)
    page.locator("#clip-panel").first.screenshot(path=str(ARTIFACTS / "clip-panel.png"))
    page.close()
