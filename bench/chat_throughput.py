"""Chat throughput through the app's streaming API vs bare `model.generate`, same model, same run.

    python bench/chat_throughput.py [--max-new-tokens 128] [--rounds 3]

Starts the app in-process on the bundled model, then alternates: a greedy `model.generate` call
and the same request through gradio_client's streaming `/chat`. Both produce the same tokens
(greedy, same prompt), so tokens/s compare like for like. Reports the median of per-pair ratios
(target ≥ 0.95), time to first token and tokens/s. Ratios, not absolute times: this machine is noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402
from gradio_client import Client  # noqa: E402

import app as app_module  # noqa: E402
from demos.chat import engine as chat_engine  # noqa: E402
from shared import runtime  # noqa: E402
from shared.settings import Settings  # noqa: E402

PROMPT = "Write a long story about a robot who learns to paint. Describe each painting."


def bare_generate(lm, ids: list[int], max_new_tokens: int) -> tuple[float, int, str]:
    input_ids = torch.tensor([ids], device=next(lm.model.parameters()).device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = lm.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            repetition_penalty=1.0,
            pad_token_id=lm.tokenizer.pad_token_id,
        )
    seconds = time.perf_counter() - start
    new = out[0, len(ids) :].tolist()
    return seconds, len(new), lm.tokenizer.decode(new, skip_special_tokens=True)


def through_api(client: Client, max_new_tokens: int) -> tuple[float, float, str]:
    start = time.perf_counter()
    job = client.submit(
        message=PROMPT, temperature=0, max_new_tokens=max_new_tokens, repetition_penalty=1.0, api_name="/chat"
    )
    first = None
    text = ""
    for text in job:
        if first is None and text:
            first = time.perf_counter()
    return time.perf_counter() - start, (first or time.perf_counter()) - start, text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    rt = runtime.configure(Settings(port=0, preload=False))
    settings = rt.settings
    demo = app_module.build_app()
    port = 7900 + os.getpid() % 50
    app_module.launch(demo, Settings(**{**settings.__dict__, "port": port}), prevent_thread_lock=True, quiet=True)
    client = Client(demo.local_url, verbose=False)
    lm = runtime.causal_lm("smollm2-135m-instruct")
    ids = chat_engine._encode(lm.tokenizer, [{"role": "user", "content": PROMPT}])

    through_api(client, 8)  # warm-up both paths
    bare_generate(lm, ids, 8)
    bare_tps, api_tps, ratios, ttfts = [], [], [], []
    for round_ in range(args.rounds):
        # Pair each API run with a bare run next to it in time, alternating which goes first, and
        # take the median of the per-pair ratios: the machine's speed drifts between pairs.
        api_first = round_ % 2 == 1
        if api_first:
            total, ttft, api_text = through_api(client, args.max_new_tokens)
        seconds, n, bare_text = bare_generate(lm, ids, args.max_new_tokens)
        if not api_first:
            total, ttft, api_text = through_api(client, args.max_new_tokens)
        bare_tps.append(n / seconds)
        ttfts.append(ttft)
        if api_text.strip() != bare_text.strip():
            sys.exit("the API and bare generate produced different text; the comparison would be unfair")
        api_tps.append(n / total)
        ratios.append(api_tps[-1] / bare_tps[-1])
    demo.close()

    print(
        f"device: {rt.device}, torch threads: {torch.get_num_threads()}, tokens per reply: {n}, rounds: {args.rounds}"
    )
    print(f"bare model.generate:     {statistics.median(bare_tps):6.1f} tokens/s (median; all: {_fmt(bare_tps)})")
    print(f"app /chat API streaming: {statistics.median(api_tps):6.1f} tokens/s (median; all: {_fmt(api_tps)})")
    print(f"time to first token via API: {statistics.median(ttfts):.3f} s (median)")
    print(f"ratio API / bare, per pair: {_fmt(ratios, 3)}")
    print(f"ratio API / bare: {statistics.median(ratios):.3f} (median of pairs; target >= 0.95)")


def _fmt(values: list[float], digits: int = 1) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


if __name__ == "__main__":
    main()
