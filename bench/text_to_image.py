"""Text-to-image speed: the tab's whole handler, with live previews, against a bare pipeline call.

    python bench/text_to_image.py [--rounds 7] [--model shapes-t2i] [--num-images-per-prompt 4]

Both sides use the same cached pipeline and the same settings (prompt, seed, num_inference_steps,
guidance_scale, scheduler, size and num_images_per_prompt), and both run their torch work on the
model worker (``shared.compute``). The bare side is one stock diffusers call (output_type="pil") on
that worker. The tab side is ``generate_ui``, the Generate button's handler, consumed to the end:
validation, a per-request scheduler and pipeline object, the step recorder, live previews (at the
app's 0.2 s cadence), PNGs with their recipe, the schedule and guidance plots and the anatomy
table. Pairs run back to back and alternate order; the median of the per-pair ratios is reported
(this machine is noisy, so ratios, not absolute times), of wall time and of the process's CPU time
(all threads), which a shared VM disturbs less.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from demos.text_to_image import recipe as t2i_recipe
from demos.text_to_image import ui as t2i_ui  # noqa: E402
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
    r = t2i_recipe.recommended(args.model)
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

    updates = []

    def tab() -> None:
        updates.append(len(list(t2i_ui.generate_ui(*settings, request=None, progress=lambda *a, **k: None))) - 1)

    bare(), tab()  # warm-up
    wall: dict = {bare: [], tab: []}
    cpu: dict = {bare: [], tab: []}  # process CPU time, all threads: steadier than wall time on a shared VM
    for i in range(args.rounds):
        for fn in (bare, tab) if i % 2 == 0 else (tab, bare):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[fn].append(time.perf_counter() - start), cpu[fn].append(time.process_time() - start_cpu)

    def ratio(times: dict) -> str:
        ratios = [t / b for t, b in zip(times[tab], times[bare], strict=True)]
        low, _, high = statistics.quantiles(ratios, n=4)
        return f"{statistics.median(ratios):.3f} (quartiles {low:.3f}–{high:.3f})"

    print(f"device: {runtime.get().device}, torch threads: {torch.get_num_threads()}, model: {args.model}")
    print(
        f"{n} images, {r['num_inference_steps']} steps, {r['scheduler']}, guidance_scale {r['guidance_scale']:g}, "
        f"{r['width']}×{r['height']}: bare pipeline {statistics.median(wall[bare]):.3f} s, "
        f"tab {statistics.median(wall[tab]):.3f} s ({statistics.median(updates[1:])} streamed updates); "
        f"tab ÷ bare, median of {args.rounds} pairs: wall time {ratio(wall)}, CPU time {ratio(cpu)}"
    )


if __name__ == "__main__":
    main()
