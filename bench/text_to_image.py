"""Text-to-image speed: the tab's whole handler, with live previews, against a bare pipeline call.

    python bench/text_to_image.py [--rounds 7] [--model shapes-t2i] [--num-images-per-prompt 4]

Both sides use the same cached pipeline and the same settings (prompt, seed, num_inference_steps,
guidance_scale, scheduler, size and num_images_per_prompt), and both run their torch work on the
model worker (``shared.compute``). The bare side is one stock diffusers call (output_type="pil") on
that worker. The tab side is ``generate_ui``, the Generate button's handler, consumed to the end:
validation, a per-request scheduler and pipeline object, the step recorder, live previews (at the
app's 0.2 s cadence), PNGs with their recipe, the schedule and guidance plots and the anatomy
table. Pairs run back to back and alternate order; the median of the per-pair ratios is reported
(this machine is noisy, so ratios, not absolute times).
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
from shared import compute, runtime  # noqa: E402
from shared.diffusion import make_scheduler  # noqa: E402
from shared.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--model", default="shapes-t2i")
    parser.add_argument("--prompt", default="a large red circle at the top")
    parser.add_argument("--num-images-per-prompt", "--count", dest="num_images_per_prompt", type=int, default=4)
    args = parser.parse_args()
    runtime.configure(Settings(preload=False))
    entry = compute.run(runtime.text_to_image, args.model)
    r = t2i.recommended(args.model)
    n = args.num_images_per_prompt
    settings = [args.model, args.prompt, "", 0, r["num_inference_steps"], r["guidance_scale"], r["scheduler"]]
    settings += [r["width"], r["height"], n]

    def bare_call() -> None:
        pipe = entry.pipe
        pipe.scheduler = make_scheduler(r["scheduler"], pipe.scheduler.config)
        generators = [torch.Generator().manual_seed(i) for i in range(n)]
        with torch.inference_mode():
            pipe(
                args.prompt, num_inference_steps=r["num_inference_steps"], guidance_scale=r["guidance_scale"],
                width=r["width"], height=r["height"], num_images_per_prompt=n, generator=generators,
                output_type="pil",
            )  # fmt: skip

    def bare() -> None:  # on the model worker, like the tab's own torch work
        compute.run(bare_call)

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
        f"{n} images, {r['num_inference_steps']} steps, {r['scheduler']}, guidance_scale {r['guidance_scale']:g}, "
        f"{r['width']}×{r['height']}: bare pipeline {statistics.median(bare_s):.3f} s, "
        f"tab with previews {statistics.median(tab_s):.3f} s ({statistics.median(previews[1:])} previews), "
        f"ratio {statistics.median(ratios):.3f} (median of {args.rounds} pairs)"
    )


if __name__ == "__main__":
    main()
