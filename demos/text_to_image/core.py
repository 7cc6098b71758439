"""What one generation leaves: its steps as the denoiser saw them, and the run itself. Plain data
that every part of the tab reads (views, the step debugger, the share snapshot) and the generation
writes."""

from __future__ import annotations

import dataclasses

import torch
from PIL import Image

from demos.text_to_image.recipe import Recipe


@dataclasses.dataclass
class StepRecord:
    """One denoising step of the first image: all tensors are latents (C, h, w) on the CPU."""

    index: int
    timestep: float
    alpha_bar: float | None
    x_t: torch.Tensor  # the model's input, in variance-preserving form (√ᾱ·x₀ + √(1−ᾱ)·ε)
    eps: torch.Tensor  # the noise prediction the scheduler used (guided)
    x0: torch.Tensor | None  # the clean image this prediction implies
    eps_uncond: torch.Tensor | None = None
    eps_cond: torch.Tensor | None = None


@dataclasses.dataclass
class Run:
    recipe: Recipe
    images: list[Image.Image]
    steps: list[StepRecord]
    seconds: float
    notices: list[str]
    stopped: bool = False
    steps_done: int = 0  # denoising steps it really took (all of them, unless it was stopped)
