"""Each tab's side of sharing: what its Share button snapshots, and what "Open in the tab" restores.

app.py calls ``wire`` once with every tab's UI; the snapshot panels and share rows come from
``demos/sharing/links.py``, what a snapshot holds from ``demos/sharing/snapshots.py``.
"""

from __future__ import annotations

import gradio as gr

from demos.attention import ui as attention
from demos.chat.core import LIMITS
from demos.glue import INTERACTIVE, user_error
from demos.sharing import links as sharing
from demos.sharing import snapshots as share_snapshots
from demos.text_to_image import recipe as t2i
from demos.text_to_image.steps import RUNS
from shared import catalog, runtime


def _allowed(model: str, task) -> str:
    """The snapshot's model, if this server may load it in the tab; else a clear ValueError."""
    try:
        return catalog.resolve(model, task, allow_any_model=runtime.get().settings.allow_any_model).key
    except ValueError as exc:
        raise ValueError(f"This snapshot was made with {model[:100]!r}, which this server can't open: {exc}") from None


def _opened(snapshot: dict | None, kind: str, task) -> tuple[dict, str]:
    """The opened link's payload and its model (as this server names it), or a gr.Error saying why not."""
    try:
        if not isinstance(snapshot, dict) or snapshot.get("kind") != kind:
            raise ValueError("Open a share link first.")
        payload = snapshot["payload"]
        model = payload["recipe"]["model"] if kind == "text-to-image" else payload["model"]
        return payload, _allowed(model, task)
    except Exception as exc:
        raise user_error(exc, "Opening in the tab") from None


# --- chat ---------------------------------------------------------------------------------------


def chat_snapshot(model, history, system_prompt, *rest):
    *settings, mode, stats, last = rest
    return share_snapshots.of_chat(
        model, history, system_prompt, dict(zip(LIMITS, settings, strict=True)), mode, stats, last
    ), {}


def chat_open(snapshot):
    """The conversation and its settings into the live chat, ready to continue."""
    payload, model = _opened(snapshot, "chat", "chat")
    settings = [payload["settings"].get(name, gr.skip()) for name in LIMITS]
    status = "The conversation and its settings are in the chat below: type to continue it."
    return [gr.Group(visible=False), model, payload["system_prompt"], *settings, payload["mode"], payload["messages"],
            status]  # fmt: skip


# --- text to image ------------------------------------------------------------------------------


def t2i_snapshot(run_key):
    if run_key is None:
        raise ValueError("There are no images to share yet: press Generate first.")
    run = RUNS.get(run_key, "That generation")
    if run.stopped:
        raise ValueError("That run was stopped before its images were made: generate them to share them.")
    recipe = share_snapshots.recipe_dict(run.recipe)
    return {"recipe": recipe}, {str(i): image for i, image in enumerate(run.images)}


def t2i_open(snapshot):
    """The recipe into the live controls: Generate then makes the same images (same seed, same steps)."""
    payload, model = _opened(snapshot, "text-to-image", "text-to-image")
    recipe = payload["recipe"]
    max_side = t2i.recommended(model)["max_side"]
    status = f"The shared recipe is in the controls (seed {recipe['seed']}): press Generate to make the same images."
    return [
        gr.Group(visible=False),
        model,
        recipe["prompt"],
        recipe["negative_prompt"],
        recipe["seed"],
        recipe["num_inference_steps"],
        recipe["guidance_scale"],
        recipe["scheduler"],
        gr.Slider(value=recipe["width"], maximum=max_side),
        gr.Slider(value=recipe["height"], maximum=max_side),
        recipe["num_images_per_prompt"],
        status,
    ]


# --- latent sampling ----------------------------------------------------------------------------

LATENT_CONTROLS = ("seed", "count", "truncation", "temperature", "seed_a", "seed_b", "walk_steps", "dims", "span",
                   "traversal_steps")  # fmt: skip
LATENT_IMAGES = ("samples", "gan", "vae", "lerp", "slerp", "traversal")


def latent_snapshot(model, *values):
    settings = dict(zip(LATENT_CONTROLS, values[: len(LATENT_CONTROLS)], strict=True))
    images = dict(zip(LATENT_IMAGES, values[len(LATENT_CONTROLS) :], strict=True))
    payload = {"model": model, "revision": share_snapshots.revision_of(model), "settings": settings}
    return payload, {k: v for k, v in images.items() if v is not None}


def latent_open(snapshot):
    payload, model = _opened(snapshot, "latent", "latent")
    values = [payload["settings"].get(name, gr.skip()) for name in LATENT_CONTROLS]
    status = "The shared settings are in the controls: Sample, Interpolate or Traverse make the same images again."
    return [gr.Group(visible=False), model, *values, status]


# --- attention ----------------------------------------------------------------------------------


def attention_snapshot(model, text, shown, summary):
    if not shown:
        raise ValueError("There is no attention view to share yet: press Show attention first.")
    key, layer, head, token, *_ = shown
    result = attention.RESULTS.get(key, "That attention view")
    return share_snapshots.of_attention(result, result.model, text, layer, head, token, summary), {}


def attention_open(snapshot):
    payload, model = _opened(snapshot, "attention", ("attention", "chat"))
    return [gr.Group(visible=False), model, payload["text"], payload["layer"], payload["head"],
            "The shared text and layer/head are in the controls; their attention is being computed."]  # fmt: skip


# --- wiring ---------------------------------------------------------------------------------------


def wire(panels: dict, rows: dict, tokens, chat_ui, t2i_ui, latent_ui, attention_ui) -> None:
    private = dict(api_visibility="private")
    # chat
    c = chat_ui
    sharing.wire_row(rows["chat"], chat_snapshot, [c.model, c.chatbot, c.system_prompt, *c.settings, c.mode, c.stats,
                                                   c.meta], tokens)  # fmt: skip
    p = panels["chat"]
    p.open_in_tab.click(chat_open, p.snapshot, [p.group, c.model, c.system_prompt, *c.settings, c.mode, c.chatbot,
                                                rows["chat"].status], show_progress_on=[p.status], **private)  # fmt: skip
    # text to image
    sharing.wire_row(rows["text-to-image"], t2i_snapshot, [t2i_ui.run], tokens)
    p = panels["text-to-image"]
    p.open_in_tab.click(t2i_open, p.snapshot, [p.group, *t2i_ui.settings, t2i_ui.status],
                        show_progress_on=[p.status], **private)  # fmt: skip
    # latent
    ui = latent_ui
    controls = [ui.seed, ui.count, ui.truncation, ui.temperature, *(ui.controls[k] for k in LATENT_CONTROLS[4:])]
    images = [ui.tabs["samples"][0], *ui.tabs["compare"][:2], *ui.tabs["interpolation"][:2], ui.tabs["traversal"][0]]
    sharing.wire_row(rows["latent"], latent_snapshot, [ui.model, *controls, *images], tokens)
    p = panels["latent"]
    p.open_in_tab.click(latent_open, p.snapshot, [p.group, ui.model, *controls, rows["latent"].status],
                        show_progress_on=[p.status], **private)  # fmt: skip
    # attention: the shared text is computed again (the viewer asked; a small model's pass is cheap)
    a = attention_ui
    sharing.wire_row(rows["attention"], attention_snapshot, [a.model, a.text, a.outputs[1], a.outputs[6]], tokens)
    p = panels["attention"]
    p.open_in_tab.click(
        attention_open, p.snapshot, [p.group, a.model, a.text, a.inputs[2], a.inputs[3], rows["attention"].status],
        show_progress_on=[p.status], **private,
    ).success(
        attention.run, a.inputs, a.outputs, show_progress_on=a.progress, concurrency_id=INTERACTIVE,
        concurrency_limit=runtime.get().concurrency, **private,
    )  # fmt: skip
