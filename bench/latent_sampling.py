"""Latent sampling speed: a 64-sample grid per bundled model, and one training-lab step.

    python bench/latent_sampling.py [--rounds 20]

For the grid, the tab's whole handler (validate, sample and decode on a model worker, compose the
picture) is set against the bare decode of the same latents, in the same run: ratios, not absolute
times. A training-lab step is timed as the lab's loop runs it: on a model worker.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from demos.latent import lab as training_lab  # noqa: E402
from demos.latent import sampling as ls  # noqa: E402
from shared import compute, runtime  # noqa: E402
from shared.settings import Settings  # noqa: E402


def timed(fn, rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    runtime.configure(Settings(preload=False))
    print(f"device: {runtime.get().device}, torch threads: {torch.get_num_threads()}")
    for key in ("digits-gan", "digits-vae", "shapes-gan", "shapes-vae"):
        lm = runtime.latent_model(key)
        z = ls.sample_z(lm.latent_dim, 64, seed=0)
        bare = timed(lambda lm=lm, z=z: ls.decode(lm, z), args.rounds)
        full = timed(lambda key=key: ls.sample_grid(key, 0, 64, 1.0, 1.0), args.rounds)
        print(
            f"{key}: 64-sample grid {full * 1000:.1f} ms (bare decode {bare * 1000:.1f} ms, ratio {full / bare:.1f}x)"
        )
    for kind in ("vae", "gan"):
        run = training_lab.TrainingRun(kind)
        per_step = timed(lambda run=run: compute.run(run.step), args.rounds)
        print(f"training lab, {kind}: {per_step * 1000:.1f} ms per step (batch {training_lab.LAB_BATCH})")


if __name__ == "__main__":
    main()
