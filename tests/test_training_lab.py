"""The live training lab: real steps on the digits, on a fixed seed; the worker thread's life."""

import threading
import time

import torch

from demos.latent_sampling import TrainingRun


def test_vae_loss_goes_down():
    run = TrainingRun("vae", seed=0)
    for _ in range(150):
        run.step()
    losses = [h["loss"] for h in run.history]
    assert sum(losses[-20:]) / 20 < 0.8 * sum(losses[:20]) / 20
    assert run.samples().shape == (16, 1, 16, 16)
    assert set(run.loss_frame()["curve"]) == {"loss", "reconstruction", "KL"}


def test_gan_steps_change_its_samples_and_are_reproducible():
    def train(seed: int) -> TrainingRun:
        run = TrainingRun("gan", seed=seed)
        for _ in range(20):
            run.step()
        return run

    before = TrainingRun("gan", seed=1).samples()
    a, b = train(1), train(1)  # one after the other: dropout draws from torch's global generator
    assert not torch.allclose(before, a.samples())
    assert torch.equal(a.samples(), b.samples())
    assert {"discriminator", "generator"} <= set(a.history[-1])


def _lab_threads():
    return [t for t in threading.enumerate() if t.name == "training-lab" and t.is_alive()]


def test_start_pause_stop_frees_the_worker():
    run = TrainingRun("vae")
    run.start()
    deadline = time.time() + 20
    while run.steps < 5 and time.time() < deadline:
        time.sleep(0.05)
    assert run.steps >= 5 and _lab_threads()
    run.pause()
    time.sleep(0.3)
    paused_at = run.steps
    time.sleep(0.5)
    assert run.steps == paused_at and not run.running
    run.stop()
    assert not _lab_threads()
