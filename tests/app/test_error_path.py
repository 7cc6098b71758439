"""One error path for every tab: an out-of-memory error, a model that fails to load and an
unexpected exception each give a friendly, path-free message through the UI handler and the API,
memory is freed, and the next request works. Faults are raised inside our own model layer
(``shared.runtime``'s accessors), never by mocking a library; the failing load is a real broken
model folder."""

from __future__ import annotations

import pytest
import torch
from gradio_client.exceptions import AppError

from tests.helpers import GOOD

pytestmark = pytest.mark.fast

TEXT = "the cat sat on the mat ."
SECRET = "/tmp/secret-path"

# tab: (endpoint, good API call, runtime accessor that fetches its model, a broken model of its kind)
TABS = {
    "chat": ("/chat", dict(GOOD), "causal_lm", "broken-chat"),
    "attention": ("/attention", dict(text=TEXT, model="tiny-chat", layer=0, head=0), "attention_model", "broken-chat"),
    "latent": ("/sample_latents", dict(model="digits-vae", seed=0, num_images=2), "latent_model", "broken-latent"),
    "text-to-image": (
        "/text_to_image",
        dict(prompt="a red circle", model="tiny-sd", seed=0, num_inference_steps=2, num_images_per_prompt=1),
        "text_to_image",
        "broken-sd",
    ),
}
FAULTS = {
    "out of memory": (
        torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 20.00 GiB ({SECRET})"),
        "Out of memory",
    ),
    "unexpected": (RuntimeError(f"something broke deep inside {SECRET}"), r"failed \(RuntimeError\)"),
}


def ui_call(tab: str, model: str):
    """The tab's main button, as the browser calls it (the handler function itself), run to the end."""
    import gradio as gr

    from demos.attention import ui as attention
    from demos.chat import ui as chat_ui
    from demos.chat import view as chat_view
    from demos.latent import sampling as latent_sampling
    from demos.text_to_image import ui as text_to_image

    if tab == "chat":  # a failed reply is a note in the conversation, its reason in the stats line
        history = [{"role": "user", "content": "hello how are you ?"}]
        *_, final = chat_ui.respond(model, history, "", 0.0, 1.0, 0, 8, 1.0, 0, request=None)
        if chat_view.is_failure_note(final[0][-1]):
            raise gr.Error(final[1])
        return final
    if tab == "attention":
        return attention.run(model, TEXT, 0, 0, 0, 1.0, 0, 1.0)
    if tab == "latent":
        return latent_sampling.sample_grid(model, 0, 2, 1.0, 1.0)
    return list(
        text_to_image.generate_ui(
            model, "a red circle", "", 0, 2, 3.0, "DDIM", 32, 32, 1, request=None, progress=lambda *a, **k: None
        )
    )


def api_call(client, tab: str, **overrides):
    endpoint, good, _, _ = TABS[tab]
    return client.predict(**{**good, **overrides}, api_name=endpoint)


def assert_friendly(message: str) -> None:
    assert message and "Traceback" not in message and SECRET not in message and "/tmp" not in message
    assert "20.00 GiB" not in message and "deep inside" not in message


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("tab", TABS)
def test_a_fault_in_model_work_gives_a_message_in_ui_and_api(launched_app, client, monkeypatch, tab, fault):
    import gradio as gr

    from shared import runtime

    _, good, accessor, _ = TABS[tab]
    error, message = FAULTS[fault]
    model = good["model"]
    assert api_call(client, tab)  # loaded and working
    assert runtime.get().cache.snapshot()

    def broken(*args, **kwargs):
        raise error

    with monkeypatch.context() as patch:
        patch.setattr(runtime, accessor, broken)
        with pytest.raises(gr.Error, match=message) as ui:
            ui_call(tab, model)
        assert_friendly(ui.value.message)
        if fault == "out of memory":
            assert runtime.get().cache.snapshot() == []  # the models were unloaded to free memory
        with pytest.raises(AppError, match=message) as api:
            api_call(client, tab)
        assert_friendly(str(api.value))
    assert api_call(client, tab)  # the next request works
    assert ui_call(tab, model)


@pytest.mark.parametrize("tab", TABS)
def test_a_model_that_fails_to_load_gives_a_message_in_ui_and_api(launched_app, client, tab):
    import gradio as gr

    _, _, _, broken = TABS[tab]
    with pytest.raises(gr.Error, match="failed to load") as ui:
        ui_call(tab, broken)
    assert_friendly(ui.value.message)
    with pytest.raises(AppError, match="failed to load") as api:
        api_call(client, tab, model=broken)
    assert_friendly(str(api.value))
    assert api_call(client, tab)
