"""A person in a real browser: Debian's Chromium driven by Playwright against `python app.py`."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.helpers import ARTIFACTS, dismiss_toasts

pytestmark = [pytest.mark.browser, pytest.mark.full]


@pytest.fixture(scope="module")
def page(chromium, live_app):
    page = chromium.new_page(viewport={"width": 1300, "height": 1500})
    page.goto(live_app)
    yield page
    page.close()


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


def test_chat_bridge_opens_attention_on_the_conversation(page):
    page.get_by_role("tab", name="Chat").click()
    page.locator("#chat-to-attention").click()
    expect(page.locator("#attention-summary")).to_contain_text("30 layers × 9 heads", timeout=60_000)
    expect(page.locator("#attention-text textarea")).to_have_value(
        re.compile(r"<\|im_start\|>user\nWhat is the capital of France\?<\|im_end\|>")
    )


def test_attention_views_render_and_the_model_view_is_clickable(page):
    text = page.locator("#attention-text textarea")
    text.fill("The cat sat on the mat because it was tired.")
    page.locator("#attention-run").click()
    expect(page.locator("#attention-summary")).to_contain_text("· 11 tokens ·", timeout=60_000)
    expect(page.locator("#attention-heatmap svg")).to_be_visible(timeout=30_000)
    expect(page.locator(".progress-text, .eta-bar")).to_have_count(0, timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    dismiss_toasts(page)
    page.screenshot(path=str(ARTIFACTS / "browser-attention-heatmap.png"), full_page=True)
    page.get_by_role("tab", name="Head view").click()
    expect(page.locator("#attention-head-view")).to_contain_text("h8")
    page.get_by_role("tab", name="Model view").click()
    grid = page.locator("#attention-model-view img")
    expect(grid).to_be_visible()
    box = grid.bounding_box()
    natural = grid.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    scale = box["width"] / natural[0]
    # Click the thumbnail of layer 2, head 3 (layers across: 30 px of labels on the left, 20 on top, 52 px cells).
    page.mouse.click(box["x"] + (30 + 2 * 52 + 20) * scale, box["y"] + (20 + 3 * 52 + 20) * scale)
    expect(page.locator("#attention-layer input[type=number]")).to_have_value("2", timeout=20_000)
    expect(page.locator("#attention-head input[type=number]")).to_have_value("3")
    page.get_by_role("tab", name="Key/value retrieval").click()
    expect(page.locator("#attention-kv")).to_contain_text("✓ matches", timeout=20_000)
    page.get_by_role("tab", name="Next token").click()
    expect(page.locator("#attention-next tr")).to_have_count(11)
    page.get_by_role("tab", name="Text", exact=True).click()
    expect(page.locator("#attention-text-view .att-tok").first).to_be_visible()
    page.get_by_role("tab", name="Model view").click()
    expect(page.locator(".progress-text, .eta-bar")).to_have_count(0, timeout=30_000)
    dismiss_toasts(page)
    page.screenshot(path=str(ARTIFACTS / "browser-attention-model-view.png"), full_page=True)


def test_attention_empty_text_shows_an_error(page):
    page.locator("#attention-text textarea").fill("  ")
    page.locator("#attention-run").click()
    expect(page.get_by_text("Type some text").first).to_be_visible(timeout=10_000)


def test_latent_tab_samples_interpolates_traverses_and_encodes_a_drawing(page, tmp_path):
    from PIL import Image, ImageDraw

    dismiss_toasts(page)
    page.get_by_role("tab", name="Latent sampling (GAN / VAE)").click()
    page.locator("#latent-sample").click()
    expect(page.locator("#latent-samples img")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Interpolation").click()
    page.locator("#latent-interpolate").click()
    expect(page.locator("#latent-lerp img")).to_be_visible(timeout=30_000)
    # …and between two uploaded images, on the digits VAE: a "1" and an "0".
    model = page.get_by_label("Model").filter(visible=True).first
    model.click()
    page.get_by_role("option", name=re.compile("digits-vae")).click()
    for name, draw in (
        ("one", lambda d: d.line((96, 30, 96, 160), fill=0, width=16)),
        ("zero", lambda d: d.ellipse((50, 30, 140, 160), outline=0, width=16)),
    ):
        picture = Image.new("L", (192, 192), 255)
        draw(ImageDraw.Draw(picture))
        picture.save(tmp_path / f"{name}.png")
    before = page.locator("#latent-lerp img").get_attribute("src")
    page.get_by_text("…or between two images").click()
    page.locator("#latent-image-a input[type=file]").set_input_files(str(tmp_path / "one.png"))
    page.locator("#latent-image-b input[type=file]").set_input_files(str(tmp_path / "zero.png"))
    page.locator("#latent-interpolate-images").click()
    page.wait_for_function(
        "src => document.querySelector('#latent-lerp img')?.getAttribute('src') !== src", arg=before, timeout=30_000
    )
    page.get_by_role("tab", name="Traversal").click()
    page.locator("#latent-traverse").click()
    expect(page.locator("#latent-traversal img")).to_be_visible(timeout=30_000)
    # VAE anatomy: pick the VAE, draw a "1", encode it.
    page.get_by_role("tab", name="VAE anatomy").click()
    model = page.get_by_label("Model").filter(visible=True).first
    model.click()
    page.get_by_role("option", name=re.compile("digits-vae")).click()
    pass  # the brush is picked by itself now
    box = page.locator("#latent-sketch canvas").last.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y - 50)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x, y - 50 + 10 * i)
    page.mouse.up()
    page.locator("#latent-encode").click()
    expect(page.locator("#latent-reconstruction img")).to_be_visible(timeout=30_000)
    # Picking the VAE put its most used dimensions on the traversal, with the usage table.
    from demos.latent import sampling as ls
    from shared import runtime
    from shared.settings import Settings

    runtime.configure(Settings(preload=False))  # this process's own, to compute the expected dimensions
    page.get_by_role("tab", name="Traversal").click()
    expect(page.locator("#latent-dims textarea")).to_have_value(ls.usage("digits-vae")[0], timeout=30_000)
    expect(page.locator("#latent-usage")).to_contain_text("KL (nats)")
    # The shapes VAE: its table names the factor each dimension follows.
    model.click()
    page.get_by_role("option", name=re.compile("shapes-vae")).click()
    expect(page.locator("#latent-usage")).to_contain_text("follows", timeout=30_000)
    expect(page.locator("#latent-dims textarea")).to_have_value(ls.usage("shapes-vae")[0])
    # the digits VAE's traversal went with it (a stale view is emptied), then Traverse draws the shapes VAE's
    expect(page.locator("#latent-traversal img")).to_have_count(0, timeout=30_000)
    page.locator("#latent-traverse").click()
    expect(page.locator("#latent-traversal img")).to_be_visible(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "browser-latent-traversal.png"), full_page=True)
    model.click()
    page.get_by_role("option", name=re.compile("digits-vae")).click()
    page.get_by_role("tab", name="VAE anatomy").click()
    expect(page.locator(".toast-body")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "browser-latent.png"), full_page=True)


def test_text_to_image_generates_live_and_the_debugger_scrubs_the_steps(page):
    dismiss_toasts(page)
    page.get_by_role("tab", name="Text to image").click()
    page.locator("#t2i-prompt textarea").fill("a large blue square on the left")
    page.locator("#t2i-generate").click()
    expect(page.locator("#t2i-status")).to_contain_text("Done", timeout=120_000)
    expect(page.locator("#t2i-gallery img").first).to_be_visible()
    assert page.locator("#t2i-gallery img").count() >= 4
    expect(page.locator("#t2i-preview img")).to_be_visible()
    page.get_by_text("Step debugger: scrub through every step").click()
    expect(page.locator("#t2i-x0 img")).to_be_visible(timeout=30_000)
    expect(page.locator("#t2i-step-text")).to_contain_text("Step 10 of 20")
    page.locator("#t2i-branch").click()
    expect(page.locator("#t2i-branched img")).to_have_count(2, timeout=30_000)
    page.get_by_text("Noise schedule: ᾱ_t per step for each scheduler").click()
    page.get_by_text("Pipeline anatomy").click()
    expect(page.locator("#t2i-anatomy")).to_contain_text("UNet2DConditionModel")
    expect(page.locator(".toast-body")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "browser-text-to-image.png"), full_page=True)


def test_text_to_image_restores_settings_from_a_png_and_refuses_bad_input(page, tmp_path):
    from PIL import Image

    from demos.text_to_image import recipe as t2i

    recipe = t2i.Recipe("shapes-t2i", None, "a small green circle at the top", "", 1234, 7, 2.5, "Euler", 32, 32, 2)
    png = tmp_path / "recipe.png"
    png.write_bytes(t2i.png_bytes(Image.new("RGB", (32, 32)), recipe, 0))
    page.locator("#t2i-restore input[type=file]").set_input_files(str(png))
    expect(page.locator("#t2i-status")).to_contain_text("Settings restored", timeout=15_000)
    expect(page.locator("#t2i-prompt textarea")).to_have_value("a small green circle at the top")
    expect(page.locator("#t2i-seed input")).to_have_value("1234")
    expect(page.locator("#t2i-steps input[type=number]")).to_have_value("7")
    bomb = tmp_path / "not-a-png.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    page.locator("#t2i-restore input[type=file]").set_input_files(str(bomb))
    expect(page.get_by_text("not a readable PNG").first).to_be_visible(timeout=15_000)
    dismiss_toasts(page)


def test_closing_a_tab_stops_its_training_run(page, live_app):
    """Two tabs fill the lab (2 runs at most); closing one must free its slot for a third tab."""

    def lab_tab():
        tab = page.context.browser.new_page(viewport={"width": 1300, "height": 1500})
        tab.goto(live_app)
        tab.get_by_role("tab", name="Latent sampling (GAN / VAE)").click()
        tab.get_by_role("tab", name="Training lab").click()
        return tab

    def started(tab, timeout: int) -> bool:
        try:
            expect(tab.locator("#lab-status")).to_contain_text("step", timeout=timeout)
            return True
        except AssertionError:
            return False

    first, second = lab_tab(), lab_tab()
    for tab in (first, second):
        tab.locator("#lab-start").click()
        assert started(tab, 30_000)
    third = lab_tab()
    third.locator("#lab-start").click()
    expect(third.get_by_text("training runs are going already").first).to_be_visible(timeout=15_000)
    first.close()  # the browser tab goes away: the app's unload handler stops its run
    deadline = time.time() + 30
    while time.time() < deadline:
        for close in third.locator(".toast-close").all():
            close.click()
        third.locator("#lab-start").click()
        if started(third, 3_000):
            break
    assert started(third, 1_000)
    for tab in (second, third):
        tab.locator("#lab-stop").click()
        tab.close()
