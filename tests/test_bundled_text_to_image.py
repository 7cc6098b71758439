"""The bundled text-to-image model, graded by the renderer's own truth on prompts it never saw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shared import catalog
from shared.loaders import load_text_to_image
from training import evaluate_t2i, scenes


@pytest.fixture(scope="module")
def entry(tmp_path_factory):
    spec = catalog.CATALOG["shapes-t2i"]
    return load_text_to_image(spec, device="cpu", dtype=torch.float32, cache_dir=tmp_path_factory.mktemp("c"))


def test_checker_is_right_on_rendered_scenes():
    """The judge itself: 100 % on the renderer's own images, so any error is the model's."""
    import random

    rng = random.Random(11)
    for _ in range(100):
        image, _, truth = scenes.single_scene(rng, templates=scenes.PARAPHRASES)
        assert all(scenes.grade_single(image, truth).values())


def test_held_out_prompts_never_appear_in_training():
    _, captions = scenes.training_set(20_000, seed=0)
    seen = set(captions)
    prompts = [p for p, _ in scenes.held_out_prompts(120)]
    assert not seen & set(prompts)
    for _, truth in scenes.held_out_prompts(120)[0::2]:  # the unseen colour–shape pairs
        assert (truth["colour"], truth["shape"]) in scenes.HELD_OUT_PAIRS
        assert not any(f"{truth['colour']} {truth['shape']}" in c for c in captions)


def test_held_out_single_object_prompts_reach_80_percent_attribute_accuracy(entry):
    recipe = catalog.CATALOG["shapes-t2i"].recipe
    report = evaluate_t2i.evaluate(
        entry.pipe,
        singles=60,
        pairs=20,
        num_inference_steps=recipe["steps"],
        guidance_scale=recipe["guidance_scale"],
        scheduler=recipe["scheduler"],
    )
    print(report)
    assert report["single"]["mean"] >= 0.80, report
    assert 0 <= report["pairs"]["mean"] <= 1  # two-object prompts are reported, not held to a bar


def test_default_settings_draw_the_prompt(entry):
    """One prompt at the tab's defaults, 4 seeds: the stated colour and place come out."""
    from demos import text_to_image as t2i
    from shared.loaders import TextToImage

    r = t2i.recommended("shapes-t2i")
    recipe = t2i.check_recipe(
        model="shapes-t2i", revision=None, prompt="a large red circle at the top", negative_prompt="", seed=0,
        num_inference_steps=r["num_inference_steps"], guidance_scale=r["guidance_scale"], scheduler=r["scheduler"],
        width=32, height=32, num_images_per_prompt=4,
    )  # fmt: skip
    run = t2i.generate(TextToImage("shapes-t2i", entry.pipe, None), recipe)
    truth = {"shape": "circle", "colour": "red", "size": "large", "place": "at the top"}
    scores = [np.mean(list(scenes.grade_single(np.asarray(im), truth).values())) for im in run.images]
    assert np.mean(scores) >= 0.75, scores
