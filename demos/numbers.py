"""The one rule for numbers typed into a box, on every tab: the nearest value the box takes, with a
warning that says what changed (the API refuses out-of-range values and names the range); and what
the queue refuses before Gradio's own preprocessing would fail with no message.
"""

from __future__ import annotations

import dataclasses
import math
import sys

import gradio as gr

from shared.validation import check_number

FLOAT_MAX = sys.float_info.max


def number_problem(name: str, value: object, *, optional: bool) -> str | None:
    """What is wrong with a raw value for a page's number input, by the shared rule; None if nothing.

    The page sends a JSON number (or null for an empty ``gr.Number``). Only what Gradio's
    preprocessing cannot take is refused here; its bounds stay Gradio's (a session may have changed them)."""
    if value is None and optional:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{name} must be a number, got {type(value).__name__}."
    try:
        check_number(name, value, -FLOAT_MAX, FLOAT_MAX)  # NaN, ±inf and integers past a float's range
    except ValueError as exc:
        return str(exc)
    return None


@dataclasses.dataclass(frozen=True)
class Box:
    """A number box: its label, its range, the spacing of the values it takes (None: any number) and
    what its maximum is (for the message)."""

    label: str
    low: float
    high: float
    step: float | None = 1
    maximum_is: str = "the maximum"


def _shown(value: float) -> str:
    if isinstance(value, int) and abs(value) >= 10**15:
        return f"a {len(str(abs(value)))}-digit number"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"


def fit_number(box: Box, raw: object) -> tuple[float | None, str | None]:
    """(the value the box takes, a message saying what changed) for a number typed into it.

    Past either end it is set to that end; between two values it takes (Width's multiples of 8,
    whole steps) to the nearer one, halves going up; an empty box to the minimum (what Gradio's
    slider does with one). ``(value, None)`` when nothing changes; ``(None, None)`` for what is no
    number at all (text, NaN): nothing to fit."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):  # an emptied box: the slider takes its minimum
        return box.low, f"{box.label}: the box was left empty; set to the minimum, {_shown(box.low)}."
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw  # exact, however large (a float of it could overflow)
    else:
        try:
            number = check_number(box.label, raw, -math.inf, math.inf)  # refuses NaN, ±inf, text, None, bools
        except ValueError:
            return None, None
        if number.is_integer() and box.step is not None:
            number = int(number)
    if number > box.high:
        return (
            box.high,
            f"{box.label}: {_shown(number)} is above {box.maximum_is}, {_shown(box.high)}; set to {_shown(box.high)}.",
        )
    if number < box.low:
        return (
            box.low,
            f"{box.label}: {_shown(number)} is below the minimum, {_shown(box.low)}; set to {_shown(box.low)}.",
        )
    if box.step is None:
        return number, None
    steps = math.floor((number - box.low) / box.step + 0.5)
    fitted = min(box.low + steps * box.step, box.high)
    fitted = int(fitted) if float(fitted).is_integer() else fitted
    if fitted == number:
        return fitted, None
    kind = "a whole number" if box.step == 1 else f"a multiple of {_shown(box.step)}"
    return fitted, f"{box.label}: {_shown(number)} is not {kind}; set to {_shown(fitted)}."


def fitted_updates(boxes: dict[str, Box], evt: gr.EventData) -> list:
    """For a slider's ``release`` (its outputs: the sliders of ``boxes``, in order, by elem_id): the
    number as typed (``evt`` carries it; the slider itself has already clamped it, silently) fitted by
    the rule into its slider, with a warning saying what changed; the others untouched."""
    updates = [gr.skip()] * len(boxes)
    name = getattr(evt.target, "elem_id", None)
    if name in boxes:
        value, message = fit_number(boxes[name], getattr(evt, "_data", None))
        if message:
            gr.Warning(message)
            updates[list(boxes).index(name)] = value
    return updates
