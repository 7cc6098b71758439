"""Text-to-image speed: the tab's whole handler, with live previews, against a bare pipeline call.

    python bench/text_to_image.py [--rounds 7] [--model shapes-t2i]

Both sides use the same cached pipeline, and both run their torch work on the tab's worker thread,, prompt, seed, steps, guidance, scheduler, size and count.
The bare side is one stock diffusers call (output_type="pil") on that thread. The tab side is ``generate_ui``, the
Generate button's handler, consumed to the end: validation, a per-request scheduler and pipeline
object, the step recorder, live previews (at the app's 0.2 s cadence), PNGs with their recipe, the
schedule and guidance plots and the anatomy table. Pairs run back to back and alternate order; the
median of the per-pair ratios is reported (this machine is noisy, so ratios, not absolute times).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from demos import text_to_image as t2i  # noqa: E402
from shared import runtime  # noqa: E402
from shared.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--model", default="shapes-t2i")
    parser.add_argument("--prompt", default="a large red circle at the top")
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args()
    runtime.configure(Settings(preload=False))
    entry = t2i.on_worker(runtime.text_to_image, args.model).result()
    r = t2i.recommended(args.model)
    settings = [args.model, args.prompt, "", 0, r["steps"], r["guidance_scale"], r["scheduler"]]
    settings += [r["width"], r["height"], args.count]

    def bare_call() -> None:
        pipe = entry.pipe
        pipe.scheduler = t2i.make_scheduler(r["scheduler"], pipe.scheduler.config)
        generators = [torch.Generator().manual_seed(i) for i in range(args.count)]
        with torch.inference_mode():
            pipe(
                args.prompt, num_inference_steps=r["steps"], guidance_scale=r["guidance_scale"], width=r["width"],
                height=r["height"], num_images_per_prompt=args.count, generator=generators, output_type="pil",
            )  # fmt: skip

    def bare() -> None:  # on the tab's worker thread, like the tab's own torch work (see on_worker)
        t2i.on_worker(bare_call).result()

    previews = []

    def tab() -> None:
        updates = list(t2i.generate_ui(*settings, request=None, progress=lambda *a, **k: None))
        previews.append(len(updates) - 1)

    bare(), tab()  # warm-up
    ratios, bare_s, tab_s = [], [], []
    for i in range(args.rounds):
        order = (bare, tab) if i % 2 == 0 else (tab, bare)
        times = {}
        for fn in order:
            start = time.perf_counter()
            fn()
            times[fn] = time.perf_counter() - start
        bare_s.append(times[bare]), tab_s.append(times[tab])
        ratios.append(times[tab] / times[bare])
    print(f"device: {runtime.get().device}, torch threads: {torch.get_num_threads()}, model: {args.model}")
    print(
        f"{args.count} images, {r['steps']} steps, {r['scheduler']}, w = {r['guidance_scale']:g}, "
        f"{r['width']}×{r['height']}: bare pipeline {statistics.median(bare_s):.3f} s, "
        f"tab with previews {statistics.median(tab_s):.3f} s ({statistics.median(previews[1:])} previews), "
        f"ratio {statistics.median(ratios):.3f} (median of {args.rounds} pairs)"
    )


if __name__ == "__main__":
    main()
