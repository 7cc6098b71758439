"""The Latent sampling tab: sampling (knobs, latent maths, handlers) → encoding, tabs → ui."""
