"""What every part of the Latent sampling tab shares: the parts ``build_ui`` hands back, and the event
settings of model work."""

from __future__ import annotations

import dataclasses

import gradio as gr

from shared import runtime


@dataclasses.dataclass
class LatentUI:
    """What build_ui hands back: the controls every sub-tab reads, and each sub-tab's parts."""

    model: gr.Dropdown
    seed: gr.Number
    count: gr.Slider
    truncation: gr.Slider
    temperature: gr.Slider
    tabs: dict[str, object] = dataclasses.field(default_factory=dict)  # sub-tab → what its builder returned
    controls: dict[str, object] = dataclasses.field(default_factory=dict)  # sub-tabs' own settings, for share links


def heavy() -> dict:
    """Event settings of model work: one queue group with every tab's, at the runtime's concurrency."""
    return dict(concurrency_id="gpu", concurrency_limit=runtime.get().concurrency, api_visibility="private")
