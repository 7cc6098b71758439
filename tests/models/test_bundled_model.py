"""The real bundled SmolLM2-135M-Instruct: the way a new user meets the app."""

import pytest
import torch
from gradio_client import Client

from demos.chat import core as chat_core
from demos.chat import engine as chat_engine
from shared import catalog
from shared.loaders import load_causal_lm
from shared.settings import Settings

pytestmark = pytest.mark.full


@pytest.fixture(scope="module")
def smollm2():
    return load_causal_lm(
        catalog.CATALOG["smollm2-135m-instruct"], device="cpu", dtype=torch.float32, cache_dir=Settings().cache_dir
    )


def test_greedy_reply_is_english_and_stops_at_end_of_turn(smollm2):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    settings = chat_core.validate_settings(
        temperature=0, top_p=1, top_k=0, max_new_tokens=64, repetition_penalty=1, seed=0
    )
    final = list(chat_engine.stream_reply(smollm2, messages, settings))[-1]
    assert "Paris" in final.text
    assert final.stats.finish == "end of turn" and final.stats.completion_tokens < 64
    assert final.tokens[-1].token == "<|im_end|>"
    assert smollm2.context_window == 8192
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in final.prompt


def test_app_streams_a_coherent_reply_over_the_api(live_app):
    client = Client(live_app, verbose=False)
    job = client.submit(message="What is the capital of France?", temperature=0, max_new_tokens=48, api_name="/chat")
    final = job.result(timeout=180)
    assert "Paris" in final and len(job.outputs()) >= 2


def test_plain_start_is_loopback_and_prints_the_local_url(live_app):
    from pathlib import Path

    log = (Path(__file__).resolve().parents[2] / "artifacts" / "live_app.log").read_text()
    assert "Running on local URL:  http://127.0.0.1:" in log
    assert live_app.startswith("http://127.0.0.1:")


def test_every_attention_view_renders_for_128_tokens(tmp_path):
    from demos.attention import core as attention_core
    from demos.attention import ui as attention_ui
    from shared import runtime

    runtime.configure(Settings(preload=False))
    am = runtime.attention_model("smollm2-135m-instruct")
    ids = am.tokenizer("The quick brown fox jumps over the lazy dog. " * 20)["input_ids"][:128]
    out = attention_ui.run(am.key, am.tokenizer.decode(ids), 29, 8, 0, 0.7, 40, 0.9)
    key, *_, summary, heat, head_view, mean, shaded, kv, nxt, grid, flow = out
    result = attention_ui.RESULTS.get(key)  # the session keeps only the key
    assert result.shape == (30, 9, 128) and "128 tokens" in summary
    assert heat.count("<title>") > 128 and grid.size == (30 + 30 * 52, 20 + 9 * 52) and "attention sink" in flow
    assert head_view.count("<b style") == 9 and shaded.count("att-tok") == 128
    assert "✓ matches" in kv and nxt.count("<tr>") == 11 and "After token 127" in nxt
    # the 9 query heads share 3 key/value heads
    assert [attention_core.retrieval(am, result, 5, h, 10).kv_head for h in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_switching_models_back_and_forth_does_not_grow_memory():
    """A→B→A twenty times under a budget that fits one: each switch evicts the other, RSS stays flat."""
    import gc

    import psutil

    from shared import runtime

    rt = runtime.configure(Settings(preload=False, cache_gb=0.75))  # one 540 MB SmolLM2 build at a time
    process = psutil.Process()
    rss = []
    for _ in range(10):
        runtime.causal_lm("smollm2-135m-instruct")  # A: SDPA build for chat
        runtime.attention_model("smollm2-135m-instruct")  # B: eager build for attention
        gc.collect()
        assert len(rt.cache.snapshot()) == 1
        rss.append(process.memory_info().rss)
    assert rt.cache.loads == 20
    growth = max(rss[2:]) - rss[1]
    assert growth < 300 * 2**20, f"RSS grew {growth / 2**20:.0f} MiB over 18 switches"
