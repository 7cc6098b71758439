"""Chat on a real llama.cpp server: the bundled GGUF served by the `llama-server` that
`make llama-server` built, managed by the app on 127.0.0.1, and the same server reached as an
operator's "OpenAI-compatible server" through a proxy that injects the faults real deployments have.

No engine is mocked: every reply comes from llama.cpp running the bundled model.
"""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import threading
import time
from pathlib import Path

import gradio as gr
import httpx
import pytest

from demos import glue as chat_glue
from demos.chat import core as chat_core
from demos.chat import engine as chat_engine
from demos.chat import ui as chat_ui
from demos.chat import view as chat_view
from demos.chat.engine import stream_from_server
from shared import catalog, engines, llama_server, loaders, runtime
from tests.engine_faults import FaultProxy
from tests.helpers import app_settings, free_port

pytestmark = pytest.mark.full

ROOT = Path(__file__).resolve().parents[2]
LLAMA = "smollm2-135m-instruct-llama.cpp"
SERVER = "smollm2@server"  # the operator's "OpenAI-compatible server": llama.cpp behind the fault proxy
FAST = chat_core.GenerationSettings(temperature=0.0, max_new_tokens=12, seed=1, repetition_penalty=1.0)  # greedy, short


def binary() -> Path:
    found = llama_server.find_binary()
    if found is None:
        pytest.fail("llama-server is not built: run `make llama-server` (make test does)")
    return found


@pytest.fixture(scope="module")
def server():
    """A managed llama-server on the bundled GGUF (its own process; the app's is started by the app)."""
    managed = llama_server.LlamaServer(binary(), loaders.smollm2_gguf_path(), "smollm2", context=4096)
    managed.ensure()
    yield managed
    managed.stop()


@pytest.fixture(scope="module")
def proxy(server):
    faulty = FaultProxy(server.endpoint.root)
    yield faulty
    faulty.close()


@pytest.fixture(scope="module")
def engine_app(server, proxy, tmp_path_factory):
    """The app configured with the llama.cpp engine and an operator server (the proxy), launched on loopback."""
    import app as app_module

    settings = app_settings(
        port=free_port(),
        cache_dir=tmp_path_factory.mktemp("c"),
        chat_engine="auto",
        openai_url=proxy.url,
        openai_models=("smollm2",),
        openai_flavor="llama.cpp",
        openai_api_key=server.api_key,
    )
    runtime.configure(settings)
    demo = app_module.build_app()
    app_module.launch(demo, settings, prevent_thread_lock=True, quiet=True)
    yield demo
    demo.close()
    for managed in llama_server.servers():
        managed.stop()


def messages(text="What is the capital of Japan?"):
    return [{"role": "user", "content": text}]


def last(replies):
    *_, final = replies
    return final


def respond(model, history, *, seed=1, max_new_tokens=12, temperature=0.0, top_k=0, penalty=1.0, session="e"):
    """The page's handler, to the end: (conversation, stats, gauge, token html, tokens, prompt, passages, meta)."""
    outputs = chat_ui.respond(
        model, history, "", temperature, 1.0, top_k, max_new_tokens, penalty, seed,
        request=gr.Request(session_hash=session),
    )  # fmt: skip
    return last(outputs)


# --- the engine itself --------------------------------------------------------------------------


def test_a_reply_streams_with_the_token_view_stats_and_the_prompt_the_model_read(server):
    replies = list(stream_from_server(server.endpoint, messages(), FAST, threading.Event()))
    final = replies[-1]
    assert replies[0].text == "" and "<|im_start|>user\nWhat is the capital of Japan?<|im_end|>" in replies[0].prompt
    assert "Tokyo" in final.text, final.text
    stats = final.stats
    assert stats.engine == "llama.cpp" and stats.context_window == 4096 and stats.finish in ("end of turn", "length")
    # usage counts the end-of-turn token, which llama.cpp streams no text (nor probability) for
    assert (
        stats.prompt_tokens > 10 and stats.completion_tokens - (stats.finish == "end of turn") == len(final.tokens) > 1
    )
    assert "".join(t.token for t in final.tokens).strip() == final.text.strip()
    for token in final.tokens:  # greedy: the chosen token is the likeliest, and the top-5 are probabilities
        assert len(token.top) == engines.TOP_ALTERNATIVES
        assert 0 < token.prob <= 1 and math.isclose(token.prob, token.top[0][1], rel_tol=1e-4)
        assert sum(p for _, p in token.top) <= 1 + 1e-6
    assert stats.tokens_per_s > 0 and stats.ttft_s > 0


def test_llama_cpp_renders_the_same_prompt_as_transformers(server):
    from transformers import AutoTokenizer

    gguf = loaders.smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name a colour."},
    ]
    served = engines.ServerTokenizer(server.endpoint)
    assert served.apply_chat_template(conversation) == chat_engine.render_prompt(tokenizer, conversation)
    assert served.encode("Name a colour.") == tokenizer.encode("Name a colour.", add_special_tokens=False)


def test_the_seed_repeats_a_sampled_reply_and_top_k_1_is_greedy(server):
    def reply(**fields):
        settings = chat_core.GenerationSettings(**{"max_new_tokens": 16, "temperature": 1.5, **fields})
        return last(stream_from_server(server.endpoint, messages("Tell me a story."), settings, threading.Event()))

    first, again, other = reply(seed=7), reply(seed=7), reply(seed=8)
    assert first.text == again.text and first.stats.seed == 7
    assert other.text != first.text
    greedy = last(stream_from_server(server.endpoint, messages("Tell me a story."), chat_core.GenerationSettings(
        temperature=0.0, max_new_tokens=16, repetition_penalty=1.0), threading.Event()))  # fmt: skip
    assert reply(seed=9, top_k=1, repetition_penalty=1.0).text == greedy.text  # top-k reached the server


def test_the_repetition_penalty_reaches_the_server(server):
    ask = messages("Repeat the word 'yes' twenty times.")

    def reply(penalty):
        settings = chat_core.GenerationSettings(temperature=0.0, max_new_tokens=24, repetition_penalty=penalty)
        return last(stream_from_server(server.endpoint, ask, settings, threading.Event()))

    plain, penalised = reply(1.1), reply(2.0)
    assert plain.text.lower().count("yes") > penalised.text.lower().count("yes"), (plain.text, penalised.text)
    assert "last 64 tokens" in " ".join(penalised.stats.notices)


def _busy(endpoint) -> bool:
    slots = httpx.get(endpoint.root + "/slots", headers=endpoint.headers(), timeout=5).json()
    return any(slot.get("is_processing") for slot in slots)


@pytest.mark.parametrize("how", ["stop", "consumer leaves"])
def test_stop_closes_the_stream_and_the_server_stops_generating(server, how):
    stop = threading.Event()
    long = chat_core.GenerationSettings(temperature=1.0, max_new_tokens=2000, seed=3, repetition_penalty=1.0)
    stream = stream_from_server(server.endpoint, messages("Write a very long essay about rivers."), long, stop)
    seen = 0
    for reply in stream:
        seen += reply.text != ""
        if seen == 5:
            break
    assert _busy(server.endpoint)  # the server is generating
    began = time.monotonic()
    if how == "stop":
        stop.set()
        final = last(stream)
        assert final.stats.finish == "stopped" and final.stats.completion_tokens < 2000
    else:
        stream.close()
    while _busy(server.endpoint):
        assert time.monotonic() - began < 5, "llama-server kept generating after the stream was closed"
        time.sleep(0.05)


def test_the_managed_server_wants_its_key_and_the_key_is_not_on_its_command_line(server):
    endpoint = server.endpoint
    assert httpx.get(endpoint.root + "/slots", timeout=5).status_code == 401
    assert httpx.get(endpoint.root + "/slots", headers=endpoint.headers(), timeout=5).status_code == 200
    assert server.api_key not in Path(f"/proc/{server.proc.pid}/cmdline").read_text()


def test_the_managed_server_restarts_after_it_dies_and_stops_with_its_owner(server):
    endpoint = server.ensure()
    old_pid = server.proc.pid
    server.proc.kill()
    server.proc.wait(5)
    assert not server.running()
    restarted = server.ensure()
    assert server.running() and server.proc.pid != old_pid and server.restarts >= 1
    assert endpoint.model == restarted.model  # on a fresh port, with the same model: the engine follows it
    assert httpx.get(restarted.root + "/health", timeout=5).status_code == 200


def test_a_killed_parent_takes_its_llama_server_with_it(tmp_path):
    """PR_SET_PDEATHSIG: even an app killed with SIGKILL leaves no server behind."""
    import subprocess
    import sys

    script = tmp_path / "owner.py"
    script.write_text(
        "import sys, time\nsys.path.insert(0, sys.argv[1])\n"
        "from shared import llama_server, loaders\n"
        "s = llama_server.LlamaServer(llama_server.find_binary(), loaders.smollm2_gguf_path(), 'x', context=512)\n"
        "s.ensure(); print(s.proc.pid, flush=True); time.sleep(120)\n"
    )
    owner = subprocess.Popen([sys.executable, str(script), str(ROOT)], stdout=subprocess.PIPE, text=True)
    child = int(owner.stdout.readline())
    owner.kill()
    owner.wait(5)
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "llama-server outlived the app that started it"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Running, not a zombie (whoever inherited it may not reap it) and not gone."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False


def test_a_server_forked_for_a_worker_thread_outlives_that_thread():
    """PR_SET_PDEATHSIG follows the thread that forked the child, and Gradio's worker threads end when idle:
    a server started under one request must survive that thread, for the next request on another."""
    forked = {}

    def worker():
        forked["on the worker"] = subprocess.Popen(["sleep", "30"], preexec_fn=llama_server._die_with_parent)
        forked["by spawn"] = llama_server.spawn(["sleep", "30"])

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    try:
        assert forked["on the worker"].wait(5) == -9  # the hazard is real: forked on the thread, killed with it
        time.sleep(0.5)
        assert forked["by spawn"].poll() is None, "spawn's child died with the thread that asked for it"
    finally:
        for proc in forked.values():
            proc.kill()
            proc.wait(5)


def test_the_managed_server_started_on_a_thread_that_ends_keeps_serving():
    managed = llama_server.LlamaServer(binary(), loaders.smollm2_gguf_path(), "smollm2", context=512)
    thread = threading.Thread(target=managed.ensure)
    thread.start()
    thread.join()
    try:
        time.sleep(0.5)
        assert managed.running() and managed.restarts == 0
        assert httpx.get(managed.endpoint.root + "/health", timeout=5).status_code == 200
    finally:
        managed.stop()


# --- the app on the engine: every chat feature, through the page's handler and the API -----------


def test_auto_picks_llama_cpp_when_it_is_built_and_lists_it_first(engine_app):
    assert runtime.get().chat_engine == "llama.cpp" and chat_glue.default_model("chat") == LLAMA
    keys = [key for _, key in chat_glue.model_choices("chat")]
    assert keys.index(LLAMA) < keys.index("smollm2-135m-instruct-hub") and SERVER in keys
    attention = [key for _, key in chat_glue.model_choices("attention", "chat")]  # it reads weights: no servers there
    assert LLAMA not in attention and SERVER not in attention and "smollm2-135m-instruct" in attention


def test_without_the_binary_auto_stays_on_transformers_and_says_how_to_build(tmp_path):
    settings = app_settings(cache_dir=tmp_path, chat_engine="auto", llama_server=tmp_path / "missing")
    saved = runtime.get()
    try:
        runtime.configure(settings)
        assert (
            runtime.get().chat_engine == "transformers" and chat_glue.default_model("chat") == "smollm2-135m-instruct"
        )
        assert "make llama-server" in runtime.unavailable(catalog.CATALOG[LLAMA])
    finally:
        runtime.configure(saved.settings)


@pytest.mark.parametrize("model", [LLAMA, SERVER])
def test_the_page_fills_every_panel_on_a_server_engine(engine_app, proxy, model):
    proxy.fault = "none"
    history = [{"role": "user", "content": "What is the capital of Japan?"}]
    conversation, stats, gauge, token_html, tokens, prompt, _passages, meta = respond(model, history)
    assert conversation[:1] == history and "Tokyo" in conversation[-1]["content"]
    assert "engine: llama.cpp" in stats and "tokens/s" in stats and re.search(r"context \d+ / 8,192|/ 4,096", stats)
    assert "Context:" in gauge and token_html.count('class="tok"') == len(tokens) > 1
    assert "raw probabilities, before repetition penalty" in token_html
    assert "<|im_start|>assistant" in prompt and meta["engine"] == "llama.cpp"


def test_regenerate_edit_and_undo_work_on_llama_cpp(engine_app):
    history = [{"role": "user", "content": "Say hi."}]
    first = respond(LLAMA, history)[0]
    regenerated = respond(LLAMA, chat_ui.last_user_turn(first, gr.Request(session_hash="e"))[0])[0]
    assert regenerated[-1]["content"] == first[-1]["content"]  # greedy, same seed: the same reply again
    chat_ui.reply_done(gr.Request(session_hash="e"))
    edited = chat_ui.edit(
        first,
        gr.EditData(None, {"index": 0, "value": "Say bye.", "previous_value": "Say hi."}),
        gr.Request(session_hash="e"),
    )[0]
    assert edited == [{"role": "user", "content": "Say bye."}]
    chat_ui.reply_done(gr.Request(session_hash="e"))
    history, box, *_ = chat_ui.undo(respond(LLAMA, edited)[0], gr.Request(session_hash="e"))
    assert history == [] and box == "Say bye."


def test_the_api_chats_on_llama_cpp_and_refuses_any_url_or_unlisted_model(engine_app):
    from gradio_client import Client

    client = Client(engine_app.local_url, verbose=False)
    reply = client.predict("What is the capital of Japan?", [], "", 0.0, 1.0, 0, 12, 1.0, 1, LLAMA, api_name="/chat")
    assert "Tokyo" in reply
    for model in ("http://127.0.0.1:9/v1", "openai:gpt-4o", "smollm2", "../../etc/passwd"):
        with pytest.raises(Exception, match="Unknown model"):
            client.predict("hi", [], "", 0.0, 1.0, 0, 4, 1.0, 1, model, api_name="/chat")
    names = {p["parameter_name"] for p in client.view_api(print_info=False, return_format="dict")[
        "named_endpoints"]["/chat"]["parameters"]}  # fmt: skip
    assert not names & {"url", "base_url", "api_key", "endpoint"}


def test_the_key_never_reaches_the_page_the_panel_or_a_message(engine_app, server, proxy):
    key = server.api_key
    page = (
        httpx.get(engine_app.local_url + "config", timeout=10).text + httpx.get(engine_app.local_url, timeout=10).text
    )
    panel = runtime.status_markdown()
    assert key not in page and key not in panel and proxy.url in panel and "| ok |" in panel
    proxy.fault = "401"
    try:
        _conversation, stats, *_ = respond(SERVER, [{"role": "user", "content": "hi"}])
    finally:
        proxy.fault = "none"
    assert "refused this app's API key (401)" in stats and key not in stats
    assert key not in repr(runtime.get().settings)


# --- faults: each a clear message within seconds, the conversation kept, the next request works ---

FAULT_MESSAGES = {
    "401": "refused this app's API key (401)",
    "404": "doesn't serve model 'smollm2' (404)",
    "429": "is busy (429",
    "503": "overloaded or failing (503)",
    "stall": "sent nothing for 2 s",
    "malformed": "sent a stream this app can't read",
    "truncate": "closed the stream before the reply was finished",
}


@pytest.mark.parametrize("fault", list(FAULT_MESSAGES))
def test_a_fault_gives_a_clear_message_and_the_next_request_works(engine_app, proxy, monkeypatch, fault):
    monkeypatch.setattr(engines, "STALL_TIMEOUT_S", 2.0)
    history = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"},
               {"role": "user", "content": "Count to fifty."}]  # fmt: skip
    proxy.fault = fault
    began = time.monotonic()
    try:
        conversation, stats, *_ = respond(SERVER, history, max_new_tokens=64)
    finally:
        proxy.fault = "none"
    assert time.monotonic() - began < 10
    assert conversation[:3] == history and chat_view.is_failure_note(conversation[-1])
    assert FAULT_MESSAGES[fault] in stats and "No reply" in stats
    monkeypatch.undo()
    again = respond(SERVER, conversation, max_new_tokens=8)[0]
    assert again[-1]["role"] == "assistant" and not chat_view.is_failure_note(again[-1])


def test_a_server_unreachable_at_start_and_mid_conversation_is_reported_then_works_again(engine_app, proxy):
    history = [{"role": "user", "content": "Hello"}]
    first = respond(SERVER, history)[0]
    assert not chat_view.is_failure_note(first[-1])
    port = proxy.port
    proxy.close()  # the server goes away mid-conversation
    began = time.monotonic()
    conversation, stats, *_ = respond(SERVER, [*first, {"role": "user", "content": "And now?"}])
    assert time.monotonic() - began < engines.CONNECT_TIMEOUT_S + 5
    assert "can't be reached" in stats and conversation[: len(first) + 1] == [
        *first,
        {"role": "user", "content": "And now?"},
    ]
    back = FaultProxy(proxy.upstream, port=port)  # it comes back on the same address
    try:
        again = respond(SERVER, conversation)[0]
        assert again[-1]["role"] == "assistant" and not chat_view.is_failure_note(again[-1])
    finally:
        back.close()
        proxy.__init__(proxy.upstream, port=port)  # the module's proxy, for later tests


def test_the_managed_server_killed_mid_reply_is_reported_and_restarted(engine_app):
    spec = catalog.CATALOG[LLAMA]
    managed = llama_server.server_for(llama_server.find_binary(), loaders.smollm2_gguf_path(), spec.key)
    runtime.endpoint(spec)
    outputs = chat_ui.respond(LLAMA, [{"role": "user", "content": "Write a long essay about the sea."}], "",
                           1.0, 1.0, 0, 2000, 1.0, 5, request=gr.Request(session_hash="k"))  # fmt: skip
    for update in outputs:
        if update[0][-1]["role"] == "assistant" and len(update[0][-1]["content"]) > 20:
            break
    began = time.monotonic()
    managed.proc.kill()
    conversation, stats, *_ = last(outputs)
    assert time.monotonic() - began < 10
    assert chat_view.is_failure_note(conversation[-1]) and ("can't be reached" in stats or "closed the stream" in stats
                                                        or "can't read" in stats), stats  # fmt: skip
    again = respond(LLAMA, [{"role": "user", "content": "Hello"}])[0]
    assert again[-1]["role"] == "assistant" and not chat_view.is_failure_note(again[-1]) and managed.restarts >= 1


def test_a_server_that_stopped_listening_but_is_not_reaped_yet_is_restarted():
    """The race a kill leaves: the port already refuses, but the process hasn't exited (or hangs). The
    next request must start a fresh server, not be sent to the dead port."""
    managed = llama_server.LlamaServer(binary(), loaders.smollm2_gguf_path(), "smollm2", context=1024)
    managed.ensure()
    try:
        lingering = subprocess.Popen(["sleep", "60"])  # alive, listening nowhere: stands for the dying server
        managed.proc.kill(), managed.proc.wait()
        managed.proc, dead_port = lingering, managed.port
        began = time.monotonic()
        endpoint = managed.ensure()
        assert lingering.poll() is not None and managed.restarts == 1 and managed.port != dead_port
        assert time.monotonic() - began < llama_server.DYING_WAIT_S + 30
        assert httpx.get(endpoint.root + "/health", timeout=5).status_code == 200
        before = managed.proc
        assert managed.ensure() == endpoint and managed.proc is before  # a healthy one is left alone
    finally:
        managed.stop()


def test_the_makefile_builds_the_pinned_source_the_app_looks_for():
    makefile = (ROOT / "Makefile").read_text()
    assert f"LLAMA_CPP_PYTHON := {llama_server.LLAMA_CPP_PYTHON}\n" in makefile
    assert "-DGGML_NATIVE=OFF" in makefile and "test-all: $(STAMP) chromium llama-server" in makefile


@pytest.mark.parametrize(
    ("flavor", "sent", "ignored"),
    [
        ("llama.cpp", {"top_k": 50, "repeat_penalty": 1.3}, ["last 64 tokens"]),
        ("vllm", {"top_k": 50, "repetition_penalty": 1.3}, []),
        ("sglang", {"top_k": 50, "repetition_penalty": 1.3}, []),
        ("tgi", {}, ["ignores top-k", "ignores the repetition penalty"]),
        ("ollama", {}, ["ignores top-k", "ignores the repetition penalty", "no token probabilities"]),
        ("openai", {}, ["ignores top-k", "ignores the repetition penalty"]),
    ],
)
def test_each_server_gets_our_settings_in_its_own_words_and_says_what_it_ignores(flavor, sent, ignored):
    settings = chat_core.GenerationSettings(temperature=0.8, top_k=50, repetition_penalty=1.3, seed=4)
    options, notices = engines.request_options(engines.FLAVORS[flavor], settings, 4)
    assert options.get("extra_body", {}) == sent and options["seed"] == 4 and options["max_tokens"] == 512
    assert len(notices) == len(ignored) and all(any(i in n for n in notices) for i in ignored)
    assert options.get("top_logprobs") == (None if flavor == "ollama" else engines.TOP_ALTERNATIVES)
    no_limit = engines.request_options(engines.FLAVORS[flavor], dataclasses.replace(settings, top_k=0), 4)[0]
    assert no_limit.get("extra_body", {}).get("top_k") == ({"vllm": -1, "sglang": -1}.get(flavor, 0) if sent else None)


def test_a_server_that_does_not_render_its_template_shows_the_messages_it_was_sent(server):
    endpoint = dataclasses.replace(server.endpoint, flavor="vllm")  # llama.cpp takes vLLM's names too
    replies = list(stream_from_server(endpoint, messages(), FAST, threading.Event()))
    assert (
        "renders the chat template itself" in replies[0].prompt
        and '"What is the capital of Japan?"' in replies[0].prompt
    )
    assert replies[-1].stats.engine == "vLLM" and replies[-1].text


def test_stop_on_the_page_ends_a_llama_cpp_reply(engine_app):
    request = gr.Request(session_hash="stop-page")
    outputs = chat_ui.respond(LLAMA, [{"role": "user", "content": "Write a very long essay about rivers."}], "",
                           1.0, 1.0, 0, 2000, 1.0, 5, request=request)  # fmt: skip
    for update in outputs:
        if update[0][-1]["role"] == "assistant" and len(update[0][-1]["content"]) > 20:
            chat_ui.stop_generation(request)
            break
    began = time.monotonic()
    _conversation, stats, *_ = last(outputs)
    assert "ended: stopped" in stats and time.monotonic() - began < 3
