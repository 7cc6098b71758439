"""Share links in a real browser: person A makes something and shares it; person B, in a fresh
browser context (no cookies, no storage), opens the link and sees the same thing; "Open in the
tab" restores the settings, and making it again gives the same pixels."""

import io
import re

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image
from playwright.sync_api import expect

from tests.helpers import ARTIFACTS, dismiss_toasts, open_tab

pytestmark = [pytest.mark.browser, pytest.mark.full]

RUN_S = 120_000


def new_person(chromium, url: str):
    page = chromium.new_page(viewport={"width": 1300, "height": 1400})  # a context of its own
    page.goto(url)
    expect(page.get_by_role("tab").first).to_be_visible(timeout=30_000)
    return page


def share(page, kind: str) -> str:
    page.locator(f"#{kind}-share").click()
    link = page.locator(f"#{kind}-share-link textarea")
    expect(link).to_have_value(re.compile(r"\?s=[A-Za-z0-9_-]{22}$"), timeout=30_000)
    expect(page.locator(f"#{kind}-share-status")).to_contain_text("Link made")
    return link.input_value()


def pixels(page, selector: str) -> list[np.ndarray]:
    """What each <img> under ``selector`` shows, decoded from the bytes the server sent."""
    out = []
    for img in page.locator(selector).all():
        body = page.request.get(img.get_attribute("src")).body()
        out.append(np.asarray(Image.open(io.BytesIO(body)).convert("RGBA")))
    return out


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    dismiss_toasts(page)
    page.screenshot(path=str(ARTIFACTS / f"share-{name}.png"), full_page=True)


def opened(page, kind: str) -> None:
    expect(page.locator(f"#shared-{kind}-about")).to_contain_text("Shared snapshot (read-only)", timeout=30_000)


def test_a_shared_image_looks_the_same_and_regenerates_identical_pixels(chromium, live_app):
    a = new_person(chromium, live_app)
    open_tab(a, "Text to image")
    a.locator("#t2i-prompt textarea").fill("a large red circle at the top")
    a.locator("#t2i-generate").click()
    expect(a.locator("#t2i-status")).to_contain_text("Done", timeout=RUN_S)
    expect(a.locator("#t2i-gallery img").first).to_be_visible()
    made = pixels(a, "#t2i-gallery img")
    link = share(a, "text-to-image")
    shot(a, "t2i-sharer")

    b = new_person(chromium, link)
    opened(b, "text-to-image")
    expect(b.get_by_role("tab", name="Text to image", selected=True)).to_be_visible()
    expect(b.locator("#shared-text-to-image-about")).to_contain_text("shapes-t2i")
    expect(b.locator("#shared-t2i-gallery img")).to_have_count(len(made))
    seen = pixels(b, "#shared-t2i-gallery img")
    assert len(seen) == len(made) and all(np.array_equal(x, y) for x, y in zip(seen, made, strict=True))
    expect(b.locator("#shared-t2i-recipe")).to_contain_text("a large red circle at the top")
    shot(b, "t2i-viewer")
    # Open in the tab: the recipe in the controls; Generate makes the same pixels again
    b.locator("#shared-text-to-image-open").click()
    expect(b.locator("#t2i-prompt textarea")).to_have_value("a large red circle at the top", timeout=20_000)
    expect(b.locator("#shared-text-to-image-about")).to_be_hidden()
    b.locator("#t2i-generate").click()
    expect(b.locator("#t2i-status")).to_contain_text("Done", timeout=RUN_S)
    expect(b.locator("#t2i-gallery img")).to_have_count(len(made))
    again = pixels(b, "#t2i-gallery img")
    assert all(np.array_equal(x, y) for x, y in zip(again, made, strict=True))
    # a second visitor can't delete A's link; A can, and then the link says so
    b.goto(link)
    opened(b, "text-to-image")
    b.locator("#shared-text-to-image-delete").click()
    expect(b.locator(".toast-body").filter(has_text="Only the person who shared this")).to_be_visible(timeout=20_000)
    b.reload()
    opened(b, "text-to-image")  # still there
    a.locator("#text-to-image-unshare").click()
    expect(a.locator("#text-to-image-share-status")).to_contain_text("Deleted", timeout=20_000)
    b.reload()
    expect(b.locator("#shared-notice")).to_contain_text("deleted by its owner", timeout=30_000)
    a.close()
    b.close()


def test_a_shared_chat_shows_the_same_messages_and_token_view_and_can_be_continued(chromium, live_app):
    a = new_person(chromium, live_app)
    for name, value in (("temperature", "0"), ("max_new_tokens", "12")):
        a.get_by_label(name).first.fill(value)
        a.get_by_label(name).first.press("Enter")
    a.locator("#chat-input textarea").fill("What is the capital of France?")
    a.locator("#chat-send").click()
    expect(a.locator("#chat-stats")).to_contain_text("tokens/s", timeout=RUN_S)
    messages = a.locator('#chatbot [data-testid="bot"], #chatbot [data-testid="user"]').all_inner_texts()
    tokens = a.locator("#token-view .token-view").inner_html()
    link = share(a, "chat")
    shot(a, "chat-sharer")

    b = new_person(chromium, link)
    opened(b, "chat")
    shown = b.locator('#shared-chat-chatbot [data-testid="bot"], #shared-chat-chatbot [data-testid="user"]')
    expect(shown).to_have_count(len(messages))
    assert shown.all_inner_texts() == messages
    assert b.locator("#shared-chat-tokens .token-view").inner_html() == tokens
    expect(b.locator("#shared-chat-about")).to_contain_text("temperature")
    shot(b, "chat-viewer")
    b.locator("#shared-chat-open").click()  # the conversation into the live chat, to continue it
    expect(b.locator('#chatbot [data-testid="bot"]')).to_have_count(1, timeout=20_000)
    assert b.locator('#chatbot [data-testid="bot"]').inner_text() == messages[-1]
    expect(b.get_by_label("temperature").first).to_have_value("0")
    b.locator("#chat-input textarea").fill("And of Italy?")
    b.locator("#chat-send").click()
    expect(b.locator('#chatbot [data-testid="bot"]')).to_have_count(2, timeout=RUN_S)
    expect(b.locator("#chat-stats")).to_contain_text("tokens/s", timeout=RUN_S)
    a.close()
    b.close()


def test_a_shared_latent_grid_is_pixel_equal_and_samples_again_the_same(chromium, live_app):
    a = new_person(chromium, live_app)
    open_tab(a, "Latent sampling (GAN / VAE)")
    a.locator("#latent-sample").click()
    expect(a.locator("#latent-samples img")).to_be_visible(timeout=RUN_S)
    made = pixels(a, "#latent-samples img")
    link = share(a, "latent")

    b = new_person(chromium, link)
    opened(b, "latent")
    expect(b.locator("#shared-latent-gallery img")).to_have_count(1)
    assert np.array_equal(pixels(b, "#shared-latent-gallery img")[0], made[0])
    shot(b, "latent-viewer")
    b.locator("#shared-latent-open").click()
    expect(b.locator("#latent-share-status")).to_contain_text("same images", timeout=20_000)
    b.locator("#latent-sample").click()
    expect(b.locator("#latent-samples img")).to_be_visible(timeout=RUN_S)
    assert np.array_equal(pixels(b, "#latent-samples img")[0], made[0])
    a.close()
    b.close()


def test_a_shared_attention_view_draws_the_same_heatmap(chromium, live_app):
    a = new_person(chromium, live_app)
    open_tab(a, "Attention")
    a.locator("#attention-text textarea").fill("The cat sat on the mat because it was tired.")
    a.locator("#attention-run").click()
    expect(a.locator("#attention-heatmap .hm-title")).to_contain_text("Layer", timeout=RUN_S)
    heat = a.locator("#attention-heatmap svg").first.inner_html()
    title = a.locator("#attention-heatmap .hm-title").inner_text()
    link = share(a, "attention")

    b = new_person(chromium, link)
    opened(b, "attention")
    assert b.locator("#shared-attention-heatmap svg").first.inner_html() == heat
    expect(b.locator("#shared-attention-text")).to_contain_text("tired")
    shot(b, "attention-viewer")
    b.locator("#shared-attention-open").click()  # computed again, live
    expect(b.locator("#attention-heatmap .hm-title")).to_have_text(title, timeout=RUN_S)
    expect(b.locator("#attention-text textarea")).to_have_value("The cat sat on the mat because it was tired.")
    assert b.locator("#attention-heatmap svg").first.inner_html() == heat
    a.close()
    b.close()


@pytest.mark.parametrize(
    "link, says",
    [
        ("?s=AAAAAAAAAAAAAAAAAAAAAA", "No shared snapshot has this link"),
        ("?s=not-an-id", "not valid"),
        ("?s=../../etc/passwd", "not valid"),
        ("?s=" + "A" * 10_000, "not valid"),
    ],
)
def test_a_bad_link_says_so_and_the_app_works(chromium, live_app, link, says):
    page = new_person(chromium, live_app + link)
    expect(page.locator("#shared-notice")).to_contain_text(says, timeout=30_000)
    assert "etc/passwd" not in page.locator("#shared-notice").inner_text()
    expect(page.locator("#chat-input textarea")).to_be_editable()
    page.close()


def test_shared_text_is_shown_as_text_never_run(chromium, live_app):
    """A link made over the API with HTML in every text: the viewer sees the characters, and nothing runs."""
    attack = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    payload = {
        "model": "smollm2-135m-instruct",
        "messages": [{"role": "user", "content": "hi " + attack}, {"role": "assistant", "content": attack}],
        "tokens": [{"token": attack, "prob": 0.5, "top": [[attack, 0.5]]}],
        "stats": attack,
        "system_prompt": attack,
    }
    made = Client(live_app, verbose=False).predict("chat", payload, api_name="/share")
    page = new_person(chromium, made["link"])
    opened(page, "chat")
    expect(page.locator("#shared-chat-chatbot")).to_contain_text("<script>window.__pwned=2</script>")
    expect(page.locator("#shared-chat-tokens")).to_contain_text("<script>")
    expect(page.locator("#shared-chat-stats")).to_contain_text("onerror")
    assert page.locator("#shared-chat img, #shared-chat script").count() == 0
    assert page.evaluate("window.__pwned") is None
    shot(page, "injection")
    page.close()
