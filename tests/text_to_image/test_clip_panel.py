"""The Text to image tab's contrastive-learning panel, on the bundled CLIP (real weights, CPU): the
batch matrix, retrieval over held-out scenes, and the handlers' messages for bad input."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
import torch

from demos.text_to_image import clip_panel as panel
from shared import catalog, runtime
from shared.loaders import load_clip
from tests.helpers import app_settings

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    runtime.configure(app_settings(cache_dir=tmp_path_factory.mktemp("c")))
    return load_clip(
        catalog.CATALOG["shapes-clip"], device="cpu", dtype=torch.float32, cache_dir=runtime.get().settings.cache_dir
    )


def test_the_scenes_are_held_out_distinct_and_seeded():
    captions, images = panel.held_out_scenes(12, seed=3)
    assert len(set(captions)) == 12 and images.shape == (12, 32, 32, 3)
    again, same = panel.held_out_scenes(12, seed=3)
    assert again == captions and np.array_equal(same, images)
    assert panel.held_out_scenes(12, seed=4)[0] != captions


def test_the_batch_matrix_puts_each_caption_on_its_own_image(clip):
    captions, images = panel.held_out_scenes(panel.BATCH, seed=0)
    cosine, probs = panel.batch_matrix(clip, captions, images)
    assert cosine.shape == probs.shape == (8, 8) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (
        probs.argmax(axis=1) == np.arange(8)
    ).sum() >= 7  # the bundled CLIP: 99.6 % among 32 held out (training.json)
    html = panel.matrix_html(captions, images, cosine, probs)
    assert html.count("clip-diagonal") == 8 and html.count('class="clip-caption"') == 8
    assert f"of {panel.BATCH}</b> captions give their own image" in html


def test_retrieval_finds_each_scene_from_its_caption(clip):
    captions, images = panel.held_out_scenes(panel.GALLERY, seed=1)
    hits = [panel.rank(clip, caption, captions, images)[0][0] == i for i, caption in enumerate(captions)]
    assert np.mean(hits) >= 0.9, np.mean(hits)
    ranked = panel.rank(clip, captions[0], captions, images)
    assert sorted(i for i, _, _ in ranked) == list(range(panel.GALLERY))
    assert all(a[1] >= b[1] for a, b in zip(ranked, ranked[1:], strict=False))


def test_captions_are_shown_as_text(clip):
    captions, images = ["<script>alert(1)</script>", "a red circle"], panel.held_out_scenes(2, 0)[1]
    cosine, probs = panel.batch_matrix(clip, captions, images)
    html = panel.matrix_html(captions, images, cosine, probs)
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "call, says",
    [
        (lambda: panel.show_batch(-5), "seed"),
        (lambda: panel.show_batch("x"), "seed"),
        (lambda: panel.find_image("   ", 0), "caption"),
        (lambda: panel.find_image("x" * 301, 0), "caption"),
        (lambda: panel.find_image("a red circle", 2**40), "seed"),
    ],
)
def test_bad_input_gets_a_message_and_the_next_request_works(clip, call, says):
    with pytest.raises(gr.Error, match=says):
        call()
    items, note = panel.find_image("a large blue square on the left", 0)
    assert len(items) == 6 and "CLIP's pick among 32 scenes" in note
