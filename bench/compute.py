"""Where model work runs: each tab's handler with its torch work on the model worker (shared.compute,
the app's way) against the old way (in the request's own thread, and a new thread per chat reply).

    python bench/compute.py [--rounds 9] [--callers 8]

Requests come from a pool of ``--callers`` long-lived threads, as Gradio hands requests to its
thread pool, so in the old way several threads end up running torch ops and each keeps a GNU
OpenMP team. Each mode lives in its own process (a team lives as long as its thread, so the
two can't share one), both started at once; the parent asks them in turn, one call at a time, so
they never compete for the cores. Each round runs a handler once per mode, alternating which
goes first; the report is the median over rounds of worker time ÷ old time (below 1 = the worker
is faster). Bundled models on this machine's CPU, same run, same inputs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from demos.attention import ui as attention
from demos.chat import ui as chat
from demos.latent import sampling as latent_sampling
from demos.text_to_image import ui as text_to_image  # noqa: E402
from shared import compute, runtime  # noqa: E402
from shared.settings import Settings  # noqa: E402

TEXT = "The cat sat on the mat because it was tired. It slept all afternoon."


def handlers() -> dict:
    """One call of each tab's handler, as its button or endpoint makes it."""
    return {
        "chat (reply, 24 tokens)": lambda: list(
            chat.chat("What is a GAN?", [], "", 0.0, 0.9, 50, 24, 1.1, 0, "smollm2-135m-instruct")
        ),
        "attention (Show attention)": lambda: attention.run("smollm2-135m-instruct", TEXT, 0, 0, 0, 1.0, 0, 1.0),
        "latent (64-sample grid)": lambda: latent_sampling.sample_grid("shapes-vae", 0, 64, 1.0, 1.0),
        "text-to-image (4 images)": lambda: list(
            text_to_image.text_to_image("a large red circle at the top", model="shapes-t2i", num_images_per_prompt=4)
        ),
    }


def child(mode: str, callers: int) -> None:
    """One process per mode (an OpenMP team, once made, lives as long as its thread, so the two ways
    can't share a process). Reads handler names from stdin, runs each, prints its seconds."""
    rt = runtime.configure(Settings(preload=False))
    compute.configure(rt.concurrency, inline=mode == "old")
    pool = ThreadPoolExecutor(callers, thread_name_prefix="request")
    calls = handlers()
    for fn in calls.values():  # warm up: load every model
        pool.submit(fn).result()
    # A busy app has requests in flight at once, so several request threads run handlers.
    list(pool.map(lambda _: calls["latent (64-sample grid)"](), range(callers)))
    print("ready", flush=True)
    for line in sys.stdin:
        fn = calls[line.strip()]
        start = time.perf_counter()
        pool.submit(fn).result()
        print(f"seconds {time.perf_counter() - start:.6f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--child", choices=("old", "worker"))
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.callers)
    import subprocess

    print(f"torch threads {torch.get_num_threads()}, request threads {args.callers}, rounds {args.rounds}")
    children = {
        mode: subprocess.Popen(
            [sys.executable, __file__, "--child", mode, "--callers", str(args.callers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for mode in ("old", "worker")
    }

    def answer(proc, prefix: str) -> str:
        """The child's next line that starts with ``prefix`` (libraries may print other lines)."""
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("a child process ended early")
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    for proc in children.values():
        answer(proc, "ready")

    def timed(mode: str, name: str) -> float:
        proc = children[mode]
        proc.stdin.write(name + "\n")
        proc.stdin.flush()
        return float(answer(proc, "seconds "))

    print("| handler | old way | model worker | worker ÷ old |")
    print("|---|---|---|---|")
    for name in handlers():
        old, new, ratios = [], [], []
        for i in range(args.rounds):
            order = ("old", "worker") if i % 2 == 0 else ("worker", "old")
            times = {mode: timed(mode, name) for mode in order}
            old.append(times["old"])
            new.append(times["worker"])
            ratios.append(times["worker"] / times["old"])
        print(
            f"| {name} | {statistics.median(old) * 1000:,.0f} ms | {statistics.median(new) * 1000:,.0f} ms "
            f"| {statistics.median(ratios):.2f} |"
        )
    for proc in children.values():
        proc.stdin.close()
        proc.wait(30)


if __name__ == "__main__":
    main()
