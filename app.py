"""GenAI Playground: one app, one tab per family of generative model.

python app.py                 # bundled models, no network, http://127.0.0.1:7860
python app.py --help          # flags; each has a PLAYGROUND_* environment variable
"""

from __future__ import annotations

import os
import sys

# Privacy first: no usage analytics, no hub telemetry. Set before gradio / huggingface_hub import.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from shared import zerogpu  # noqa: E402, F401  (before torch touches CUDA: ZeroGPU's spaces must come first)

# isort: split

from demos.attention import share as attention_share
from demos.attention import ui as attention
from demos.chat import share as chat_share
from demos.chat import ui as chat
from demos.glue import INTERACTIVE
from demos.latent import lab as training_lab
from demos.latent import share as latent_share
from demos.latent import ui as latent
from demos.server import TEMP_FILES, launch, on_this_machine, queue_securely  # (tests call app.launch)
from demos.sharing import links as sharing
from demos.text_to_image import share as text_to_image_share
from demos.text_to_image import ui as text_to_image
from shared import catalog, compute, runtime  # noqa: E402
from shared.settings import Settings, parse_settings  # noqa: E402

# The tabs, in order: id (also the kind of its share links), title, its layout (``build_ui``) and its
# share link (``wire``: the Share button and "Open in the tab"; importing it registers its snapshot kind).
TABS = (
    ("chat", "Chat", chat, chat_share),
    ("text-to-image", "Text to image", text_to_image, text_to_image_share),
    ("latent", "Latent sampling (GAN / VAE)", latent, latent_share),
    ("attention", "Attention", attention, attention_share),
)


def build_app(settings: Settings | None = None) -> gr.Blocks:
    """The app for ``settings`` (default: the runtime's); the tabs read the runtime for their models."""
    settings = settings or runtime.get().settings
    with gr.Blocks(title="GenAI Playground", analytics_enabled=False, delete_cache=TEMP_FILES) as demo:
        gr.Markdown("# GenAI Playground\nGenerative AI you can touch: each tab is a tool and a live explanation.")
        notice = gr.Markdown(visible=False, elem_id="shared-notice")  # a share link that leads nowhere says so
        panels, rows, uis = {}, {}, {}
        with gr.Tabs() as tabs:
            for tab, title, ui, _ in TABS:
                with gr.Tab(title, id=tab):
                    panels[tab] = sharing.panel(tab)  # a share link's snapshot, when one is opened
                    uis[tab] = ui.build_ui()
                    rows[tab] = sharing.share_row(tab)
        link_chat_to_attention(tabs, uis["chat"], uis["attention"])
        tokens = sharing.tokens_state()  # the delete tokens of the links this browser made
        for tab, _, _, share in TABS:
            share.wire(uis[tab], rows[tab], panels[tab], tokens)
        sharing.wire_links(demo, tabs, notice, panels, tokens)
        sharing.api()
        demo.unload(training_lab.stop_session_runs)  # a closed tab stops its training run
        demo.unload(text_to_image.stop_generation)  # …and its generation
        system_panel(demo, settings)
    queue_securely(demo, settings)  # /run closed, page-only events unnamed, every join admitted by _glue.Admission
    return demo


def system_panel(demo: gr.Blocks, settings: Settings) -> None:
    """Device, dtype, cache and the loaded models, refreshed every few seconds; "Unload all models" for
    the operator only (``--operator-controls``; by default only when the app is bound to loopback)."""
    with gr.Accordion("System", open=False, elem_id="system-panel"):
        status = gr.Markdown(elem_id="system-status")
        with gr.Row():
            refresh = gr.Button("Refresh", size="sm")
            unload = gr.Button("Unload all models", size="sm") if settings.operator_controls_on else None
    private = dict(api_visibility="private", show_progress="hidden", concurrency_limit=None)
    demo.load(runtime.status_markdown, None, status, **private)
    refresh.click(runtime.status_markdown, None, status, **private)
    if unload is not None:
        unload.click(unload_models, None, status, **private)
    gr.Timer(3).tick(runtime.status_markdown, None, status, **private)


def unload_models(request: gr.Request) -> str:
    """Empty the model cache, even during other users' jobs: an operator control. It exists only when
    operator controls are on, and answers only a caller on this machine (a visitor through a proxy is not)."""
    if not on_this_machine(request):
        raise gr.Error("Unloading models is an operator control: use it on the machine the app runs on.")
    runtime.get().cache.clear()
    return runtime.status_markdown()


def link_chat_to_attention(tabs: gr.Tabs, chat_ui: chat.ChatUI, attention_ui: attention.AttentionUI) -> None:
    """Chat's "See its attention" opens the Attention tab on the conversation as the model saw it."""
    chat_ui.to_attention.click(
        chat.conversation_as_seen,
        [chat_ui.model, chat_ui.chatbot, chat_ui.system_prompt],
        [attention_ui.model, attention_ui.text],
        api_visibility="private",
    ).success(lambda: gr.Tabs(selected="attention"), None, tabs, api_visibility="private").then(
        attention.run,
        attention_ui.inputs,
        attention_ui.outputs,
        api_visibility="private",
        show_progress_on=attention_ui.progress,
        concurrency_id=INTERACTIVE,
        concurrency_limit=runtime.get().concurrency,
    )


def preload(settings: Settings) -> None:
    """Warm the default chat model on a model worker (or start its llama.cpp server), so the first
    message doesn't wait."""

    def work() -> None:
        try:
            spec = catalog.resolve(runtime.default_model("chat"), "chat")
            runtime.causal_lm(spec.key) if spec.engine == "transformers" else runtime.endpoint(spec)
        except Exception as exc:  # the tab reports load errors itself when used
            print(f"Preloading the chat model failed: {exc}", file=sys.stderr)

    compute.submit(work)


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    try:
        runtime.configure(settings)
    except ValueError as exc:
        sys.exit(f"app.py: {exc}")
    if settings.zero_gpu:  # on the main thread, before launch: spaces moves these into each GPU worker
        print(f"ZeroGPU: loaded {', '.join(runtime.preload_gpu_models()) or 'no GPU model'} at startup", flush=True)
    elif settings.preload:
        preload(settings)
    launch(build_app(), settings)


if __name__ == "__main__":
    main()
