"""Redraw the README's traversal pictures from the bundled VAEs, with the app's own view
(``demos.latent.traversal_picture``): each VAE's four most used dimensions, turned from
−2.5σ to +2.5σ around the origin, labelled with what each follows.

    python -m docs.make_pictures        # or: python docs/make_pictures.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, the repository's packages are importable too

import torch  # noqa: E402

from demos.latent import sampling as latent_sampling  # noqa: E402
from shared import catalog  # noqa: E402
from shared.loaders import load_latent_model  # noqa: E402

PICTURES = {"shapes-traversal.png": "shapes-vae", "digits-traversal.png": "digits-vae"}  # file → model
ROWS = 4  # dimensions per picture


def main() -> None:
    for name, key in PICTURES.items():
        # bundled weights on the CPU in fp32, as the app runs them there: the same picture on any machine
        lm = load_latent_model(catalog.CATALOG[key], device="cpu", dtype=torch.float32, cache_dir=None)
        path = ROOT / "docs" / name
        latent_sampling.traversal_picture(lm, rows=ROWS).save(path)
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
