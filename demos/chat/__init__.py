"""The Chat tab: core (knobs, validation, prompts) → engine → view, modes → ui."""
