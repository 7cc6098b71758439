"""The Latent sampling tab's files to download: each sample of the grid on screen as a PNG enlarged
by nearest neighbour (its pixels stay sharp) and named by model, seed and index, in one zip; and the
walks' GIFs, named by model and ends. All in the app's swept scratch folder.

The zip is made from the grid the Samples tab shows (kept by key, under a byte budget, in
``shared.results``), never drawn again: what you download is what you saw, even from a lab model
that went on training.
"""

from __future__ import annotations

import io
import zipfile

import torch

from demos.glue import user_error
from shared import scratch
from shared.images import gif_bytes, grid_image
from shared.results import ResultStore

DOWNLOAD_PX = 256  # each sample's PNG, square (16 or 8 pixels of ours per model pixel)
SHOWN_BYTES = 64 * 2**20  # every session's last grid together (the largest, 64 colour samples, ~0.8 MiB)

_shown = ResultStore(max_bytes=SHOWN_BYTES)  # key (in the page's gr.State) → (name, seed, images)


def png_bytes(image: torch.Tensor, px: int = DOWNLOAD_PX) -> bytes:
    """One image (C, H, W) in [0, 1] as a px × px PNG, enlarged by nearest neighbour."""
    buffer = io.BytesIO()
    grid_image(image[None], columns=1, px=px, gap=0).save(buffer, format="PNG")
    return buffer.getvalue()


def png_name(name: str, seed: int, index: int) -> str:
    """ "digits-gan_seed3_07.png": the model, the seed, the index of its latent (its row in /sample_latents)."""
    return f"{name}_seed{seed}_{index:02d}.png"


def samples_zip(images: torch.Tensor, name: str, seed: int) -> str:
    """Each sample as a DOWNLOAD_PX PNG named by ``png_name``, in one zip: its path."""
    path = scratch.folder("samples") / f"{name}_seed{seed}_{len(images)}-samples.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i, image in enumerate(images):
            archive.writestr(png_name(name, seed, i), png_bytes(image))
    return str(path)


def walk_gifs(straight: torch.Tensor, curved: torch.Tensor, stem: str) -> list[str]:
    """The two walks' frames as GIFs that play there and back: ``<stem>_lerp.gif``, ``<stem>_slerp.gif``."""
    folder = scratch.folder("interpolation")
    paths = [folder / f"{stem}_lerp.gif", folder / f"{stem}_slerp.gif"]
    for path, frames in zip(paths, (straight, curved), strict=True):
        path.write_bytes(gif_bytes(frames))
    return [str(path) for path in paths]


def keep_shown(images: torch.Tensor, name: str, seed: int) -> str:
    """Keep the grid the Samples tab is about to show, for its download: the key."""
    return _shown.put((name, seed, images), images.numel() * images.element_size())


# --- Gradio glue ---------------------------------------------------------------------------------


def sample_download(key: str | None) -> str | None:
    """After each Sample: the grid on screen as a zip of enlarged, named PNGs (nothing before a grid)."""
    if key is None:
        return None
    try:
        name, seed, images = _shown.get(key, "That sample grid")
        return samples_zip(images, name, seed)
    except Exception as exc:
        raise user_error(exc, "Preparing the download") from None
