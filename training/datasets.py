"""Datasets the latent models train on: scikit-learn's handwritten digits (shipped inside the
package) and a procedural shapes set whose factors are known."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SPLIT_SEED = 0  # the same split for the models and for the tests' independent classifier


def digits(size: int = 16) -> dict[str, torch.Tensor]:
    """8×8 digits scaled to [0, 1] and resized to size×size: train/test images (N, 1, size, size) and labels."""
    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32)[:, None]
    if size != 8:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.tensor(data.target)
    idx_train, idx_test = train_test_split(np.arange(len(x)), test_size=0.25, random_state=SPLIT_SEED, stratify=y)
    return {"x_train": x[idx_train], "y_train": y[idx_train], "x_test": x[idx_test], "y_test": y[idx_test]}
