"""Interactive work while a long image job runs: chat's first token and an attention result, in
three queue designs, alternating in one run.

    python bench/interactive_latency.py [--rounds 3] [--image-steps 150] [--images 8]

Starts the app in-process on the bundled models. Each round, for each design, starts a long
``/text_to_image`` job and, a second later, sends a ``/chat`` message and an ``/attention``
request through gradio_client, timing from the moment each was sent:

- ``shared``: the old design: chat and attention in the image job's concurrency group, one worker;
- ``lanes``: their own group and a model worker of their own (two torch threads share the cores;
  the app's way on a GPU);
- ``lanes+preempt`` (the app's default on a CPU): their own group, and the one model worker runs
  them first: between the image job's denoising steps.

Reports medians: chat time to first token from Send, attention latency, and how much longer the
image job took than alone (the price of letting chat in). Ratios against the same run's idle figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402

import app as app_module  # noqa: E402
from demos import glue  # noqa: E402
from shared import compute, runtime  # noqa: E402
from shared.settings import Settings  # noqa: E402

DESIGNS = {"shared": (False, False), "lanes": (True, False), "lanes+preempt": (True, True)}
CHAT = dict(message="What is a GAN?", temperature=0.0, max_new_tokens=24, api_name="/chat")
ATTENTION = dict(text="The cat sat on the mat because it was tired.", api_name="/attention")


def use(demo, design: str) -> None:
    """Switch the running app to a design: the interactive events' group, the compute lanes."""
    lanes, preempt = DESIGNS[design]
    for fn in demo.fns.values():
        if fn.concurrency_id in glue.MODEL_GROUPS and getattr(fn.fn, "__module__", "").startswith(
            ("demos.chat", "demos.attention")
        ):
            fn.concurrency_id = glue.INTERACTIVE if lanes else glue.HEAVY
    compute.configure(runtime.get().concurrency, lanes=lanes, preempt=preempt)


def first_output(client: Client, **call) -> tuple[float, float]:
    """(seconds to the first streamed output, seconds to the end), from the moment it was sent."""
    start = time.perf_counter()
    job = client.submit(**call)
    first = None
    while not job.done():
        if first is None and job.outputs():
            first = time.perf_counter() - start
        time.sleep(0.01)
    job.result()
    end = time.perf_counter() - start
    return (first if first is not None else end), end


def image_job(client: Client, steps: int, images: int) -> float:
    start = time.perf_counter()
    client.predict(
        prompt="a red circle above a blue square",
        model="shapes-t2i",
        seed=0,
        num_inference_steps=steps,
        num_images_per_prompt=images,
        api_name="/text_to_image",
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image-steps", type=int, default=150)
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    runtime.configure(Settings(preload=False, stream_interval=0.0, max_jobs_per_visitor=0))
    demo = app_module.build_app()
    app_module.launch(demo, runtime.get().settings, prevent_thread_lock=True, quiet=True)
    client = Client(demo.local_url, verbose=False)
    images = dict(steps=args.image_steps, images=args.images)

    use(demo, "shared")  # the baselines on one torch thread, as the old design ran everything
    alone_chat = [first_output(client, **CHAT)[0] for _ in range(3)][1:]  # the first one loads the model
    alone_attention = [first_output(client, **ATTENTION)[1] for _ in range(3)][1:]
    alone_image = [image_job(client, **images) for _ in range(2)][1:]
    print(f"alone: chat first token {statistics.median(alone_chat):.2f} s, attention "
          f"{statistics.median(alone_attention):.2f} s, image job {statistics.median(alone_image):.1f} s")  # fmt: skip

    rows: dict[str, dict[str, list[float]]] = {d: {"chat": [], "attention": [], "image": []} for d in DESIGNS}
    for round_ in range(args.rounds):
        for design in DESIGNS if round_ % 2 == 0 else reversed(DESIGNS):
            use(demo, design)
            took: list[float] = []
            long = threading.Thread(target=lambda out=took: out.append(image_job(client, **images)))
            long.start()
            time.sleep(1.0)
            rows[design]["chat"].append(first_output(client, **CHAT)[0])
            rows[design]["attention"].append(first_output(client, **ATTENTION)[1])
            long.join()
            rows[design]["image"].append(took[0])
            print(f"round {round_ + 1} {design:14} chat first token {rows[design]['chat'][-1]:6.2f} s · attention "
                  f"{rows[design]['attention'][-1]:6.2f} s · image job {took[0]:5.1f} s", flush=True)  # fmt: skip
    use(demo, "lanes+preempt")

    chat0, att0, image0 = (statistics.median(v) for v in (alone_chat, alone_attention, alone_image))
    print(f"\n{args.rounds} rounds; image job: {args.images} images × {args.image_steps} steps on shapes-t2i\n")
    print("| design | chat: Send → first token | attention result | image job ÷ alone |\n|---|---|---|---|")
    print(f"| nothing else running | {chat0:.2f} s | {att0:.2f} s | 1.00 |")
    for design, row in rows.items():
        chat, att, image = (statistics.median(v) for v in (row["chat"], row["attention"], row["image"]))
        print(f"| {design} | {chat:.2f} s | {att:.2f} s | {image / image0:.2f} |")
    demo.close()


if __name__ == "__main__":
    main()
