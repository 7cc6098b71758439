"""The Text-to-image tab in a real browser (Debian's Chromium, Playwright) against `python app.py`:
what the screen shows is what happened. The step box follows typing; a stopped run says where it
stopped; the model and recipe controls are locked while a run goes; a number typed past a box is
set to the nearest value it takes, with a warning; a failed request leaves no error badge behind
once the model changes or a request succeeds; the layout at 1440 px and on a 390-px phone."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.helpers import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.full]

RUN_S = 120_000  # ms: a few steps of the bundled model on a busy 2-core CPU


@pytest.fixture(scope="module")
def page(chromium, live_app):
    page = chromium.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(live_app)
    page.get_by_role("tab", name="Text to image").click()
    expect(page.locator("#t2i-generate")).to_be_visible()
    yield page
    page.close()


def box(page, elem_id: str):
    """The number box of a slider (or the seed's box)."""
    return page.locator(f"#{elem_id} input" + ("" if elem_id == "t2i-seed" else "[type=number]"))


def type_number(page, elem_id: str, value: object) -> None:
    """Type into a box and leave it (Tab), as a person does."""
    field = box(page, elem_id)
    field.fill(str(value))
    field.press("Tab")


def toasts(page) -> list[str]:
    """The toasts now shown, then closed."""
    texts = page.locator(".toast-body").all_inner_texts()
    for close in page.locator(".toast-close").all():
        close.click()
    return texts


def expect_warning(page, text: str) -> None:
    expect(page.locator(".toast-body").filter(has_text=text)).to_be_visible(timeout=15_000)
    assert not [t for t in toasts(page) if t.startswith("Error")]


BADGES_JS = """() => [...document.querySelectorAll('[data-testid=status-tracker]')]
    .filter(e => !e.classList.contains('hide') && /error/i.test(e.innerText))
    .map(e => (e.closest('[id]') || {}).id)"""


def error_badges(page) -> list[str]:
    """Components that show Gradio's red "Error" badge (a status tracker in its error state)."""
    return page.evaluate(BADGES_JS)


def settled(page) -> None:
    """Every event done: no progress bar, spinner or pending overlay left on any component."""
    page.wait_for_function(
        "() => ![...document.querySelectorAll('[data-testid=status-tracker]')].some(e => !e.classList.contains('hide'))",
        timeout=60_000,
    )


def recipe(page) -> dict:
    return json.loads(page.locator("#t2i-recipe .cm-content").inner_text())


def generate(page, done: str = "Done") -> None:
    page.locator("#t2i-generate").click()
    expect(page.locator("#t2i-status")).to_contain_text(done, timeout=RUN_S)
    expect(page.locator("#t2i-model input")).to_be_enabled(timeout=15_000)  # the run's end unlocked it


CONTROLS = ["#t2i-model input", "#t2i-prompt textarea", "#t2i-seed input", "#t2i-steps input[type=number]",
            "#t2i-width input[type=number]"]  # fmt: skip
UPLOAD = "#t2i-restore input[type=file]"  # a locked upload box has no file input at all


def test_a_number_typed_past_a_box_is_set_to_the_nearest_value_with_a_warning(page):
    """One rule for every number box of the tab (the sliders clamp a typed number themselves, silently;
    the seed's box used to refuse one with an error): set to the nearest value it takes, and said."""
    type_number(page, "t2i-steps", 100000)
    expect(box(page, "t2i-steps")).to_have_value("150")
    expect_warning(page, "Steps: 100,000 is above the maximum, 150; set to 150.")
    type_number(page, "t2i-width", 10000)  # 64: shapes-t2i's largest side, not the minimum
    expect(box(page, "t2i-width")).to_have_value("64")
    expect_warning(page, "Width: 10,000 is above shapes-t2i's largest side, 64; set to 64.")
    type_number(page, "t2i-height", 60)  # the slider keeps 60, which Generate then refused
    expect(box(page, "t2i-height")).to_have_value("64")
    expect_warning(page, "Height: 60 is not a multiple of 8; set to 64.")
    type_number(page, "t2i-images", 0)
    expect(box(page, "t2i-images")).to_have_value("1")
    expect_warning(page, "Images: 0 is below the minimum, 1; set to 1.")
    type_number(page, "t2i-seed", -5)
    expect(box(page, "t2i-seed")).to_have_value("0")
    expect_warning(page, "Seed: -5 is below the minimum, 0; set to 0.")
    type_number(page, "t2i-seed", 99999999999)
    expect(box(page, "t2i-seed")).to_have_value("4294967295")
    expect_warning(page, "Seed: 99,999,999,999 is above the maximum, 4,294,967,295; set to 4,294,967,295.")
    assert error_badges(page) == []
    for elem_id, value in [("t2i-steps", 6), ("t2i-width", 32), ("t2i-height", 32), ("t2i-images", 2), ("t2i-seed", 0)]:
        type_number(page, elem_id, value)
        expect(box(page, elem_id)).to_have_value(str(value))
    page.wait_for_timeout(500)
    assert not [t for t in toasts(page) if t.startswith("Error")]


def test_typing_in_the_step_box_moves_the_view_like_dragging(page):
    page.locator("#t2i-prompt textarea").fill("a large red circle at the top")
    generate(page, "Done: 2 image(s), 6 steps in ")
    page.get_by_text("Step debugger: scrub through every step").click()
    text, step = page.locator("#t2i-step-text"), box(page, "t2i-step")
    expect(text).to_contain_text("Step 3 of 6", timeout=30_000)
    frame = page.locator("#t2i-x0 img")
    before = frame.get_attribute("src")
    step.fill("2")
    step.press("Enter")  # no need to leave the box: the view follows what is typed
    expect(text).to_contain_text("Step 2 of 6", timeout=30_000)
    assert frame.get_attribute("src") != before
    step.fill("9")  # past the run's last step
    expect(text).to_contain_text("Step 6 of 6", timeout=30_000)
    expect_warning(page, "Step: 9 is above the last step, 6; set to 6.")
    step.press("Tab")
    expect(step).to_have_value("6")
    step.fill("")
    step.press("Tab")  # an emptied box: the slider takes its minimum, and the view follows
    expect(step).to_have_value("1")
    expect(text).to_contain_text("Step 1 of 6", timeout=30_000)
    track = page.locator("#t2i-step input[type=range]").bounding_box()
    page.mouse.click(track["x"] + track["width"] * 0.8, track["y"] + track["height"] / 2)  # and dragging still
    expect(step).not_to_have_value("1")
    expect(text).to_contain_text(f"Step {step.input_value()} of 6", timeout=30_000)
    assert error_badges(page) == []


def test_the_images_are_named_offered_big_enough_and_leave_no_empty_band(page):
    thumbnails = page.locator("#t2i-gallery img")
    expect(thumbnails).to_have_count(2)
    assert thumbnails.first.evaluate("img => img.naturalWidth") == 256  # the 32×32 image, enlarged 8×
    assert "a-large-red-circle-at-the-top_seed0_6steps_256x256.png" in thumbnails.first.get_attribute("src")
    gallery, thumbnail = page.locator("#t2i-gallery").bounding_box(), thumbnails.first.bounding_box()
    assert gallery["height"] < thumbnail["height"] + 100  # one row of thumbnails, not a 450-px box
    page.get_by_text("Download every PNG").click()
    files = page.locator("#t2i-downloads")
    for stem in ("a-large-red-circle-at-the-top_seed0_6steps", "a-large-red-circle-at-the-top_seed1_6steps_256x256"):
        expect(files).to_contain_text(stem)
    page.get_by_text("Noise schedule: ᾱ_t per step for each scheduler").click()
    plot = page.locator("#t2i-schedule")
    expect(plot.locator("canvas, svg").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Each dot is one step of that scheduler")).to_be_visible()


def test_a_stopped_run_says_where_it_stopped_and_its_controls_stay_locked_until_then(page):
    """Switching the model mid-run used to swap the controls to the new model's defaults while the run
    went on with the old one: now the controls are locked (greyed) while it runs, and afterwards
    they and the recipe of the images on screen agree."""
    type_number(page, "t2i-images", 1)
    type_number(page, "t2i-steps", 150)
    expect(box(page, "t2i-steps")).to_have_value("150")
    expect(page.locator("#t2i-stop")).to_be_disabled()  # nothing runs yet
    page.locator("#t2i-generate").click()
    status = page.locator("#t2i-status")
    expect(status).to_contain_text(re.compile(r"Step \d+/150"), timeout=RUN_S)
    expect(status).to_contain_text("the settings are locked until it ends")
    for control in CONTROLS:
        expect(page.locator(control)).to_be_disabled()
    expect(page.locator("#t2i-generate")).to_be_disabled()
    expect(page.locator(UPLOAD)).to_have_count(0)
    page.locator("#t2i-model input").click(force=True)  # trying to switch the model anyway
    expect(page.get_by_role("option", name=re.compile("sd-turbo"))).to_have_count(0)
    page.locator("#t2i-stop").click()
    expect(status).to_contain_text("Stopped at step", timeout=RUN_S)
    said = status.inner_text()
    done, seconds, speed = re.search(
        r"Stopped at step (\d+) of 150 after ([\d.]+) s \(([\d.]+) steps/s\)", said
    ).groups()
    assert int(done) < 150 and float(speed) == pytest.approx(int(done) / float(seconds), rel=0.15, abs=0.1)
    assert f"half-denoised latents at step {done}" in said and "Done" not in said
    for control in CONTROLS:
        expect(page.locator(control)).to_be_enabled(timeout=15_000)
    expect(page.locator("#t2i-stop")).to_be_disabled()
    expect(page.locator(UPLOAD)).to_have_count(1)
    made = recipe(page)
    assert made["model"] in page.locator("#t2i-model input").input_value()  # "shapes-t2i (bundled)"
    assert str(made["num_inference_steps"]) == box(page, "t2i-steps").input_value() == "150"
    assert str(made["seed"]) == box(page, "t2i-seed").input_value()
    assert str(made["num_images_per_prompt"]) == box(page, "t2i-images").input_value()
    expect(page.locator("#t2i-gallery")).to_contain_text("unfinished")
    ARTIFACTS.mkdir(exist_ok=True)
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "text-to-image-stopped-1440.png"), full_page=True)


def test_a_refused_request_unlocks_the_controls_and_its_error_badge_goes(page):
    for elem_id, value in [("t2i-images", 8), ("t2i-steps", 150), ("t2i-width", 64), ("t2i-height", 64)]:
        type_number(page, elem_id, value)
        expect(box(page, elem_id)).to_have_value(str(value))
    toasts(page)
    page.locator("#t2i-generate").click()
    expect(page.locator(".toast-body").filter(has_text="too large for one go here")).to_be_visible(timeout=30_000)
    for control in CONTROLS:  # unlocked however the run ended
        expect(page.locator(control)).to_be_enabled(timeout=15_000)
    page.wait_for_function(f"() => ({BADGES_JS})().length > 0")
    assert error_badges(page) == ["t2i-status"]  # on the status line only
    toasts(page)
    page.locator("#t2i-model input").click()
    page.get_by_role("option", name=re.compile("sd-turbo")).click()  # changing the model clears it
    expect(page.locator("#t2i-status")).to_contain_text("Settings set to sd-turbo's recommended ones")
    assert error_badges(page) == []
    page.locator("#t2i-model input").click()
    page.get_by_role("option", name=re.compile("shapes-t2i")).click()
    expect(box(page, "t2i-steps")).to_have_value("20")
    for elem_id, value in [("t2i-images", 8), ("t2i-steps", 150), ("t2i-width", 64), ("t2i-height", 64)]:
        type_number(page, elem_id, value)
    expect(box(page, "t2i-height")).to_have_value("64")
    page.locator("#t2i-generate").click()
    expect(page.locator(".toast-body").filter(has_text="too large for one go here")).to_be_visible(timeout=30_000)
    expect(page.locator("#t2i-model input")).to_be_enabled(timeout=15_000)
    toasts(page)
    for elem_id, value in [("t2i-images", 4), ("t2i-steps", 6), ("t2i-width", 32), ("t2i-height", 32)]:
        type_number(page, elem_id, value)
        expect(box(page, elem_id)).to_have_value(str(value))
    generate(page, "Done: 4 image(s), 6 steps")  # …and so does a good request
    assert error_badges(page) == []
    assert not [t for t in toasts(page) if t.startswith("Error")]


def test_a_refused_png_leaves_its_badge_on_the_status_line_only_until_the_model_changes(page, tmp_path):
    bad = tmp_path / "not-a-png.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    page.locator(UPLOAD).set_input_files(str(bad))
    expect(page.locator(".toast-body").filter(has_text="not a readable PNG")).to_be_visible(timeout=15_000)
    page.wait_for_function(f"() => ({BADGES_JS})().length > 0")
    assert error_badges(page) == ["t2i-status"]  # not one on each of the eleven settings it would have filled
    toasts(page)
    page.locator("#t2i-model input").click()
    page.get_by_role("option", name=re.compile("sd-turbo")).click()
    expect(page.locator("#t2i-status")).to_contain_text("Settings set to sd-turbo's recommended ones")
    assert error_badges(page) == []
    page.locator("#t2i-model input").click()
    page.get_by_role("option", name=re.compile("shapes-t2i")).click()
    expect(page.locator("#t2i-status")).to_contain_text("Settings set to shapes-t2i's recommended ones")


def test_the_tab_at_1440_px_and_on_a_390_px_phone(page):
    ARTIFACTS.mkdir(exist_ok=True)
    if not page.locator("#t2i-x0").is_visible():
        page.get_by_text("Step debugger: scrub through every step").click()
    expect(page.locator("#t2i-x0 img")).to_be_visible(timeout=30_000)
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "text-to-image-1440.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(1000)
    go = page.locator("#t2i-generate").bounding_box()
    preview = page.locator("#t2i-preview").bounding_box()
    restore = page.locator("#t2i-restore").bounding_box()
    assert go["y"] + go["height"] <= preview["y"] <= go["y"] + go["height"] + 120  # the result right under Generate
    assert restore["y"] > preview["y"]  # the restore upload after it, not between them
    for thumbnail in page.locator("#t2i-gallery img").all():  # two columns: none runs off the screen
        shown = thumbnail.bounding_box()
        assert shown["x"] >= 0 and shown["x"] + shown["width"] <= 390
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "text-to-image-390.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})
