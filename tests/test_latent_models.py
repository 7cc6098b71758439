"""The bundled digit GAN and VAE, judged by an independent classifier; the latent loader."""

import numpy as np
import pytest
import torch

from shared.catalog import CATALOG, ModelSpec
from shared.loaders import load_latent_model
from training.evaluate import classifier, judge


@pytest.fixture(scope="module")
def judge_ready():
    svm, accuracy, r = classifier()
    assert accuracy >= 0.97, f"the judge itself must be accurate: {accuracy:.3f}"
    assert r > 0.9
    return r


def load(key: str):
    return load_latent_model(CATALOG[key], device="cpu", dtype=torch.float32, cache_dir=None)


@torch.no_grad()
def test_gan_samples_look_like_digits(judge_ready):
    gan = load("digits-gan")
    assert gan.kind == "gan"
    score = judge(gan.model(torch.randn(1000, gan.latent_dim, generator=torch.Generator().manual_seed(0))))
    assert score["ratio"] >= 0.9, score
    assert all(n > 0 for n in score["digit_counts"]), score


@torch.no_grad()
def test_vae_prior_samples_look_like_digits(judge_ready):
    vae = load("digits-vae")
    assert vae.kind == "vae" and vae.latent_dim == 8
    score = judge(vae.model.decode(torch.randn(1000, vae.latent_dim, generator=torch.Generator().manual_seed(0))))
    assert score["ratio"] >= 0.85, score
    assert all(n > 0 for n in score["digit_counts"]), score


@torch.no_grad()
def test_vae_reconstructs_held_out_digits():
    from training.datasets import digits

    vae = load("digits-vae")
    test = digits()["x_test"]
    mu, _ = vae.model.encode(test)
    assert float(((vae.model.decode(mu) - test) ** 2).mean()) < 0.02


def test_tiny_autoencoder_kl_loads_and_round_trips(tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
    ).save_pretrained(tmp_path)
    spec = ModelSpec(
        key="tiny-vae", task="latent", source=str(tmp_path), revision=None, size_mb=1, license="t", device="cpu"
    )
    lm = load_latent_model(spec, device="cpu", dtype=torch.float32, cache_dir=tmp_path)
    assert lm.kind == "autoencoder-kl" and lm.latent_dim == 4
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        latent = lm.model.encode(image).latent_dist.mean
        out = lm.model.decode(latent).sample
    assert latent.shape == (1, 4, 16, 16) and out.shape == image.shape and torch.isfinite(out).all()


def test_latent_map_separates_digits_and_decodes_clicks():
    from demos import latent_sampling as ls
    from training.datasets import digits

    vae = load("digits-vae")
    data = digits()
    m = ls.latent_map(vae, data["x_train"], data["y_train"])
    assert m.coords.shape == (len(data["x_train"]), 2)
    # digits cluster: each digit's centroid is nearer its own points than the overall centre is
    centres = np.stack([m.coords[m.labels == d].mean(axis=0) for d in range(10)])
    own = np.mean([np.linalg.norm(m.coords[m.labels == d] - centres[d], axis=1).mean() for d in range(10)])
    overall = np.linalg.norm(m.coords - m.coords.mean(axis=0), axis=1).mean()
    assert own < overall
    z = m.to_latent(0.5, 0.5)
    assert z.shape == (8,) and ls.decode(vae, z[None]).shape == (1, 1, 16, 16)
    assert ls.map_image(m).size == (ls.MAP_PX + 60, ls.MAP_PX)
    with pytest.raises(ValueError, match="encoder"):
        ls.latent_map(load("digits-gan"), data["x_train"], data["y_train"])
