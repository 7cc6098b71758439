"""The Attention tab in a real browser (Debian's Chromium, Playwright, `python app.py` on the bundled
SmolLM2): what the screen shows follows what the user typed, hovered and picked (issue 13)."""

import re

import pytest
from playwright.sync_api import expect

from tests.helpers import ARTIFACTS, dismiss_toasts, open_tab

pytestmark = [pytest.mark.browser, pytest.mark.full]

TEXT = "The cat sat on the mat because it was tired."  # 11 SmolLM2 tokens
BADGES = "[data-testid=status-tracker] .error:visible"  # a red "Error" badge over a component


@pytest.fixture(scope="module")
def page(chromium, live_app):
    page = chromium.new_page(viewport={"width": 1440, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_app)
    page.get_by_role("tab", name="Attention").click()
    page.locator("#attention-text textarea").fill(TEXT)
    page.locator("#attention-run").click()
    expect(page.locator("#attention-summary")).to_contain_text("· 11 tokens ·", timeout=120_000)
    yield page
    assert errors == [], errors  # the tab's script ran without a JavaScript error
    page.close()


def heading(page):
    return page.locator("#attention-heatmap .hm-title")


def mark_heatmap(page) -> None:
    """Tag the drawn heatmap: a re-render replaces it, and the tag goes with it."""
    page.locator("#attention-heatmap svg").evaluate("svg => svg.setAttribute('data-seen', '1')")


def still_marked(page) -> bool:
    return page.locator("#attention-heatmap svg[data-seen]").count() == 1


def settled(page) -> None:
    expect(page.locator(".progress-text, .eta-bar")).to_have_count(0, timeout=30_000)


def test_typing_in_the_number_boxes_moves_the_view(page):
    expect(heading(page)).to_contain_text("Layer 0, head 0", timeout=30_000)
    layer = page.locator("#attention-layer input[type=number]")
    head = page.locator("#attention-head input[type=number]")
    # Typing alone (no Enter, no blur): a pause on the value sends it, as releasing a dragged slider does.
    layer.fill("20")
    expect(heading(page)).to_contain_text("Layer 20, head 0", timeout=20_000)
    settled(page)
    mark_heatmap(page)
    layer.press("Enter")  # the same value again: nothing is drawn twice
    page.wait_for_timeout(2000)
    settled(page)
    assert still_marked(page) and layer.input_value() == "20"
    # Enter straight after typing sends it at once.
    head.fill("3")
    head.press("Enter")
    expect(heading(page)).to_contain_text("Layer 20, head 3", timeout=20_000)
    # Blur sends it too; a value past the end is put on the slider's scale first, and the view follows it.
    layer.fill("99")
    head.click()
    expect(layer).to_have_value("29")
    expect(heading(page)).to_contain_text("Layer 29, head 3", timeout=20_000)
    settled(page)
    expect(page.locator(BADGES)).to_have_count(0)
    # The other views follow the boxes too.
    open_tab(page, "Head view")
    expect(page.locator("#attention-head-view")).to_contain_text("Layer 29:")
    open_tab(page, "Heatmap")


def test_hovering_a_heatmap_cell_reads_its_value(page):
    cell = page.locator("#attention-heatmap g.hm-row[transform='translate(0,5)'] rect[x='2']")
    title = cell.locator("title").text_content()
    assert re.fullmatch(r'5 " mat" → 2 " sat": \d\.\d{4}', title), title
    box = cell.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    expect(page.locator("#attention-heatmap .hm-readout")).to_have_text(title)
    # what the pointer is over is that cell itself (whose <title> is the browser's own tooltip)
    assert (
        page.evaluate("([x, y]) => document.elementFromPoint(x, y).querySelector('title').textContent", [x, y]) == title
    )
    ARTIFACTS.mkdir(exist_ok=True)
    dismiss_toasts(page)
    page.screenshot(path=str(ARTIFACTS / "attention-heatmap-1440.png"), full_page=True)


def test_the_next_token_label_follows_the_selected_token(page):
    open_tab(page, "Next token")
    nxt = page.locator("#attention-next .next-heading")
    expect(nxt).to_contain_text("After token 10 '.' (the end of the text) the model predicts:")
    before = page.locator("#attention-next table").inner_text()
    page.locator("#attention-token input").click()
    page.get_by_role("option", name=re.compile(r"^1: +cat$")).click()
    expect(nxt).to_have_text("After token 1 ' cat' the model predicts:", timeout=20_000)
    assert page.locator("#attention-next table").inner_text() != before  # other predictions, after "cat"
    expect(page.locator("#attention-next tr")).to_have_count(11)
    # the sampling sliders' number boxes follow typing too: temperature 0 is greedy
    temperature = page.locator(".attention-number").get_by_label("number input for temperature")
    temperature.fill("0")
    first = page.locator("#attention-next tr").nth(1).locator("td").nth(2)
    expect(first).to_have_text("100.0%", timeout=20_000)
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "attention-next-token-1440.png"), full_page=True)
    temperature.fill("1")
    expect(first).not_to_have_text("100.0%", timeout=20_000)


def test_rollout_explains_the_sink_and_leaves_it_out_on_request(page):
    open_tab(page, "Aggregates")
    rollout = page.locator("#attention-rollout")
    expect(rollout.locator(".sink-caption")).to_contain_text("attention sink")
    expect(rollout.locator(".sink-caption")).to_contain_text('first token, 0 "The"')
    expect(rollout.locator(".hm-title")).not_to_contain_text("left out")
    page.locator("#attention-sink input").check()
    expect(rollout.locator(".hm-title")).to_contain_text("first token (grey) left out", timeout=20_000)
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "attention-rollout-1440.png"), full_page=True)


def test_phone_width(page):
    page.set_viewport_size({"width": 390, "height": 844})
    open_tab(page, "Heatmap")
    svg = page.locator("#attention-heatmap svg")
    expect(svg).to_be_visible()
    assert svg.bounding_box()["width"] <= 390  # the map shrinks to the screen
    page.locator("#attention-head input[type=number]").fill("5")
    expect(heading(page)).to_contain_text("head 5", timeout=20_000)
    settled(page)
    dismiss_toasts(page)
    page.screenshot(path=str(ARTIFACTS / "attention-heatmap-390.png"), full_page=True)
    open_tab(page, "Aggregates")
    expect(page.locator("#attention-rollout .sink-caption")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "attention-rollout-390.png"), full_page=True)
    open_tab(page, "Next token")
    expect(page.locator("#attention-next .next-heading")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "attention-next-token-390.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1400})


def test_a_128_token_heatmap_hovers_and_follows_a_typed_layer_quickly(page):
    import time

    open_tab(page, "Heatmap")
    page.locator("#attention-text textarea").fill(
        "The quick brown fox jumps over the lazy dog. " * 12 + "The cat sat on it"
    )
    page.locator("#attention-run").click()
    expect(page.locator("#attention-summary")).to_contain_text("· 125 tokens ·", timeout=120_000)
    expect(page.locator("#attention-heatmap g.hm-row")).to_have_count(125, timeout=30_000)
    settled(page)
    start = time.monotonic()
    page.locator("#attention-layer input[type=number]").fill("7")
    page.locator("#attention-layer input[type=number]").press("Enter")
    expect(heading(page)).to_contain_text("Layer 7,", timeout=30_000)
    expect(page.locator("#attention-heatmap g.hm-row")).to_have_count(125)
    took = time.monotonic() - start
    cell = page.locator("#attention-heatmap g.hm-row[transform='translate(0,124)'] rect[x='100']")
    box = cell.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator("#attention-heatmap .hm-readout")).to_have_text(cell.locator("title").text_content())
    print(f"128-token view: typed layer drawn in {took:.1f} s")
    assert took < 10, f"a typed layer took {took:.1f} s to draw for 125 tokens"


def test_no_error_badge_is_left_after_a_model_change_or_a_good_request(page):
    dismiss_toasts(page)
    text = page.locator("#attention-text textarea")
    text.fill("   ")
    page.locator("#attention-run").click()
    expect(page.get_by_text("Type some text").first).to_be_visible(timeout=20_000)
    expect(page.locator(BADGES).first).to_be_visible()
    # picking another model clears them, and says what is shown and what Show attention will run
    page.get_by_label("Model").filter(visible=True).first.click()
    page.get_by_role("option", name=re.compile("gpt2")).first.click()
    expect(page.locator("#attention-summary")).to_contain_text(
        "Picked gpt2: it can't load now, offline", timeout=20_000
    )
    expect(page.locator(BADGES)).to_have_count(0)
    # a failure, then a good request of another kind (a typed layer): no badge left either
    page.locator("#attention-run").click()
    expect(page.locator(BADGES).first).to_be_visible(timeout=20_000)
    open_tab(page, "Heatmap")
    page.locator("#attention-layer input[type=number]").fill("4")
    expect(heading(page)).to_contain_text("Layer 4,", timeout=20_000)
    expect(page.locator(BADGES)).to_have_count(0)
    dismiss_toasts(page)
