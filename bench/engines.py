"""Chat speed on each engine, alternating in one run: the app's ``/chat`` on llama.cpp, a bare
``llama-server`` with the same settings, and the app's ``/chat`` on in-process transformers.

    make llama-server && python bench/engines.py [--rounds 5] [--tokens 128]

Starts the app in-process on the bundled model (its llama.cpp engine manages its own server) and a
second, bare ``llama-server`` on the same GGUF with the same flags, called straight through the
``openai`` client with the app's request (greedy, seed, top-5 logprobs, usage). Each round runs the
three in turn, so the machine's noise hits them alike. Tokens are counted the same way for all three
(the bundled tokenizer on the reply text); decode speed is tokens after the first ÷ time after it.

Reports medians and the ratios the issue asks for: /chat llama.cpp ÷ bare llama-server (≥ 0.9) and
/chat llama.cpp ÷ /chat transformers, with time to first token for each.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import httpx  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

import app as app_module  # noqa: E402
from demos.chat import core as chat  # noqa: E402
from shared import engines, llama_server, loaders, runtime  # noqa: E402
from shared.settings import Settings  # noqa: E402

PROMPT = "Explain in detail how a bicycle works, part by part."
RESULTS = Path(__file__).parent / "results" / "engines.json"


def timed(chunks) -> tuple[float, float, str]:
    """(seconds to the first text, seconds to the end, the whole text) of a stream of text-so-far."""
    start, first, text = time.perf_counter(), None, ""
    for text in chunks:
        if text and first is None:
            first = time.perf_counter()
    return (first or time.perf_counter()) - start, time.perf_counter() - start, text


def app_chat(url: str, model: str, tokens: int):
    """``/chat`` over Gradio's raw HTTP route (the SSE stream read as it comes: no polling client)."""
    data = [PROMPT, [], "", 0.0, 1.0, 0, tokens, 1.0, 1, model]
    with httpx.Client(base_url=url, timeout=300) as http:
        event = http.post("gradio_api/call/chat", json={"data": data}).json()["event_id"]

        def texts():
            with http.stream("GET", f"gradio_api/call/chat/{event}") as response:
                kind = ""
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        kind = line.removeprefix("event:").strip()
                    elif line.startswith("data:") and kind in ("generating", "complete"):
                        yield json.loads(line.removeprefix("data:"))[0]
                    if kind == "error":
                        raise RuntimeError(line)

        return timed(texts())


def bare(endpoint: engines.Endpoint, tokens: int):
    settings = chat.GenerationSettings(temperature=0.0, max_new_tokens=tokens, repetition_penalty=1.0, seed=1)
    options, _ = engines.request_options(engines.FLAVORS["llama.cpp"], settings, 1)
    stream = endpoint.client().chat.completions.create(
        model=endpoint.model,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
        **options,
    )

    def texts():
        text = ""
        for chunk in stream:
            for choice in chunk.choices[:1]:
                if choice.delta is not None and choice.delta.content:
                    text += choice.delta.content
                    yield text
        yield text

    return timed(texts())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    binary = llama_server.find_binary()
    if binary is None:
        sys.exit("llama-server is not built: run `make llama-server` first")
    gguf = loaders.smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runtime.configure(Settings(port=port, chat_engine="llama.cpp", preload=False))
    demo = app_module.build_app()
    app_module.launch(demo, runtime.get().settings, prevent_thread_lock=True, quiet=True)
    bare_server = llama_server.LlamaServer(binary, gguf, "bare", context=runtime.get().settings.llama_context)
    endpoint = bare_server.ensure()

    runs = {
        "/chat llama.cpp": lambda: app_chat(demo.local_url, "smollm2-135m-instruct-llama.cpp", args.tokens),
        "bare llama-server": lambda: bare(endpoint, args.tokens),
        "/chat transformers": lambda: app_chat(demo.local_url, "smollm2-135m-instruct", args.tokens),
    }
    for run in runs.values():  # warm-up: load the model, start the server, fill caches
        run()
    figures: dict[str, dict[str, list[float]]] = {name: {"tok_s": [], "ttft_s": []} for name in runs}
    texts: dict[str, str] = {}
    for round_ in range(args.rounds):
        for name, run in runs.items():
            ttft, total, text = run()
            n = len(tokenizer.encode(text, add_special_tokens=False))
            figures[name]["tok_s"].append((n - 1) / (total - ttft) if total > ttft else 0.0)
            figures[name]["ttft_s"].append(ttft)
            texts[name] = text
            print(f"round {round_ + 1} {name:20s} {n:4d} tokens  {figures[name]['tok_s'][-1]:6.1f} tok/s  "
                  f"TTFT {ttft:.3f} s")  # fmt: skip
    median = {name: {k: statistics.median(v) for k, v in f.items()} for name, f in figures.items()}
    result = {
        "machine": f"{os.cpu_count()} cores",
        "tokens": args.tokens,
        "rounds": args.rounds,
        "median": median,
        "ratio_app_llama_over_bare": median["/chat llama.cpp"]["tok_s"] / median["bare llama-server"]["tok_s"],
        "ratio_app_llama_over_transformers": median["/chat llama.cpp"]["tok_s"] / median["/chat transformers"]["tok_s"],
        "same_text_app_and_bare": texts["/chat llama.cpp"] == texts["bare llama-server"],
    }
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    bare_server.stop()
    demo.close()
    llama_server.stop_all()


if __name__ == "__main__":
    main()
