"""Device and dtype policy as pure functions: cuda > mps > cpu; fp32 on CPU; bf16 (else fp16) on GPU."""

from __future__ import annotations

import psutil
import torch


def pick_device(requested: str = "auto", *, cuda: bool | None = None, mps: bool | None = None) -> str:
    """The device to run on. ``cuda``/``mps`` say what is available (detected when None)."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    mps = (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()) if mps is None else mps
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda" and not cuda:
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
    if requested == "mps" and not mps:
        raise ValueError("--device mps was asked for, but Apple's MPS backend is not available")
    if requested not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {requested!r}: use auto, cpu, cuda or mps")
    return requested


def pick_dtype(device: str, *, bf16_supported: bool | None = None, override: str | None = None) -> torch.dtype:
    """fp32 on CPU (fp16 there is slow and lossy); bf16 on GPUs that have it, else fp16."""
    if override:
        names = {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }
        if override not in names:
            raise ValueError(f"unknown dtype {override!r}: use fp32, bf16 or fp16")
        return names[override]
    if device == "cpu":
        return torch.float32
    if device == "cuda":
        bf16 = torch.cuda.is_bf16_supported() if bf16_supported is None else bf16_supported
        return torch.bfloat16 if bf16 else torch.float16
    return torch.float16  # mps: bf16 support varies by macOS version


def default_budget_bytes(device: str, *, total_bytes: int | None = None) -> int:
    """How much the model cache may hold: 80 % of GPU memory on CUDA, half the RAM elsewhere."""
    if total_bytes is None:
        if device == "cuda":
            total_bytes = torch.cuda.get_device_properties(0).total_memory
        else:
            total_bytes = psutil.virtual_memory().total
    return int(total_bytes * (0.8 if device == "cuda" else 0.5))


def default_concurrency(device: str) -> int:
    """Heavy jobs at once: one on CPU (two would just halve each other's speed), two on a GPU."""
    return 2 if device == "cuda" else 1


def describe(device: str) -> str:
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return f"cuda ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    if device == "cpu":
        return f"cpu ({torch.get_num_threads()} threads, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM)"
    return device
