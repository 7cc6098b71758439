"""The Latent sampling tab in a real browser (Debian's Chromium, Playwright, `python app.py`): what
the screen shows is true (issue 13). Lab runs are kept to a few seconds."""

from __future__ import annotations

import io
import re
import time
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageChops
from playwright.sync_api import expect

from tests.helpers import ARTIFACTS, dismiss_toasts

pytestmark = [pytest.mark.browser, pytest.mark.full]

LATENT_TAB = "Latent sampling (GAN / VAE)"


@pytest.fixture(scope="module")
def browser(chromium):
    return chromium


@pytest.fixture(scope="module")
def page(browser, live_app):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(live_app)
    sub_tab(page, LATENT_TAB)
    yield page
    page.close()


def pick_model(page, name: str) -> None:
    page.locator("#latent-model input").click()
    page.get_by_role("option", name=re.compile(re.escape(name))).click()


def sub_tab(page, name: str) -> None:
    """Open a tab by its name, also from a tab bar's "More tabs" menu (narrow screens)."""
    expect(page.get_by_role("tab").first).to_be_visible(timeout=30_000)
    tab = page.get_by_role("tab", name=name, exact=True).filter(visible=True)
    if tab.count():
        tab.first.click()
        return
    for more in page.get_by_role("button", name="More tabs").filter(visible=True).all():
        more.click()
        item = page.get_by_role("button", name=name, exact=True).filter(visible=True)
        try:
            expect(item.first).to_be_visible(timeout=1_000)
        except AssertionError:
            more.click()  # not this bar's: close its menu
            continue
        item.first.click()
        return
    raise AssertionError(f"no tab named {name!r}")


def picture(page, selector: str) -> Image.Image:
    """The image an <img> shows, as the server sent it."""
    src = page.locator(selector).get_attribute("src")
    return Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    dismiss_toasts(page)
    page.screenshot(path=str(ARTIFACTS / f"latent-{name}.png"), full_page=True)


def test_truncation_shows_for_gans_and_temperature_for_vaes(page):
    truncation, temperature = page.locator("#latent-truncation"), page.locator("#latent-temperature")
    expect(truncation).to_be_visible()  # the default, digits-gan
    expect(temperature).to_be_hidden()
    pick_model(page, "digits-vae")
    expect(temperature).to_be_visible(timeout=10_000)
    expect(truncation).to_be_hidden()
    pick_model(page, "shapes-gan")
    expect(truncation).to_be_visible(timeout=10_000)
    expect(temperature).to_be_hidden()


def test_the_sketchpad_draws_on_the_first_stroke_and_the_vae_gets_the_drawing(page):
    pick_model(page, "digits-vae")
    sub_tab(page, "VAE anatomy")
    sketch = page.locator("#latent-sketch")
    expect(sketch.locator("canvas").last).to_be_visible(timeout=10_000)
    expect(sketch.locator(".empty.wrap")).to_have_count(0, timeout=10_000)  # no "select the draw tool" prompt
    before = Image.open(io.BytesIO(sketch.screenshot())).convert("RGB")
    box = sketch.locator("canvas").last.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y - 50)  # a "1", drawn with the mouse, no tool picked
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x, y - 50 + 10 * i)
    page.mouse.up()
    page.wait_for_timeout(300)
    after = Image.open(io.BytesIO(sketch.screenshot())).convert("RGB")
    assert ImageChops.difference(before, after).getbbox() is not None, "the stroke must show on the canvas"
    page.locator("#latent-encode").click()
    expect(page.locator("#latent-reconstruction img")).to_be_visible(timeout=60_000)
    expect(page.locator(".toast-body")).to_have_count(0)
    pair = np.asarray(picture(page, "#latent-reconstruction img").convert("L")).astype(int)
    model_input = pair[2:98, 2:98]  # the first tile: what the VAE was given (96 px, after a 2 px gap)
    assert model_input.max() > 200 and model_input.std() > 30, "the VAE must get the drawn stroke, not a blank"
    shot(page, "1440-anatomy")


def test_switching_the_model_clears_the_error_badges(page):
    sub_tab(page, "VAE anatomy")
    pick_model(page, "digits-gan")
    page.locator("#latent-encode").click()  # a GAN has no encoder: every output shows an error
    expect(page.get_by_text("Only a VAE has an encoder").first).to_be_visible(timeout=30_000)
    outputs = ["#latent-reconstruction", "#latent-posterior-samples", "#latent-kl", "#latent-posterior"]
    expect(page.locator(f"{outputs[0]} .error")).not_to_have_count(0, timeout=10_000)
    dismiss_toasts(page)
    pick_model(page, "digits-vae")
    for output in outputs:
        expect(page.locator(f"{output} .error")).to_have_count(0, timeout=10_000)
    expect(page.get_by_text("Error", exact=True).filter(visible=True)).to_have_count(0)


def test_a_click_on_the_latent_map_is_marked_and_decoded(page):
    sub_tab(page, "Latent map")
    page.locator("#latent-map-button").click()
    image = page.locator("#latent-map img")
    expect(image).to_be_visible(timeout=60_000)
    plain = picture(page, "#latent-map img")
    box, natural = image.bounding_box(), image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    scale = box["width"] / natural[0]
    at = (120, 150)  # natural pixels: inside the plot
    page.mouse.click(box["x"] + (at[0] + 0.5) * scale, box["y"] + (at[1] + 0.5) * scale)
    page.wait_for_function(
        "src => document.querySelector('#latent-map img')?.getAttribute('src') !== src",
        arg=image.get_attribute("src"),
        timeout=60_000,
    )
    expect(page.locator("#latent-map-decoded img")).to_be_visible(timeout=30_000)
    marked = np.asarray(picture(page, "#latent-map img")).astype(int)
    changed = np.abs(marked - np.asarray(plain).astype(int)).sum(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert len(xs) and abs(xs.mean() - at[0]) <= 3 and abs(ys.mean() - at[1]) <= 3, "a marker where I clicked"
    assert (marked[at[1], at[0]] < 60).all(), "the crosshair's centre is on the clicked point"
    shot(page, "1440-map")


def _step_of(page) -> int:
    match = re.search(r"step ([\d,]+)", page.locator("#lab-status").inner_text())
    return int(match.group(1).replace(",", "")) if match else -1


def test_lab_pause_reads_resume_and_resumes_and_stop_keeps_the_grid(page):
    sub_tab(page, "Training lab")
    status, pause = page.locator("#lab-status"), page.locator("#lab-pause")
    page.locator("#lab-start").click()
    expect(status).to_contain_text("training", timeout=30_000)
    page.wait_for_function("() => /step [1-9]/.test(document.querySelector('#lab-status')?.innerText)", timeout=30_000)
    pause.click()
    expect(pause).to_have_text("Resume", timeout=10_000)
    expect(status).to_contain_text("paused")
    paused_at = _step_of(page)
    page.wait_for_timeout(2500)  # a tick of the 2 s timer: still paused, still Resume
    assert _step_of(page) == paused_at and pause.inner_text() == "Resume"
    pause.click()
    expect(pause).to_have_text("Pause", timeout=10_000)
    expect(status).to_contain_text("training")
    deadline = time.time() + 30
    while _step_of(page) <= paused_at and time.time() < deadline:
        page.wait_for_timeout(500)
    assert _step_of(page) > paused_at, "Resume must train on"
    expect(page.locator("#lab-losses")).to_contain_text("reconstruction", timeout=10_000)
    grid = page.locator("#lab-grid img")
    expect(grid).to_be_visible()
    page.locator("#lab-stop").click()
    expect(status).to_contain_text("stopped at step", timeout=10_000)
    shown = grid.get_attribute("src")
    page.wait_for_timeout(4500)  # two ticks after the stop
    expect(grid).to_be_visible()
    assert grid.get_attribute("src") == shown, "the grid stays as it was"
    expect(page.locator("#lab-losses")).to_contain_text("reconstruction")  # the curves and their legend
    expect(status).to_contain_text("stopped at step")
    expect(pause).to_be_disabled()
    shot(page, "1440-lab")


def test_the_lab_model_is_in_this_sessions_picker_only(page, browser, live_app):
    page.locator("#latent-model input").click()
    expect(page.get_by_role("option", name="lab: VAE (this session)")).to_be_visible(timeout=10_000)
    page.get_by_role("option", name="lab: VAE (this session)").click()
    expect(page.locator("#latent-temperature")).to_be_visible(timeout=10_000)  # a VAE: its temperature
    sub_tab(page, "Samples")
    page.locator("#latent-sample").click()
    expect(page.locator("#latent-samples img")).to_be_visible(timeout=60_000)
    download = page.locator("#latent-download")
    expect(download.get_by_role("cell", name="lab-vae_seed0_16-samples.zip")).to_be_visible(timeout=30_000)
    with zipfile.ZipFile(
        io.BytesIO(page.request.get(download.get_by_role("link").first.get_attribute("href")).body())
    ) as z:
        assert z.namelist() == [f"lab-vae_seed0_{i:02d}.png" for i in range(16)]
        assert Image.open(io.BytesIO(z.read("lab-vae_seed0_00.png"))).size == (256, 256)
    expect(page.locator(".toast-body")).to_have_count(0)
    shot(page, "1440-samples-lab-model")
    other = browser.new_page(viewport={"width": 1440, "height": 1000})
    try:
        other.goto(live_app)
        sub_tab(other, LATENT_TAB)
        other.wait_for_timeout(2500)  # a tick of the lab's timer, which offers a session's lab models
        other.locator("#latent-model input").click()
        options = [o.inner_text() for o in other.get_by_role("option").all()]
        assert options and not any("lab:" in o for o in options), options
    finally:
        other.close()


def test_the_norm_plot_shows_its_whole_legend(page):
    sub_tab(page, "Interpolation")
    page.locator("#latent-interpolate").click()
    plot = page.locator("#latent-norms")
    for name in ("lerp", "slerp", "√d (typical norm)"):
        label = plot.get_by_text(name, exact=True)
        expect(label).to_be_visible(timeout=60_000)
        inside, outer = label.bounding_box(), plot.bounding_box()
        assert inside["y"] + inside["height"] <= outer["y"] + outer["height"], f"{name} is clipped"
    expect(page.locator("#latent-lerp img")).to_be_visible()
    shot(page, "1440-interpolation")


def test_the_tab_on_a_phone(browser, live_app):
    """390 px wide: the controls, a sample grid, the lab and the norm plot, as screenshots."""
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        phone.goto(live_app)
        sub_tab(phone, LATENT_TAB)
        phone.locator("#latent-sample").click()
        expect(phone.locator("#latent-samples img")).to_be_visible(timeout=60_000)
        expect(phone.locator("#latent-temperature")).to_be_hidden()
        shot(phone, "390-samples")
        sub_tab(phone, "Interpolation")
        phone.locator("#latent-interpolate").click()
        expect(phone.locator("#latent-norms").get_by_text("slerp", exact=True)).to_be_visible(timeout=60_000)
        shot(phone, "390-interpolation")
        sub_tab(phone, "Training lab")
        phone.locator("#lab-step").click()
        expect(phone.locator("#lab-status")).to_contain_text("step 1", timeout=30_000)
        expect(phone.locator("#lab-pause")).to_have_text("Resume")
        phone.locator("#lab-stop").click()
        expect(phone.locator("#lab-status")).to_contain_text("stopped at step 1", timeout=10_000)
        shot(phone, "390-lab")
    finally:
        phone.close()


def test_a_typed_count_past_its_slider_is_set_to_the_nearest_with_a_warning(page):
    field = page.locator("#latent-count input[type=number]")
    field.fill("1000")
    field.blur()  # Gradio's slider box sends a typed number when it is left
    expect(page.get_by_text("count: 1,000 is above the maximum, 64; set to 64.").first).to_be_visible(timeout=10_000)
    expect(field).to_have_value("64")
    dismiss_toasts(page)
    field.fill("16")
    field.blur()
