"""The small GANs and VAEs the project trains itself (`training/train_latent.py`).

Each class mixes in huggingface_hub's ``PyTorchModelHubMixin``: ``save_pretrained`` writes
``model.safetensors`` + ``config.json``, and ``from_pretrained`` takes a local directory or a hub
id, so a model someone trains can be pushed to the hub and loaded by id like any other.
Images are (N, channels, size, size) with values in [0, 1] at the boundary of every public method.
"""

from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


class Generator(nn.Module, PyTorchModelHubMixin):
    """DCGAN-style generator: z (N, latent_dim) → fc → 4×4 → upsampling convs → size × size.

    ``upsample="transpose"`` doubles the size with transposed convolutions (DCGAN's choice);
    ``"nearest"`` with nearest-neighbour upsampling followed by a 3×3 convolution, which avoids the
    checkerboard patterns transposed convolutions leave where their kernels overlap unevenly.
    """

    def __init__(
        self, latent_dim: int = 32, channels: int = 1, size: int = 16, width: int = 64, upsample: str = "transpose"
    ) -> None:
        super().__init__()
        self.latent_dim, self.channels, self.size = latent_dim, channels, size
        ups = {16: 2, 32: 3}[size]
        layers: list[nn.Module] = []
        c = width * 2 ** (ups - 1)
        self.fc = nn.Sequential(nn.Linear(latent_dim, c * 16), nn.BatchNorm1d(c * 16), nn.ReLU(True))
        self.start = c
        for i in range(ups):
            last = i == ups - 1
            out = channels if last else c // 2
            if upsample == "nearest":
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, out, 3, 1, 1)]
            else:
                layers += [nn.ConvTranspose2d(c, out, 4, 2, 1)]
            layers += [nn.Sigmoid()] if last else [nn.BatchNorm2d(out), nn.ReLU(True)]
            c = out
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(len(z), self.start, 4, 4))  # (N, C, size, size) in [0, 1]


class Discriminator(nn.Module, PyTorchModelHubMixin):
    """DCGAN-style critic: image → strided convs → one logit (real vs generated).

    With ``pack`` > 1 (PacGAN), it judges that many images at once, stacked as channels, and says
    whether the whole pack is real. One all-blue image looks real; four all-blue images in a row
    are unlikely, so a generator that draws everything alike is caught and pushed back towards
    variety.
    """

    def __init__(self, channels: int = 1, size: int = 16, width: int = 64, pack: int = 1) -> None:
        super().__init__()
        self.pack = pack
        channels *= pack
        downs = {16: 2, 32: 3}[size]
        layers: list[nn.Module] = []
        c_in, c = channels, width
        for _ in range(downs):
            layers += [nn.utils.spectral_norm(nn.Conv2d(c_in, c, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            c_in, c = c, c * 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(c_in * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] → N / pack logits (N must be a multiple of pack)."""
        x = x.reshape(len(x) // self.pack, -1, *x.shape[2:])
        return self.head(self.features(x * 2 - 1)).squeeze(-1)


class ConvVAE(nn.Module, PyTorchModelHubMixin):
    """Convolutional (β-)VAE: image → (μ, log σ²) of a diagonal Gaussian → sample z → image."""

    def __init__(self, latent_dim: int = 8, channels: int = 1, size: int = 16, width: int = 32, beta: float = 1.0):
        super().__init__()
        self.latent_dim, self.channels, self.size, self.beta = latent_dim, channels, size, beta
        downs = {16: 2, 32: 3}[size]
        enc: list[nn.Module] = []
        dec: list[nn.Module] = []
        c_in, c = channels, width
        for _ in range(downs):
            enc += [nn.Conv2d(c_in, c, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            c_in, c = c, c * 2
        self.top = c_in  # channels at 4×4
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(c_in * 16, 256), nn.LeakyReLU(0.2, True))
        self.mu, self.logvar = nn.Linear(256, latent_dim), nn.Linear(256, latent_dim)
        self.fc = nn.Sequential(nn.Linear(latent_dim, 256), nn.ReLU(True), nn.Linear(256, c_in * 16), nn.ReLU(True))
        c = c_in
        for i in range(downs):
            last = i == downs - 1
            out = channels if last else c // 2
            dec += [nn.ConvTranspose2d(c, out, 4, 2, 1)] + ([] if last else [nn.ReLU(True)])
            c = out
        self.decoder_net = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, size, size) in [0, 1] → μ, log σ² (N, latent_dim)."""
        h = self.encoder(x)
        return self.mu(h), self.logvar(h).clamp(-12, 6)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder_net(self.fc(z).view(len(z), self.top, 4, 4))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))  # (N, C, size, size) in [0, 1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterisation: gradients flow through μ, σ
        return self.decode_logits(z), mu, logvar


def vae_loss(model: ConvVAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, KL) per image: Bernoulli likelihood + β·KL(q(z|x) ‖ N(0, I))."""
    logits, mu, logvar = model(x)
    recon = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
    return recon + model.beta * kl, recon, kl


def gan_step(
    generator: Generator,
    critic: Discriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
) -> tuple[float, float]:
    """One round of the game: (critic loss, generator loss)."""
    bce = nn.functional.binary_cross_entropy_with_logits
    fake = generator(z)
    # 1. critic: real → 1 (smoothed to 0.9), generated → 0
    real_logits, fake_logits = critic(real), critic(fake.detach())
    d_loss = bce(real_logits, torch.full_like(real_logits, 0.9)) + bce(fake_logits, torch.zeros_like(fake_logits))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    # 2. generator: make the critic say "real"
    fake_logits = critic(fake)
    g_loss = bce(fake_logits, torch.ones_like(fake_logits))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()
