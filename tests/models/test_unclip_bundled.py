"""The bundled DALL-E 2-style model (stage 2: prior + decoder + MoVQ): its training script on tiny
configs, checkpoint + resume, and the exported folders loading with diffusers' Kandinsky 2.2
pipelines and through the app's loader. The frozen CLIP is the bundled weights/shapes-clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline

from shared import scenes
from training import evaluate_unclip, train_unclip

pytestmark = pytest.mark.full

FAST = {"lr": 3e-3, "warmup": 1, "seed": 0}


@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread, as the bundled run trains (and the machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def losses_of(run) -> list[float]:
    """Drive a stage's generator to its end, collecting every step's loss."""
    seen: list[float] = []

    def log(step: int, values: dict) -> bool:
        seen.append(values["loss"])
        return False

    for _ in run(log):
        pass
    return seen


def reduced(losses: list[float]) -> bool:
    return np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_each_stage_reduces_its_loss():
    torch.manual_seed(0)
    images = train_unclip.pixels(scenes.training_set(64, seed=0)[0])
    movq = train_unclip.movq_model(widths=(32, 32, 32), codes=32)
    settings = {**FAST, "steps": 40, "batch_size": 8, "scale_weight": 0.1, "quantized": False}  # as bundled
    assert reduced(losses_of(lambda log: train_unclip.train_movq(settings, {}, log, images, model=movq)))
    with torch.no_grad():  # trained on the pipeline's unquantized path, the codebook still follows the latents
        latents = movq.encode(images).latents
        codes = movq.quantize(latents)[0]
    assert (codes - latents).pow(2).mean() < 0.5 * latents.pow(2).mean()

    sharpened = train_unclip.movq_model(widths=(32, 32, 32), codes=32)
    settings = {**FAST, "steps": 30, "batch_size": 8}
    run = lambda log: train_unclip.train_sharpen(settings, {}, log, images, movq.state_dict(), model=sharpened)  # noqa: E731
    losses = losses_of(run)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    for name, value in movq.encoder.state_dict().items():  # the UNet's latents stay what they were
        assert torch.equal(sharpened.encoder.state_dict()[name], value), name

    text_encoder, image_encoder = train_unclip.clip_halves()
    tokenizer = train_unclip.CLIPTokenizer.from_pretrained(train_unclip.CLIP)
    raw, captions = scenes.training_set(64, seed=0)
    text = train_unclip.embed_text(text_encoder, tokenizer, captions)
    image_embeds = train_unclip.embed_images(image_encoder, train_unclip.pixels(raw))
    assert text["hidden"].shape == (64, 32, 64) and image_embeds.shape == (64, 64)
    empty = train_unclip.embed_text(text_encoder, tokenizer, [""])
    prior = train_unclip.prior_model(layers=1, heads=2)
    settings = {**FAST, "steps": 40, "batch_size": 16, "drop": 0.1}
    run = lambda log: train_unclip.train_prior(settings, {}, log, text, image_embeds, empty, model=prior)  # noqa: E731
    assert reduced(losses_of(run))
    assert torch.allclose(prior.clip_mean, image_embeds.mean(0, keepdim=True))  # what post_process_latents adds back

    with torch.no_grad():
        latents = movq.encode(images).latents
    unet = train_unclip.decoder_model(widths=(32, 32))
    negative = train_unclip.zero_embed(image_encoder)
    settings = {**FAST, "steps": 40, "batch_size": 16, "drop": 0.1}
    run = lambda log: train_unclip.train_decoder(settings, {}, log, latents, image_embeds, negative, model=unet)  # noqa: E731
    assert reduced(losses_of(run))


class SessionEnded(Exception):
    pass


def test_a_resumed_run_restores_its_step_and_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    settings = {**FAST, "steps": 10, "batch_size": 4, "drop": 0.1, "dataset_size": 32}
    tiny = lambda: {"model": train_unclip.prior_model(layers=1, heads=2)}  # noqa: E731
    save = train_unclip.save_checkpoint

    def save_then_end_at_step_6(directory, stage, snapshot):
        save(directory, stage, snapshot)
        if snapshot["step"] == 6:
            raise SessionEnded

    monkeypatch.setattr(train_unclip, "save_checkpoint", save_then_end_at_step_6)
    torch.manual_seed(0)
    with pytest.raises(SessionEnded):
        train_unclip.run_stage("prior", settings, directory=tmp_path / "a", every=0, **tiny())
    assert train_unclip.load_checkpoint(tmp_path / "a", "prior")["step"] == 6
    monkeypatch.setattr(train_unclip, "save_checkpoint", save)
    torch.manual_seed(0)
    resumed = train_unclip.run_stage("prior", settings, directory=tmp_path / "a", **tiny())  # the same command
    torch.manual_seed(0)
    straight = train_unclip.run_stage("prior", settings, directory=tmp_path / "b", **tiny())
    assert resumed["step"] == straight["step"] == 10
    assert len(resumed["history"]) == len(straight["history"])
    for name, value in straight["ema"].items():
        assert torch.allclose(resumed["ema"][name], value, atol=1e-6), name


def test_exported_folders_load_with_kandinsky_pipelines_and_draw_from_a_prompt(tmp_path):
    directory, prior_dir, decoder_dir = tmp_path / "checkpoints", tmp_path / "prior", tmp_path / "decoder"
    for stage in train_unclip.STAGES:  # a few steps of each, at the bundled sizes
        settings = {**train_unclip.DEFAULTS[stage], **FAST, "steps": 2, "batch_size": 2, "dataset_size": 16}
        train_unclip.run_stage(stage, settings, directory=directory)
    record = train_unclip.export(directory, prior_dir, decoder_dir, evaluate=False)
    assert record["final"] and record["stages"]["decoder"]["step"] == 2
    for folder in (prior_dir, decoder_dir):
        assert (folder / "README.md").is_file() and (folder / "training.json").is_file()
        assert not list(folder.rglob("*.bin")) and list(folder.rglob("*.safetensors"))
    assert {p.name for p in prior_dir.iterdir()} >= {
        "prior",
        "image_encoder",
        "text_encoder",
        "tokenizer",
        "scheduler",
        "image_processor",
    }
    assert {p.name for p in decoder_dir.iterdir()} >= {"unet", "scheduler", "movq"}

    prior = KandinskyV22PriorPipeline.from_pretrained(prior_dir, use_safetensors=True)
    decoder = KandinskyV22Pipeline.from_pretrained(decoder_dir, use_safetensors=True)
    g = torch.Generator().manual_seed(0)
    embeds = prior("a small red circle on the left", num_inference_steps=2, generator=g)
    assert embeds.image_embeds.shape == (1, 64)
    image = decoder(
        image_embeds=embeds.image_embeds, negative_image_embeds=embeds.negative_image_embeds,
        height=32, width=32, num_inference_steps=2, generator=g,
    ).images[0]  # fmt: skip
    assert image.size == (32, 32)

    # the app's path: a spec whose recipe names the prior's folder (shared/loaders.py::_with_prior)
    pipe = evaluate_unclip.load_bundled(prior_dir, decoder_dir)
    settings = {**evaluate_unclip.DEFAULTS, "prior_num_inference_steps": 2, "num_inference_steps": 2}
    (drawn,) = evaluate_unclip.images_for(pipe, ["a big blue square at the top"], **settings)
    assert drawn.shape == (32, 32, 3) and drawn.dtype == np.uint8


def test_the_bundled_unclip_model_draws_held_out_prompts_and_relations():
    """The committed weights (weights/shapes-unclip*), graded by the renderer's truth on the training
    report's own 120 single-object prompts, at the issue's bar: 90 % (measured 91.5 %, 7 attribute
    checks of 480 to spare, for float noise across CPUs). Relations are reported, not barred, for this
    model; on 20 + 20 prompts they floor under what the report's draw measured (92.5 %,
    and 90 % with sizes left out)."""
    pipe = evaluate_unclip.load_bundled()
    report = evaluate_unclip.evaluate(pipe, singles=120, pairs=20)
    print(report)
    assert report["single"]["mean"] >= 0.90, report
    assert report["pairs"]["relation"] >= 0.80, report
    assert report["typed pairs"]["relation"] >= 0.85, report
