"""Latent arithmetic and image handling of the latent-sampling tab (pure functions)."""

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from demos.latent import encoding as le
from demos.latent import sampling as ls
from shared import runtime
from shared.datasets import COLOUR_BANDS
from shared.images import gif_bytes, grid_image
from shared.settings import Settings
from shared.validation import check_int

pytestmark = pytest.mark.fast


@pytest.fixture(autouse=True, scope="module")
def configured():
    """Uploads open under the runtime's pixel cap; the handlers load models through it."""
    runtime.configure(Settings(preload=False))


def test_slerp_endpoints_and_norm():
    torch.manual_seed(0)
    d = 64
    a, b = torch.randn(d), torch.randn(d)
    t = torch.linspace(0, 1, 33)
    path = ls.slerp(a, b, t)
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b, atol=1e-5, rtol=1e-5)
    norms = path.norm(dim=1)
    assert (norms - math.sqrt(d)).abs().max() < 0.25 * math.sqrt(d)
    # lerp dips towards the centre in the middle; slerp doesn't
    assert ls.lerp(a, b, t).norm(dim=1)[16] < 0.8 * norms[16]


def test_slerp_of_parallel_vectors_falls_back_to_lerp():
    a = torch.ones(4)
    torch.testing.assert_close(ls.slerp(a, 2 * a, torch.tensor([0.5])), torch.full((1, 4), 1.5))


def test_slerp_with_a_zero_latent_is_the_straight_line_and_finite():
    """The prior's mean (all zeros) has no direction: slerp falls back to lerp instead of 0/0."""
    zero, b, t = torch.zeros(8), torch.randn(8, generator=torch.Generator().manual_seed(0)), torch.linspace(0, 1, 5)
    for a, c in ((zero, b), (b, zero), (zero, zero)):
        path = ls.slerp(a, c, t)
        assert torch.isfinite(path).all()
        torch.testing.assert_close(path, ls.lerp(a, c, t))
    walks = ls.walk("digits-vae", [0.0] * 8, b.tolist(), 5)
    assert all(torch.isfinite(images).all() and len(images) == 5 for _, images in walks.values())


def test_a_latent_end_must_be_one_vector_never_cut_to_its_first_row():
    assert ls.check_latent("a", [[0.5] * 8], 8).shape == (8,)
    for rows in ([[0.0] * 8, [1.0] * 8], [[0.0] * 8] * 3):
        with pytest.raises(ValueError, match=f"a must be one latent vector of 8 numbers; got {len(rows)} rows"):
            ls.check_latent("a", rows, 8)
    with pytest.raises(ValueError, match="b must be one latent vector"):
        ls.walk("digits-vae", [0.0] * 8, [[0.0] * 8, [1.0] * 8], 4)


def test_dimensions_must_be_whole_numbers_never_truncated():
    for dims, match in (([1.9], "whole number, got 1.9"), (["1.5"], "whole number"), ([1e309], "finite|whole")):
        with pytest.raises(ValueError, match=match):
            ls._dims(8, dims)
    assert ls._dims(8, [1.0, "2", " 3 "]) == [1, 2, 3]


def test_walk_gifs_go_to_the_swept_scratch_folder():
    from shared import scratch

    *_, gifs = ls.walk_views(ls.walk("digits-vae", 1, 2, 4, seeds=True))
    assert len(gifs) == 2 and all(Path(g).parent.parent == scratch.root() and Path(g).stat().st_size for g in gifs)


def test_same_seed_same_latents_and_scale():
    assert torch.equal(ls.sample_z(8, 4, seed=3), ls.sample_z(8, 4, seed=3))
    assert not torch.equal(ls.sample_z(8, 4, seed=3), ls.sample_z(8, 4, seed=4))
    torch.testing.assert_close(ls.sample_z(8, 4, 3, scale=0.5), 0.5 * ls.sample_z(8, 4, 3))


def test_traversal_changes_only_the_chosen_dimension():
    z0 = torch.zeros(5)
    grid = ls.traversal_z(z0, [1, 3], span=3.0, steps=7)
    assert grid.shape == (14, 5)
    torch.testing.assert_close(grid[:7, 1], torch.linspace(-3, 3, 7))
    assert torch.all(grid[:7, [0, 2, 3, 4]] == 0) and torch.all(grid[7:, 3] == torch.linspace(-3, 3, 7))


@pytest.mark.parametrize(
    "z, match",
    [
        ([[float("nan")] * 8], "NaN"),
        ([[float("inf")] * 8], "NaN"),
        ([[1e30] * 8], "within"),
        ([[0.0] * 7], "8 numbers"),
        ("abc", "numbers"),
        ([[[0.0] * 8]], "8 numbers"),
    ],
)
def test_bad_latents(z, match):
    with pytest.raises(ValueError, match=match):
        ls.check_latents(z, 8)


def _png(image: Image.Image, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kw.pop("format", "PNG"), **kw)
    return buffer.getvalue()


def digit_like(mode="L", ink=255, paper=0, size=64) -> Image.Image:
    image = Image.new("L", (size, size), paper)
    for y in range(12, 52):
        for x in range(28, 36):
            image.putpixel((x, y), ink)
    return image.convert(mode)


@pytest.mark.parametrize("mode", ["L", "RGB", "CMYK", "RGBA", "P"])
def test_uploads_of_any_mode_become_light_ink_on_dark(mode):
    x = le.to_model_input(
        ls.open_upload(
            _png(digit_like("RGB" if mode == "CMYK" else mode), format="PNG") if mode != "CMYK" else _cmyk()
        ),
        16,
    )
    assert x.shape == (1, 1, 16, 16) and 0 <= x.min() and x.max() == pytest.approx(1.0)
    assert x[0, 0, 8, 8] > 0.5 and x[0, 0, 0, 0] < 0.1  # the stroke is bright, the corner dark


def _cmyk() -> bytes:
    buffer = io.BytesIO()
    digit_like("RGB", ink=0, paper=255).convert("CMYK").save(buffer, format="JPEG")
    return buffer.getvalue()


def test_dark_ink_on_paper_is_inverted():
    x = le.to_model_input(digit_like(ink=0, paper=255), 16)
    assert x[0, 0, 8, 8] > 0.5 and x[0, 0, 0, 0] < 0.1


def test_transparent_background_counts_as_paper():
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    for y in range(12, 52):
        for x in range(28, 36):
            rgba.putpixel((x, y), (0, 0, 0, 255))
    x = le.to_model_input(ls.open_upload(_png(rgba)), 16)
    assert x[0, 0, 8, 8] > 0.5 and x[0, 0, 0, 0] < 0.1


def test_animated_gif_uses_the_first_frame():
    frames = [digit_like(), Image.new("L", (64, 64), 0)]
    data = _png(frames[0], format="GIF", save_all=True, append_images=frames[1:])
    assert ls.open_upload(data).is_animated
    assert le.to_model_input(ls.open_upload(data), 16).max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "data, match",
    [(b"not an image at all", "not an image"), (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "not an image")],
)
def test_corrupt_uploads(data, match):
    with pytest.raises(ValueError, match=match):
        ls.open_upload(data)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = _png(Image.new("1", (20_000, 20_000)))  # a few KB on disk, 400 megapixels decoded
    assert len(bomb) < 200_000
    with pytest.raises(ValueError, match="too large"):
        ls.open_upload(bomb)


@pytest.mark.parametrize(
    "image, match", [(None, "first"), ({"composite": None}, "empty"), (Image.new("L", (64, 64), 255), "blank")]
)
def test_empty_sketch_or_blank_image(image, match):
    with pytest.raises(ValueError, match=match):
        le.to_model_input(image, 16)


def test_grid_and_gif():
    images = torch.rand(10, 1, 16, 16)
    grid = grid_image(images, columns=4, px=32, gap=2)
    assert grid.size == (4 * 34 + 2, 3 * 34 + 2)
    gif = Image.open(io.BytesIO(gif_bytes(images[:4], px=32)))
    assert gif.is_animated and gif.n_frames == 6


@pytest.mark.parametrize(
    "name, value",
    [("count", 0), ("count", 10**5), ("count", 2.5), ("count", float("nan")), ("count", True)],
)
def test_counts(name, value):
    with pytest.raises(ValueError, match=name):
        check_int(name, value, 1, ls.MAX_COUNT)


def test_numeric_strings_are_read_like_numbers():
    assert check_int("count", "7", 1, ls.MAX_COUNT) == 7  # the one rule for every tab


def test_importing_the_tab_leaves_pillows_own_limit_alone():
    """Uploads are capped by open_image (header checked before decoding), not by a process-wide
    ``Image.MAX_IMAGE_PIXELS`` set at import."""
    assert Image.MAX_IMAGE_PIXELS != 4096 * 4096


def test_encoded_values_are_deterministic_numpy_free_of_nan():
    assert np.isfinite(ls.sample_z(8, 100, 0).numpy()).all()


def test_live_edit_changes_only_what_the_sliders_say():
    *sliders, image = ls.live_start("digits-vae", 5)
    values = [s.value for s in sliders]
    assert len(values) == ls.LIVE_DIMS and image.size == (196, 196)
    same = ls.live_edit("digits-vae", 5, None, *values)  # None: the request (no session)
    changed = ls.live_edit("digits-vae", 5, None, *([3.0] + values[1:]))
    assert np.asarray(same).tolist() != np.asarray(changed).tolist()
    import gradio as gr

    with pytest.raises(gr.Error, match="z0"):
        ls.live_edit("digits-vae", 5, None, *([float("nan")] + values[1:]))


def test_dimension_usage_ranks_by_kl_and_names_what_each_follows():
    """The table behind the traversal: every dimension once, most used first, the top one named
    after a known factor and unused ones marked; a GAN gets the first dimensions and no table."""
    dims, table = ls.usage("shapes-vae")
    assert sorted(table["dimension"]) == list(range(10))
    assert list(table["KL (nats)"]) == sorted(table["KL (nats)"], reverse=True)
    assert dims.split() == [str(d) for d in table["dimension"][:4]]
    assert (table["follows"][table["KL (nats)"] < ls.UNUSED_KL] == "— (unused)").all()
    assert table["follows"].iloc[0] in ("x", "y", "scale", "colour", "shape", "rotation")
    gan_dims, gan_table = ls.usage("digits-gan")
    assert gan_dims == "0 1 2 3" and gan_table.empty
    with pytest.raises(ValueError, match="encoder"):
        ls.dimension_usage(runtime.latent_model("digits-gan"), torch.zeros(1, 1, 16, 16))


def test_gan_and_vae_side_by_side_follow_the_picked_models_data():
    digits_gan, digits_vae, note = ls.side_by_side("digits-vae", 3, 4, 0.5, 1.5)
    shapes_gan, shapes_vae, _ = ls.side_by_side("shapes-gan", 3, 4, 1.0, 1.0)
    assert note == "GAN **digits-gan** at truncation 0.5 · VAE **digits-vae** at temperature 1.5"  # what was used
    assert np.asarray(digits_gan).tolist() == np.asarray(ls.sample_grid("digits-gan", 3, 4, 0.5, 1.0)[0]).tolist()
    assert np.asarray(shapes_vae).tolist() == np.asarray(ls.sample_grid("shapes-vae", 3, 4, 1.0, 1.0)[0]).tolist()
    assert np.asarray(shapes_gan).std(axis=2).mean() > 1  # shapes are in colour…
    assert np.asarray(digits_vae).std(axis=2).max() == 0  # …digits are grey


def test_shapes_map_is_labelled_by_colour_range_in_its_own_colours():
    m = le._map("shapes-vae")
    assert sorted(np.unique(m.labels)) == [0, 1, 2] and m.names == COLOUR_BANDS and len(m.palette) == 3
    picture = np.asarray(le.map_image(m))[:, : le.MAP_PX]  # the plot, not its legend
    for colour in m.palette:  # every band's dots are drawn
        assert (np.abs(picture.astype(int) - colour).sum(axis=2) == 0).sum() > 100


# --- what the screen shows is true (issue 13) -----------------------------------------------------


def _session(name: str):
    import types

    return types.SimpleNamespace(session_hash=name)


@pytest.fixture
def lab_session():
    """A browser session whose lab has trained a VAE for two steps; its run and models go after."""
    from demos.latent import lab as training_lab

    session = _session("latent-logic-lab")
    training_lab.lab_step("vae", session)
    training_lab.lab_step("vae", session)
    yield session
    training_lab.stop_session_runs(session)


def test_each_model_shows_only_its_own_scale():
    """Truncation for a GAN, temperature for a VAE: what the controls show follows the picked model."""
    from demos.latent import picker as latent_picker

    assert latent_picker.kind_controls("digits-gan") == (True, False)
    assert latent_picker.kind_controls("shapes-vae") == (False, True)
    assert latent_picker.kind_controls("lab:gan") == (True, False)
    assert latent_picker.kind_controls("lab:vae") == (False, True)
    truncation, temperature, *cleared = latent_picker.model_switched_views("digits-vae", 3)
    assert (truncation.visible, temperature.visible) == (False, True) and cleared == [None, None, None]
    import gradio as gr

    with pytest.raises(gr.Error, match="Unknown model"):
        latent_picker.model_switched_views("no-such-model", 3)


def test_switching_the_model_empties_every_view_of_the_previous_one():
    """The views a model filled (and any error badge a failed one left) are emptied on a switch: the
    handler returns None for each, after the two scale sliders."""
    import gradio as gr

    from demos.latent import ui as latent_sampling

    with gr.Blocks() as demo:
        ui = latent_sampling.build_ui()
    switch = next(fn for fn in demo.fns.values() if fn.name == "model_switched")
    anatomy, (view, decoded) = ui.tabs["anatomy"], ui.tabs["map"]
    assert switch.inputs == [ui.model] and switch.outputs[:2] == [ui.truncation, ui.temperature]
    assert all(c in switch.outputs for c in [*anatomy, view, decoded, *ui.tabs["samples"], *ui.tabs["interpolation"]])
    values = switch.fn("digits-gan")
    assert len(values) == len(switch.outputs) and values[2:] == (None,) * (len(values) - 2)
    assert switch.show_progress == "hidden"
    assert (ui.truncation.visible, ui.temperature.visible) == latent_picker_kind(ui.model.value)


def latent_picker_kind(model: str):
    from demos.latent import picker as latent_picker

    return latent_picker.kind_controls(model)


def test_a_lab_model_is_offered_and_used_in_its_own_session_only(lab_session):
    import gradio as gr

    from demos.latent import encoding as latent_encoding
    from demos.latent import picker as latent_picker

    other = _session("latent-logic-other")
    update, offered = latent_picker.offer_lab_models("digits-gan", [], lab_session)
    assert ("lab: VAE (this session)", "lab:vae") in update.choices and offered == ["vae"]
    assert update.value == "digits-gan"  # the pick stays
    assert latent_picker.offer_lab_models("digits-gan", offered, lab_session) == (gr.skip(), gr.skip())  # unchanged
    assert latent_picker.offer_lab_models("digits-gan", [], other) == (gr.skip(), gr.skip())  # nothing to offer
    grid, key = ls.sample_grid("lab:vae", 0, 4, 1.0, 1.0, lab_session)
    assert grid.size == (4 * 66 + 2, 66 + 2)
    assert ls.usage("lab:vae", lab_session)[1]["dimension"].tolist()  # the traversal's table, for the lab VAE
    assert latent_encoding.show_map("lab:vae", lab_session).size == (le.MAP_PX + 90, le.MAP_PX)
    with pytest.raises(gr.Error, match="no lab VAE"):
        ls.sample_grid("lab:vae", 0, 4, 1.0, 1.0, other)
    with pytest.raises(gr.Error, match="model"):
        ls.sample_grid("lab:unet", 0, 4, 1.0, 1.0, lab_session)
    with pytest.raises(gr.Error, match="Unknown model"):
        ls.sample_latents(model="lab:vae")  # the public API takes catalog keys only


def test_a_picked_lab_model_that_is_gone_gives_way_to_the_default(lab_session):
    from demos import glue
    from demos.latent import lab as training_lab
    from demos.latent import picker as latent_picker

    training_lab.stop_session_runs(lab_session)
    update, offered = latent_picker.offer_lab_models("lab:vae", ["vae"], lab_session)
    assert offered == [] and update.value == glue.default_model("latent")
    assert all(not value.startswith("lab:") for _, value in update.choices)


def test_the_map_marks_the_clicked_point():
    m = le._map("digits-vae")
    plain = np.asarray(le.map_image(m)).astype(int)
    marked = np.asarray(le.map_image(m, marker=(0.25, 0.75))).astype(int)
    x, y = int(0.25 * le.MAP_PX), int(0.25 * le.MAP_PX)
    assert (marked[y, x] == 0).all(), "the crosshair's centre is black"
    changed = np.abs(marked - plain).sum(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert abs(xs.mean() - x) < 2 and abs(ys.mean() - y) < 2, "the marker is centred on the point"
    assert changed.sum() < 0.02 * changed.size


def test_a_click_on_the_map_decodes_the_point_and_marks_it():
    import gradio as gr

    picture, decoded = le.decode_map_point("digits-vae", gr.SelectData(None, {"index": [105, 315], "value": None}))
    expected = np.asarray(le.map_image(le._map("digits-vae"), marker=(105 / le.MAP_PX, 1 - 315 / le.MAP_PX)))
    assert np.array_equal(np.asarray(picture), expected) and decoded.size == (164, 164)
    outside = le.decode_map_point("digits-vae", gr.SelectData(None, {"index": [le.MAP_PX + 20, 10], "value": None}))
    assert outside == (gr.skip(), gr.skip())  # the legend: nothing to decode, nothing to mark


def test_downloads_are_enlarged_sharp_and_named_by_model_seed_and_index():
    import zipfile

    from demos.latent import downloads as latent_downloads

    grid, key = ls.sample_grid("shapes-gan", 7, 3, 1.0, 1.0)
    path = latent_downloads.sample_download(key)
    assert Path(path).name == "shapes-gan_seed7_3-samples.zip"
    _, _, images = ls._sample("shapes-gan", 7, 3, 1.0)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [f"shapes-gan_seed7_{i:02d}.png" for i in range(3)]
        png = Image.open(io.BytesIO(archive.read("shapes-gan_seed7_01.png")))
    assert png.size == (latent_downloads.DOWNLOAD_PX, latent_downloads.DOWNLOAD_PX)
    pixels = np.asarray(png.convert("RGB")).astype(int)
    blocks = pixels.reshape(32, 8, 32, 8, 3)  # 32×32 model pixels, 8×8 screen pixels each
    assert (blocks == blocks[:, :1, :, :1]).all(), "nearest neighbour: every block is one colour"
    expected = (images[1].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert np.array_equal(blocks[:, 0, :, 0], expected), "the download is the image on screen"
    assert latent_downloads.sample_download(None) is None
    import gradio as gr

    with pytest.raises(gr.Error, match="no longer kept"):
        latent_downloads.sample_download("not-a-key")


def test_walk_gifs_are_named_by_model_and_ends():
    *_, gifs = ls.interpolation("digits-vae", 1, 2, 4)
    assert [Path(g).name for g in gifs] == ["digits-vae_seeds1-2_lerp.gif", "digits-vae_seeds1-2_slerp.gif"]


def test_plots_with_a_legend_have_no_fixed_height():
    """Gradio 6's plot clips a legend below a plot of fixed height (the norm plot showed one word, "path")."""
    import gradio as gr

    from demos.latent import ui as latent_sampling

    with gr.Blocks() as demo:
        latent_sampling.build_ui()
    plots = [b for b in demo.blocks.values() if isinstance(b, gr.LinePlot) and b.color]
    assert len(plots) == 2 and all(plot.height is None for plot in plots)


def test_the_sketchpad_picks_its_brush_for_the_visitor():
    """Gradio 6.31's Sketchpad opens on its image tool; the tab's script picks the brush whenever the
    "select the draw tool" prompt shows (the browser test draws without picking a tool)."""
    import gradio as gr

    from demos.latent import ui as latent_sampling

    with gr.Blocks() as demo:
        latent_sampling.build_ui()
    scripts = [b.js_on_load for b in demo.blocks.values() if isinstance(b, gr.HTML) and b.js_on_load]
    assert scripts == [le.PICK_BRUSH_JS]
    assert "#latent-sketch" not in le.PICK_BRUSH_JS and "'latent-sketch'" in le.PICK_BRUSH_JS
    sketch = next(b for b in demo.blocks.values() if isinstance(b, gr.ImageEditor))
    assert sketch.elem_id == "latent-sketch" and "pick the brush" not in sketch.label


def test_a_typed_count_past_its_slider_is_set_to_the_nearest_with_a_warning():
    import gradio as gr

    from demos.latent import ui as latent_sampling

    count = gr.Slider(1, 64, elem_id="latent-count", render=False)
    with pytest.warns(UserWarning, match="count: 1,000 is above the maximum, 64; set to 64."):
        assert latent_sampling.fit_slider(gr.EventData(count, 1000)) == [64, gr.skip(), gr.skip()]
    assert latent_sampling.fit_slider(gr.EventData(count, 16)) == [gr.skip()] * 3
