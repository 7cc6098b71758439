"""The bundled text-to-image model, graded by the renderer's own truth on prompts it never saw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shared import catalog, scenes
from shared.loaders import load_text_to_image
from training import evaluate_t2i
from training import train_text_to_image as t2i

pytestmark = pytest.mark.full


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


@pytest.mark.parametrize("word_orders", [False, True], ids=["training templates", "with the colour after the shape"])
def test_held_out_prompts_never_appear_in_training(word_orders):
    if word_orders:  # stage 4's caption mix (and the unCLIP prior's): two more word orders, no paraphrase
        assert not set(scenes.COLOUR_AFTER) & set(scenes.PARAPHRASES)
        _, captions = scenes.training_set(20_000, templates=scenes.WORD_ORDER_TEMPLATES, **t2i.WORD_ORDER_DATA)
    else:
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
    from demos.text_to_image import generate as t2i_generate
    from demos.text_to_image import recipe as t2i_recipe
    from shared.loaders import TextToImage

    r = t2i_recipe.recommended("shapes-t2i")
    recipe = t2i_recipe.check_recipe(
        model="shapes-t2i", revision=None, prompt="a large red circle at the top", negative_prompt="", seed=0,
        num_inference_steps=r["num_inference_steps"], guidance_scale=r["guidance_scale"], scheduler=r["scheduler"],
        width=32, height=32, num_images_per_prompt=4,
    )  # fmt: skip
    run = t2i_generate.generate(TextToImage("shapes-t2i", entry.pipe, None), recipe)
    truth = {"shape": "circle", "colour": "red", "size": "large", "place": "at the top"}
    scores = [np.mean(list(scenes.grade_single(np.asarray(im), truth).values())) for im in run.images]
    assert np.mean(scores) >= 0.75, scores


def test_the_clip_stage_builds_a_stable_diffusion_pipeline_on_the_bundled_clip(entry, tmp_path):
    """train_text_to_image --stage clip: the bundled CLIP's text tower in a StableDiffusionPipeline whose
    UNet projects its 64-d states (encoder_hid_proj) and pools them into the time embedding, starting
    from the shipped UNet's weights; one real training step, then the saved pipeline loads and draws."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPModel

    text = t2i.clip_text_encoder()
    clip = CLIPModel.from_pretrained(t2i.CLIP)
    ids = t2i.clip_tokenizer(t2i.caption_words())(["a red circle above a blue square"], return_tensors="pt")
    assert torch.equal(text(**ids).last_hidden_state, clip.text_model(**ids).last_hidden_state)
    base = entry.pipe
    raw, captions = scenes.training_set(8, seed=3, pair_fraction=0.5)
    run = t2i.train_unet(
        1, {}, lambda step, values: True, base.vae, t2i.as_tensor(raw), captions, init=base, text_encoder=text,
        unet=t2i.unet_model(text.config.hidden_size), text_lr=1e-4,
    )  # fmt: skip
    snapshot = next(run)
    assert snapshot["step"] == 1 and "encoder_hid_proj.weight" in snapshot["unet"]
    shared_key = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"  # 128-d, taken from init
    assert torch.allclose(snapshot["unet"][shared_key], base.unet.state_dict()[shared_key], atol=1e-3)
    with pytest.raises(StopIteration) as done:
        next(run)
    unet, text_encoder, tokenizer = done.value.value
    t2i.pipeline(base.vae, unet, text_encoder, tokenizer).save_pretrained(tmp_path, safe_serialization=True)
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path, use_safetensors=True, dtype=torch.float32)
    assert pipe.unet.config.addition_embed_type == "text" and pipe.text_encoder.config.hidden_size == 64
    image = pipe("a red circle", num_inference_steps=2, width=32, height=32, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images[0]  # fmt: skip
    assert image.shape == (32, 32, 3) and np.isfinite(image).all()


def test_the_word_order_stage_trains_the_text_encoder_alone(entry):
    """train_text_to_image --stage word-order: two real steps on captions with the colour after the
    shape; the UNet comes out bit-for-bit the shipped one, the text encoder does not."""
    base = entry.pipe
    before = {k: v.clone() for k, v in base.text_encoder.state_dict().items()}
    raw, captions = scenes.training_set(8, templates=scenes.WORD_ORDER_TEMPLATES, **t2i.WORD_ORDER_DATA)
    run = t2i.word_order_run(2, {}, lambda step, values: step == 1, base, t2i.as_tensor(raw), captions)
    snapshot = next(run)
    assert snapshot["step"] == 2
    KEY = "encoder.layers.0.mlp.fc1.weight"  # noqa: N806
    for name, value in base.unet.state_dict().items():
        assert torch.equal(snapshot["unet"][name], value), name
    assert not torch.equal(snapshot["text_encoder"][KEY], before[KEY])
    for name, value in base.text_encoder.state_dict().items():  # the loaded pipeline is left as it was
        assert torch.equal(before[name], value), name


def test_two_object_relations_hold_also_as_people_type_them(entry):
    """The bundled model's weakest point was relations: 60 %, and 37.5 % for prompts without sizes ("a
    blue square above a yellow circle"). With the CLIP text encoder (stage 3) it measured 95 % and 92.5 %
    on the report's draw of 40 each; asserted at the issue's bar, 85 % (3–4 prompts of room)."""
    report = evaluate_t2i.evaluate(entry.pipe, singles=2, pairs=40)
    print(report["pairs"], report["typed pairs"])
    assert report["pairs"]["relation"] >= 0.85, report
    assert report["typed pairs"]["relation"] >= 0.85, report
    assert report["pairs"]["two objects"] >= 0.95 and report["typed pairs"]["two objects"] >= 0.95, report
