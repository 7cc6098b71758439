"""Checks for untrusted numbers from the UI, the API or a file: a clear ValueError, never a crash."""

from __future__ import annotations

import math


def check_int(name: str, value: object, low: int, high: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise ValueError(f"{name} must be a whole number, got {str(value)[:40]!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:,} and {high:,}, got {int(value):,}.")
    return int(value)


def check_float(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {str(value)[:40]!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value:g}.")
    return float(value)
