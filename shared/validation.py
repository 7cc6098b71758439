"""The one rule for untrusted numbers, from the UI, the API or a file: a clear ValueError, never a crash.

Every tab checks its numbers here, so the same input gets the same answer everywhere:
- numbers (``int``, ``float``) and numeric strings (``"0.5"``, ``" 7 "``) are read; ``True`` /
  ``False``, ``None``, lists and anything else are refused;
- NaN and ±infinity are refused, and so are integers too large for a float (a 400-digit JSON
  number), without ever converting them (``float(10**400)`` raises ``OverflowError``);
- a whole number is asked for where one is meant: ``2.5`` steps is refused, never truncated;
- bounds are inclusive and named in the message.
"""

from __future__ import annotations

import math

MAX_SEED = 2**32 - 1  # seeds are 32-bit everywhere (numpy's and most tools' range)
MAX_NUMBER_CHARS = 64  # a numeric string longer than this is not a number anyone typed


def _shown(value: object) -> str:
    """A value for a message: short, and safe for huge integers (formatting one as %g overflows)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"a {len(str(abs(value)))}-digit number"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)[:40]


def _read(name: str, value: object) -> int | float:
    """A number from an int, a float or a numeric string; ValueError for anything else."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be a number, got {_shown(value)}.")
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > MAX_NUMBER_CHARS:
            raise ValueError(f"{name} must be a number, got {_shown(value)}.")
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {_shown(value)}.") from None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {_shown(value)}.")
        return value
    raise ValueError(f"{name} must be a number, got {type(value).__name__}.")


def check_number(name: str, value: object, low: float, high: float, *, integer: bool = False) -> int | float:
    """``value`` read by the rule above, a whole number if ``integer``, within [low, high]."""
    number = _read(name, value)
    if integer and isinstance(number, float):
        if not number.is_integer():
            raise ValueError(f"{name} must be a whole number, got {_shown(number)}.")
        number = int(number)
    if not low <= number <= high:  # int against int or float: exact, never overflows
        bounds = f"{low:,} and {high:,}" if integer else f"{low:g} and {high:g}"
        raise ValueError(f"{name} must be between {bounds}, got {_shown(number)}.")
    return number if integer else float(number)


def check_int(name: str, value: object, low: int, high: int) -> int:
    return int(check_number(name, value, low, high, integer=True))


def check_float(name: str, value: object, low: float, high: float) -> float:
    return float(check_number(name, value, low, high))


def check_seed(value: object, *, name: str = "seed", random_ok: bool = False) -> int:
    """A seed from 0 to MAX_SEED; with ``random_ok``, -1 too (meaning: draw one)."""
    return check_int(name, value, -1 if random_ok else 0, MAX_SEED)


def check_choice(name: str, value: object, choices) -> str:
    """One of ``choices`` (strings), or a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"Unknown {name} {_shown(value)}. Pick one of: {', '.join(choices)}.")
    return value


def check_text(name: str, value: object, max_chars: int, *, required: bool = False) -> str:
    """Text up to ``max_chars`` (None = empty). Lone surrogates (which no encoder can write) are refused."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValueError(f"The {name} must be text.")
    if len(value) > max_chars:
        raise ValueError(f"The {name} is {len(value):,} characters; the limit is {max_chars:,}.")
    if required and not value.strip():
        raise ValueError(f"Type the {name} first: it is empty.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"The {name} contains an invalid character (a lone surrogate).") from None
    return value
