"""DALL-E 2's three stages (demos/text_to_image/unclip_panel.py) on real Kandinsky 2.2 components at the
bundled sizes with their seeded initial weights (training/train_unclip.py builds them), and the frozen
bundled CLIP: what each stage returns, the swaps, and the glue's messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from demos.text_to_image import unclip_panel as unclip
from training import train_unclip

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.manual_seed(0)
    prior_pipe, decoder_pipe, _ = train_unclip.pipelines(tmp_path_factory.mktemp("none"))
    with torch.no_grad():  # untrained, the prior's un-normalisation is all zeros: give it training's scale
        prior_pipe.prior.clip_std.fill_(1.0)
    return train_unclip.combined(prior_pipe, decoder_pipe)


def test_the_prior_is_traced_step_by_step(pipe):
    trace = unclip.trace_prior(pipe, "a small red circle on the left", seed=3, steps=5)
    assert len(trace.steps) == 5 and all(s.shape == (64,) for s in trace.steps)
    assert trace.text_embed.shape == trace.image_embed.shape == trace.negative.shape == (64,)
    np.testing.assert_allclose(trace.steps[-1], trace.image_embed, atol=1e-5)  # the last step is the output
    again = unclip.trace_prior(pipe, "a small red circle on the left", seed=3, steps=5)
    np.testing.assert_allclose(again.image_embed, trace.image_embed)  # seeded
    other = unclip.trace_prior(pipe, "a small red circle on the left", seed=4, steps=5)
    assert not np.allclose(other.steps[0], trace.steps[0])


def test_the_text_embedding_is_clips_projection(pipe):
    from transformers import CLIPModel, CLIPTokenizer

    clip = CLIPModel.from_pretrained(train_unclip.CLIP)
    ids = CLIPTokenizer.from_pretrained(train_unclip.CLIP)(["a blue square"], padding="max_length", return_tensors="pt")
    with torch.no_grad():
        want = clip.get_text_features(**ids)
    want = getattr(want, "pooler_output", want)[0].numpy()
    np.testing.assert_allclose(unclip.text_embedding(pipe, "a blue square"), want, atol=1e-4)


def test_nearest_finds_an_image_by_its_own_embedding(pipe):
    images, captions = unclip.training_gallery(64)
    gallery = unclip.embed_images(pipe, images)
    assert gallery.shape == (64, 64)
    for i in (0, 17, 63):
        (found, cos), *_ = unclip.nearest(gallery[i], gallery, k=3)
        assert found == i and cos == pytest.approx(1.0, abs=1e-5)


def test_slerp_keeps_its_ends_and_mixes_between():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=64), rng.normal(size=64) * 2
    np.testing.assert_allclose(unclip.slerp(a, b, 0.0), a, atol=1e-9)
    np.testing.assert_allclose(unclip.slerp(a, b, 1.0), b, atol=1e-9)
    mid = unclip.slerp(a, b, 0.5)
    assert unclip.cosine(mid, a) > unclip.cosine(b, a) and unclip.cosine(mid, b) > unclip.cosine(a, b)


def test_decoding_depends_on_embedding_and_seed(pipe):
    trace = unclip.trace_prior(pipe, "a big blue square at the top", seed=0, steps=3)
    same = unclip.decode(pipe, [trace.image_embed] * 2, trace.negative, [5, 5], steps=3)
    assert same[0].shape == (32, 32, 3) and same[0].dtype == np.uint8
    np.testing.assert_array_equal(same[0], same[1])
    other_seed = unclip.decode(pipe, [trace.image_embed], trace.negative, [6], steps=3)[0]
    other_embed = unclip.decode(pipe, [trace.text_embed], trace.negative, [5], steps=3)[0]
    assert not np.array_equal(other_seed, same[0]) and not np.array_equal(other_embed, same[0])


def test_anatomy_and_its_views(pipe):
    result = unclip.anatomy(pipe, "a red circle", "a green triangle", seed=1, prior_steps=7, decoder_steps=2)
    assert [s for s, _, _ in result.nearest_per_step] == unclip.shown_steps(7) and unclip.shown_steps(7)[-1] == 6
    assert len(result.mixes) == len(unclip.MIX) and len(result.seeds) == unclip.SEEDS
    summary, strip, steps, pair, mixes, seeds = unclip.views(result)
    assert "text embedding" in summary and "prior" in summary and "decoder" in summary
    assert strip.size[1] == (len(result.nearest_per_step) + 2) * 12  # text, the shown steps, the image embedding
    assert len(steps) == len(result.nearest_per_step) and len(pair) == 2 and len(mixes) == 5 and len(seeds) == 4
    assert "0% A" in mixes[-1][1] and "100% A" in mixes[0][1]


@pytest.mark.parametrize(
    "prompt, other, seed, steps, message",
    [("", "b", 0, 5, "prompt"), ("a", "", 0, 5, "second prompt"), ("a", "b", -1, 5, "seed"),
     ("a", "b", 0, 0, "prior steps"), ("a", "b", 0, 101, "prior steps"), ("x" * 301, "b", 0, 5, "prompt")],
)  # fmt: skip
def test_bad_inputs_get_a_message(prompt, other, seed, steps, message):
    import gradio as gr

    with pytest.raises(gr.Error, match=message):
        unclip.run(prompt, other, seed, steps)
