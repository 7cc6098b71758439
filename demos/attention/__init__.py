"""The Attention tab: core (knobs, results, the maths) → views → ui."""
