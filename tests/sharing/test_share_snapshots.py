"""What a share link holds, checked without a browser: the checker every snapshot passes, the views a
viewer sees (the tabs' own renderers, from the stored data), link parsing, the rate limit, the notice
on a Space without storage."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demos.attention import share as attention_share
from demos.attention import views as attention_views
from demos.attention.core import AttentionResult
from demos.chat import share as chat_share
from demos.chat import view as chat_view
from demos.latent import share as latent_share
from demos.sharing import links as sharing
from demos.sharing import snapshots as share_snapshots
from shared.share_store import MALFORMED, ShareNotFound

pytestmark = pytest.mark.fast

ID = "Ab3_-xYz0123456789ABCD"
KINDS = (attention_share.KIND, chat_share.KIND, latent_share.KIND)  # importing a tab's share.py registers its kind


def test_each_tab_registers_its_kind_and_sharing_checks_only_those():
    assert set(KINDS) <= set(share_snapshots.KINDS)
    with pytest.raises(ValueError, match="A share's kind is one of"):
        share_snapshots.check("nope", {})


def attention_result(n: int = 5, seed: int = 0) -> AttentionResult:
    rng = np.random.default_rng(seed)
    weights = rng.random((2, 3, n, n)).astype(np.float32)
    weights = np.tril(weights)
    weights /= weights.sum(-1, keepdims=True)
    return AttentionResult("smollm2-135m-instruct", [f"t{i}" for i in range(n)], list(range(n)),
                           weights.astype(np.float16), True, None)  # fmt: skip


def test_an_attention_snapshot_draws_exactly_the_tabs_heatmaps():
    result = attention_result()
    taken = attention_share.of_attention(result, result.model, "t0 t1", 1, 2, 3, "summary")
    payload, files = share_snapshots.check("attention", taken)
    assert files == {}
    heat, text, mean = share_snapshots.views("attention", payload, files)
    assert heat == attention_views.heatmap_svg(result.attentions[1, 2], result.tokens, "Layer 1, head 2")
    assert mean == attention_views.heatmap_svg(
        result.attentions[1].astype(np.float32).mean(axis=0), result.tokens, "Layer 1: mean over heads"
    )
    assert text == attention_views.shaded_text_html(result.attentions[1, 2, 3], result.tokens, 3)


def test_a_chat_snapshot_keeps_markdown_but_shows_html_as_text_and_loads_no_image():
    payload, _ = share_snapshots.check("chat", {
        "model": "m", "messages": [{"role": "user", "content": "**bold** <script>x()</script> ![t](http://evil/p.png)"}],
    })  # fmt: skip
    messages, tokens, stats = share_snapshots.views("chat", payload, {})
    shown = messages[0]["content"]
    assert "**bold**" in shown and "<script>" not in shown and "&lt;script&gt;" in shown
    assert "![" not in shown  # a Markdown image would make the viewer's browser fetch that address
    assert tokens == chat_view.TOKEN_VIEW_PLACEHOLDER


def test_images_are_decoded_and_written_again_as_png():
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    payload, files = share_snapshots.check("latent", {"model": "digits-gan"}, {"samples": Image.fromarray(pixels)})
    assert files["samples"].startswith(b"\x89PNG")
    ((image, caption),) = share_snapshots.views("latent", payload, files)[0]
    assert np.array_equal(np.asarray(image), pixels) and caption == "Samples"
    with pytest.raises(ValueError, match="can't be read as an image"):
        share_snapshots.check("latent", {"model": "m"}, {"samples": b"GIF89a not really"})


def test_the_label_says_shared_when_which_model_and_settings_as_text():
    payload, _ = share_snapshots.check("chat", {"model": "evil`<b>x</b>", "messages": [{"role": "user", "content": "hi"}],
                                                "settings": {"temperature": 0.5}})  # fmt: skip
    about = share_snapshots.about_markdown("chat", payload, 0.0, 86400.0)
    assert "Shared snapshot (read-only)" in about and "1970-01-01 00:00 UTC" in about
    assert "temperature `0.5`" in about and "expires on 1970-01-02" in about
    assert "<b>" not in about and html.escape("<b>") in about


@pytest.mark.parametrize(
    "link", [ID, f"http://h/?s={ID}", f"https://h/app/?x=1&s={ID}", f"https://h/?s={ID}#top", f"  {ID}\n"]
)
def test_a_link_or_an_id_gives_the_id(link):
    assert sharing.link_id(link) == ID


@pytest.mark.parametrize("link", [None, 5, "", "../" + ID, ID + "A", f"http://h/?s={ID}/../x", "A" * 10_000])
def test_anything_else_is_malformed(link):
    with pytest.raises(ShareNotFound, match=MALFORMED.split(":")[0]):
        sharing.link_id(link)


def test_the_rate_limit_is_per_visitor_over_a_sliding_hour():
    limit = sharing.RateLimit(2, window_s=3600)
    assert limit.allow("a", now=0) and limit.allow("a", now=10) and not limit.allow("a", now=20)
    assert limit.allow("b", now=20)  # another visitor
    assert limit.allow("a", now=3601) and not limit.allow("a", now=3602)  # the first one left the window
    assert sharing.RateLimit(0).allow("a")  # 0 = no limit


def test_a_browser_keeps_only_the_newest_delete_tokens():
    kept = {}
    for i in range(sharing.MAX_TOKENS_KEPT + 5):
        kept = sharing.remember(kept, {"id": f"id{i}", "delete_token": f"t{i}"})
    assert len(kept) == sharing.MAX_TOKENS_KEPT and "id0" not in kept and kept["id204"] == "t204"


def test_a_space_without_its_data_volume_is_told_links_wont_last():
    assert sharing.storage_notice(Path("/home/user/.local/share/x"), {"SPACE_ID": "me/app"}) == sharing.NO_VOLUME
    assert sharing.storage_notice(Path("/data/genai-playground-shares"), {"SPACE_ID": "me/app"}) == ""
    assert sharing.storage_notice(Path("/home/user/.local/share/x"), {}) == ""  # a laptop keeps its disk
