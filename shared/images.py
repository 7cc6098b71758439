"""Pictures in and out: opening untrusted uploads safely, enlarging small images, tiling grids."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image


def open_image(path_or_bytes: str | bytes, max_pixels: int) -> Image.Image:
    """Open an upload; ValueError if it is no image or has more than ``max_pixels`` pixels.

    The size is read from the header and checked before any pixel is decoded, so a decompression
    bomb (a few KB that decode to gigabytes) costs nothing. Pillow's own process-wide limit is
    left alone."""
    try:
        image = Image.open(io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes)
    except Image.DecompressionBombError:
        raise ValueError(f"That image is too large to open safely (limit {max_pixels:,} pixels).") from None
    except (OSError, SyntaxError, ValueError):
        raise ValueError("That file is not an image Pillow can read (corrupt or unsupported).") from None
    if image.width * image.height > max_pixels:
        image.close()
        raise ValueError(
            f"That image is too large to open safely: {image.width}×{image.height}, limit {max_pixels:,} pixels."
        )
    try:
        image.load()
    except Image.DecompressionBombError:
        raise ValueError(f"That image is too large to open safely (limit {max_pixels:,} pixels).") from None
    except (OSError, SyntaxError, ValueError):
        raise ValueError("That file is not an image Pillow can read (corrupt or unsupported).") from None
    return image


def enlarge(pixels: np.ndarray | Image.Image, px: int) -> Image.Image:
    """Small images scaled up by whole pixels (crisp), to at least ``px`` on the longer side; big ones as they are."""
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    factor = max(1, px // max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST) if factor > 1 else image


def grid_image(images: torch.Tensor, columns: int, px: int = 64, gap: int = 2) -> Image.Image:
    """(N, C, H, W) in [0, 1] → one picture, `columns` per row, each image scaled to px."""
    n = len(images)
    rows = max(1, math.ceil(n / columns))
    canvas = Image.new("RGB", (columns * (px + gap) + gap, rows * (px + gap) + gap), (40, 40, 40))
    for i, image in enumerate(images):
        array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        tile = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).resize((px, px), Image.NEAREST)
        canvas.paste(tile, (gap + (i % columns) * (px + gap), gap + (i // columns) * (px + gap)))
    return canvas


def gif_bytes(images: torch.Tensor, px: int = 128, ms: int = 120) -> bytes:
    """(N, C, H, W) in [0, 1] → an animated GIF that plays there and back."""
    frames = [grid_image(image[None], 1, px, 0) for image in images]
    frames += frames[-2:0:-1]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=ms, loop=0)
    return buffer.getvalue()
