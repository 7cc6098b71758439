"""Grade the bundled DALL-E 2-style model with the renderer's own truth (training/scenes.py).

    python -m training.evaluate_unclip                    # weights/shapes-unclip(-prior) at its defaults
    python -m training.evaluate_unclip --prior P --decoder D  # exported folders, e.g. a run in progress:
        # python -m training.train_unclip --stage export --no-eval --prior-out P --decoder-out D
    python -m training.evaluate_unclip --out report.json  # also write the report

The same held-out prompts as training/evaluate_t2i.py: colour–shape pairs never seen in training,
and paraphrased templates. One image per prompt, each from its own seeded generator, through the
prior (caption → CLIP image embedding) and the decoder (embedding → MoVQ latents → pixels), loaded
the way the app loads them (shared/loaders.py). Each attribute the prompt states (shape, colour,
size, place) is checked; two-object prompts are reported per attribute and for their relation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from training.evaluate_t2i import grade

DEFAULTS = {
    "prior_num_inference_steps": 25,  # the prior pipeline's default
    "prior_guidance_scale": 4.0,
    "num_inference_steps": 50,  # DDPM, as Kandinsky 2.2 samples (the catalog entry of kandinsky-2.2 too)
    "guidance_scale": 2.0,  # chosen on --prompt-seed 5 (1–4 tried: 0.879 / 0.900 / 0.904 / 0.885 / 0.867 at 1, 1.5, 2, 3, 4)
    "scheduler": "DDPM",  # the decoder's own (Kandinsky 2.2 ships DDPM)
}


def load_bundled(prior_dir: Path | None = None, decoder_dir: Path | None = None):
    """The combined pipeline, through the app's loader (a catalog-style spec with a prior folder)."""
    from shared.catalog import ModelSpec
    from shared.loaders import WEIGHTS, load_text_to_image

    prior_dir, decoder_dir = prior_dir or WEIGHTS / "shapes-unclip-prior", decoder_dir or WEIGHTS / "shapes-unclip"
    spec = ModelSpec.unlisted(
        "shapes-unclip", "text-to-image", str(decoder_dir), "evaluation", recipe={"prior": (str(prior_dir), None)}
    )
    return load_text_to_image(spec, device="cpu", dtype=torch.float32, cache_dir=Path("/tmp")).pipe


def images_for(
    pipe, prompts: list[str], *, prior_num_inference_steps: int, prior_guidance_scale: float,
    num_inference_steps: int, guidance_scale: float, scheduler: str, seed: int = 0,
) -> list[np.ndarray]:  # fmt: skip
    """One 32×32 image per prompt, as uint8 arrays; prompt i always uses generator seed + i."""
    from shared.diffusion import make_scheduler, request_pipeline

    pipe = request_pipeline(pipe, make_scheduler(scheduler, pipe.scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    out = []
    for i in range(0, len(prompts), 40):
        batch = prompts[i : i + 40]
        generators = [torch.Generator().manual_seed(seed + i + j) for j in range(len(batch))]
        with torch.inference_mode():
            result = pipe(
                batch, prior_num_inference_steps=prior_num_inference_steps, prior_guidance_scale=prior_guidance_scale,
                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, width=32, height=32,
                generator=generators, output_type="np",
            )  # fmt: skip
        out += [(np.clip(im, 0, 1) * 255).round().astype(np.uint8) for im in result.images]
    return out


def evaluate(pipe, *, singles: int = 120, pairs: int = 40, prompt_seed: int = 1, **settings) -> dict:
    """Attribute accuracy on held-out prompts, graded as training/evaluate_t2i.py grades shapes-t2i."""
    settings = {**DEFAULTS, **settings}
    report = grade(lambda prompts: images_for(pipe, prompts, **settings), singles, pairs, prompt_seed)
    return {"settings": settings, **report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", type=Path, help="an exported prior folder (default: the bundled one)")
    parser.add_argument("--decoder", type=Path, help="an exported decoder folder (default: the bundled one)")
    parser.add_argument(
        "--prior-steps", dest="prior_num_inference_steps", type=int, default=DEFAULTS["prior_num_inference_steps"]
    )
    parser.add_argument(
        "--prior-guidance", dest="prior_guidance_scale", type=float, default=DEFAULTS["prior_guidance_scale"]
    )
    parser.add_argument("--steps", dest="num_inference_steps", type=int, default=DEFAULTS["num_inference_steps"])
    parser.add_argument("--guidance", dest="guidance_scale", type=float, default=DEFAULTS["guidance_scale"])
    parser.add_argument("--scheduler", default=DEFAULTS["scheduler"])
    parser.add_argument("--singles", type=int, default=120)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--prompt-seed", type=int, default=1, help="1 for the report; tune settings on another")
    parser.add_argument("--out", type=Path, help="write the JSON report here too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = load_bundled(args.prior, args.decoder)
    settings = {k: getattr(args, k) for k in DEFAULTS}
    report = evaluate(pipe, singles=args.singles, pairs=args.pairs, prompt_seed=args.prompt_seed, **settings)
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
