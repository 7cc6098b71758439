"""Train the bundled GANs and VAEs. Reproducible (fixed seeds), resumable, minutes on 2 CPU cores.

    python -m training.train_latent --model gan --steps 8000     # → weights/digits-gan/
    python -m training.train_latent --model vae --steps 8000     # → weights/digits-vae/
    python -m training.train_latent --dataset shapes --model vae --beta 4 --steps 6000   # → weights/shapes-vae/
    python -m training.train_latent --dataset shapes --model gan --steps 3000 --critic-width 32 --critic-lr 1e-4

A checkpoint (model + optimiser state, step, loss history) is written every --every steps to
training/checkpoints/ and picked up again if the run is restarted; the final weights are saved
with ``save_pretrained`` (safetensors + config.json) for the app to load.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from shared.latent_models import ConvVAE, Discriminator, Generator, gan_step, vae_loss
from training.datasets import digits, shapes

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "training" / "checkpoints"


def batches(x: torch.Tensor, batch_size: int, generator: torch.Generator):
    while True:
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x) - batch_size + 1, batch_size):
            yield x[order[i : i + batch_size]]


def jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to one pixel: more variety from 1,347 training digits."""
    dx, dy = torch.randint(-1, 2, (2,), generator=generator).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def train_gan(
    x: torch.Tensor,
    steps: int,
    state: dict,
    seed: int,
    log,
    shift: bool = True,
    critic_width: int = 64,
    critic_lr: float = 2e-4,
) -> Generator:
    g = torch.Generator().manual_seed(seed)
    channels, size = x.shape[1], x.shape[-1]
    generator = Generator(latent_dim=32, channels=channels, size=size)
    critic = Discriminator(channels, size, width=critic_width)
    opt_g = torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), critic_lr, betas=(0.5, 0.999))
    if state:
        generator.load_state_dict(state["generator"]), critic.load_state_dict(state["critic"])
        opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
        g.set_state(state["rng"])
    data = batches(x, 64, g)
    for step in range(state.get("step", 0), steps):
        real = jitter(next(data), g) if shift else next(data)
        d_loss, g_loss = gan_step(
            generator, critic, opt_g, opt_d, real, torch.randn(len(real), generator.latent_dim, generator=g)
        )
        if log(step, {"d_loss": d_loss, "g_loss": g_loss}):
            yield {
                "generator": generator.state_dict(),
                "critic": critic.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "rng": g.get_state(),
                "step": step + 1,
            }
    return generator


def train_vae(
    x: torch.Tensor, steps: int, state: dict, seed: int, log, beta: float, latent_dim: int = 8, shift: bool = True
):
    g = torch.Generator().manual_seed(seed)
    vae = ConvVAE(latent_dim=latent_dim, channels=x.shape[1], size=x.shape[-1], beta=beta)
    opt = torch.optim.Adam(vae.parameters(), 1e-3)
    if state:
        vae.load_state_dict(state["vae"]), opt.load_state_dict(state["opt"]), g.set_state(state["rng"])
    data = batches(x, 64, g)
    for step in range(state.get("step", 0), steps):
        torch.manual_seed(seed + step)  # the reparameterisation noise
        loss, recon, kl = vae_loss(vae, jitter(next(data), g) if shift else next(data))
        opt.zero_grad(), loss.backward(), opt.step()
        if log(step, {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}):
            yield {"vae": vae.state_dict(), "opt": opt.state_dict(), "rng": g.get_state(), "step": step + 1}
    return vae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["gan", "vae"], required=True)
    parser.add_argument("--dataset", choices=["digits", "shapes"], default="digits")
    parser.add_argument("--critic-width", type=int, default=64, help="GAN only: a weaker critic keeps the game even")
    parser.add_argument("--critic-lr", type=float, default=2e-4, help="GAN only")
    parser.add_argument("--latent-dim", type=int, default=None, help="VAE only (default 8 digits, 10 shapes)")
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--beta", type=float, default=1.0, help="VAE only: weight of the KL term")
    parser.add_argument("--every", type=int, default=500, help="checkpoint every this many steps")
    parser.add_argument("--out", type=Path, help="default: weights/digits-<model>")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    out = args.out or ROOT / "weights" / f"{args.dataset}-{args.model}"
    name = out.name
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    checkpoint = CHECKPOINTS / f"{name}.pt"
    state = torch.load(checkpoint, weights_only=True) if checkpoint.exists() else {}
    history: list[dict] = state.get("history", [])
    if state:
        print(f"resuming {name} at step {state['step']}")
    start = time.time()

    def log(step: int, values: dict) -> bool:
        if step % 50 == 0:
            history.append({"step": step, **{k: round(v, 5) for k, v in values.items()}})
        if step % 500 == 0:
            print(f"{name} step {step}/{args.steps} {values} {time.time() - start:.0f}s", flush=True)
        return (step + 1) % args.every == 0

    is_digits = args.dataset == "digits"
    x = digits()["x_train"] if is_digits else shapes()["x_train"]
    if args.model == "gan":
        run = train_gan(x, args.steps, state, args.seed, log, is_digits, args.critic_width, args.critic_lr)
    else:
        latent_dim = args.latent_dim or (8 if is_digits else 10)
        run = train_vae(x, args.steps, state, args.seed, log, args.beta, latent_dim, shift=is_digits)
    try:
        while True:
            snapshot = next(run)
            torch.save({**snapshot, "history": history}, checkpoint)
    except StopIteration as done:
        model = done.value
    model.eval()
    model.save_pretrained(out)
    (out / "training.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "history": history}, indent=1)
    )
    print(f"saved {out} after {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
