"""Bundled chat model in transformers: fp32 vs bf16 vs torch.compile (static cache), same run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/transformers_speed.py [--rounds 3] [--threads 2] [--no-compile]

Loads SmolLM2-135M-Instruct with the app's loader (fp32, default attention = sdpa) once per
variant: fp32 eager (the baseline, what the app runs today), bf16 (``model.to(torch.bfloat16)``),
fp32 + compile and bf16 + compile. "Compile" is transformers' own path: ``generate`` with
``cache_implementation="static"`` and a ``CompileConfig`` (forced on CPU with
``_compile_all_devices``), which compiles the decoding step and runs the prefill eagerly.

Greedy, one fixed chat prompt, exactly 64 new tokens (min = max), 2 torch threads by default. One warm-up
per variant (for compile it includes the compilation, reported apart), then alternating rounds
whose start order rotates; ratios are per round against the baseline of the same round (this
machine is noisy). Time to first token comes from a streamer; decode tokens/s counts the 63
tokens after the first. Also checks that the variant keeps the baseline's probabilities: same
first 16 greedy tokens, and the max |softmax difference| over those steps (raw logits). Then one
call with a prompt of another length shows whether a compiled model recompiles for it.
Writes ``bench/results/transformers_speed.json`` (``transformers_speed_threads<N>.json`` for another
``--threads``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import CompileConfig  # noqa: E402
from transformers.generation.streamers import BaseStreamer  # noqa: E402

from shared import catalog  # noqa: E402
from shared.loaders import load_causal_lm  # noqa: E402
from shared.settings import Settings  # noqa: E402

PROMPT = "Explain step by step how a generative adversarial network is trained, and why it can fail."
OTHER_PROMPT = "What is attention in a transformer?"  # another length: does a compiled model recompile?
NEW_TOKENS = 64
CHECKED_STEPS = 16
COMPILE_LIMIT_S = 600  # give up on a compilation after this long


class Clock(BaseStreamer):
    """Records when generate hands over each new token (its first put is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def run(model, ids: torch.Tensor, compiled: bool, scores: bool = False) -> dict:
    clock = Clock()
    extra = {}
    if compiled:
        config = CompileConfig(fullgraph=True, mode="default")
        config._compile_all_devices = True  # transformers compiles only on accelerators otherwise
        extra = dict(cache_implementation="static", compile_config=config)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            pad_token_id=0,
            streamer=clock,
            output_logits=scores,
            return_dict_in_generate=True,
            **extra,
        )
    end = time.perf_counter()
    tokens = out.sequences[0, ids.shape[1] :].tolist()
    assert len(tokens) == NEW_TOKENS, len(tokens)
    first = clock.times[1]  # times[0] is the prompt
    result = {"total_s": end - start, "ttft_s": first - start, "decode_tps": (NEW_TOKENS - 1) / (end - first)}
    result["tokens"] = tokens
    if scores:
        result["probs"] = [torch.softmax(s[0].float(), -1) for s in out.logits[:CHECKED_STEPS]]
    return result


def compare(ref: dict, got: dict) -> dict:
    """Same greedy tokens, and the max softmax difference while the contexts are still the same."""
    a, b = ref["tokens"][:CHECKED_STEPS], got["tokens"][:CHECKED_STEPS]
    diverge = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)
    steps = CHECKED_STEPS if diverge is None else diverge + 1  # the diverging step still shares a context
    diff = max((p - q).abs().max().item() for p, q in zip(ref["probs"][:steps], got["probs"][:steps], strict=True))
    return {"same_tokens_16": diverge is None, "first_divergence": diverge, "prob_max_abs_diff": diff}


def timeout(signum, frame):
    raise TimeoutError(f"compilation took over {COMPILE_LIMIT_S} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = catalog.CATALOG["smollm2-135m-instruct"]
    cache_dir = Settings().cache_dir

    plan = [("fp32 eager", torch.float32, False), ("bf16", torch.bfloat16, False)]
    if not args.no_compile:
        plan += [("fp32 + compile", torch.float32, True), ("bf16 + compile", torch.bfloat16, True)]
    variants, tokenizer = {}, None
    for name, dtype, compiled in plan:
        lm = load_causal_lm(spec, device="cpu", dtype=torch.float32, cache_dir=cache_dir)
        variants[name] = {"model": lm.model.to(dtype), "compiled": compiled, "rounds": [], "error": None}
        tokenizer = lm.tokenizer
    attn = variants["fp32 eager"]["model"].config._attn_implementation
    messages = [{"role": "user", "content": PROMPT}]
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    ids = torch.tensor([list(encoded["input_ids"])])

    signal.signal(signal.SIGALRM, timeout)
    for name, v in variants.items():  # warm-up, with the probabilities for the exactness check
        signal.alarm(COMPILE_LIMIT_S)
        start = time.perf_counter()
        try:
            v["check"] = run(v["model"], ids, v["compiled"], scores=True)
        except Exception as exc:  # a compiler missing or failing, a timeout: record it, go on
            v["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        finally:
            signal.alarm(0)
        v["warmup_s"] = time.perf_counter() - start
        print(f"warm-up {name}: {v['warmup_s']:.1f} s" + (f" FAILED {v['error']}" if v["error"] else ""), flush=True)
    ok = [name for name, v in variants.items() if not v["error"]]

    for round_ in range(args.rounds):
        order = ok[round_ % len(ok) :] + ok[: round_ % len(ok)]
        for name in order:
            variants[name]["rounds"].append(run(variants[name]["model"], ids, variants[name]["compiled"]))
        print(f"round {round_ + 1}/{args.rounds} done ({', '.join(order)})", flush=True)

    base = variants["fp32 eager"]
    other = tokenizer.apply_chat_template(
        [{"role": "user", "content": OTHER_PROMPT}], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    other_ids = torch.tensor([list(other["input_ids"])])
    results = {}
    for name in ok:
        v = variants[name]
        rs = v["rounds"]
        median = {k: statistics.median(r[k] for r in rs) for k in ("decode_tps", "ttft_s", "total_s")}
        ratios = [r["decode_tps"] / b["decode_tps"] for r, b in zip(rs, base["rounds"], strict=True)]
        ttft_ratios = [r["ttft_s"] / b["ttft_s"] for r, b in zip(rs, base["rounds"], strict=True)]
        start = time.perf_counter()
        run(v["model"], other_ids, v["compiled"])
        results[name] = {
            **median,
            "decode_tps_all": [round(r["decode_tps"], 2) for r in rs],
            "decode_ratio_vs_baseline": statistics.median(ratios),
            "ttft_ratio_vs_baseline": statistics.median(ttft_ratios),
            "warmup_s": v["warmup_s"],
            "compile_s": v["warmup_s"] - median["total_s"] if v["compiled"] else None,
            "other_prompt_first_call_s": time.perf_counter() - start,
            **compare(base["check"], v["check"]),
            "same_64_tokens_every_round": all(r["tokens"] == base["check"]["tokens"] for r in rs),
        }
    failed = {name: {"error": v["error"], "warmup_s": v["warmup_s"]} for name, v in variants.items() if v["error"]}

    flags = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0].split()
    env = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "threads": torch.get_num_threads(),
        "attn_implementation": attn,
        "prompt_tokens": ids.shape[1],
        "other_prompt_tokens": other_ids.shape[1],
        "new_tokens": NEW_TOKENS,
        "rounds": args.rounds,
    }
    print(f"\n{json.dumps(env)}\n")
    print(
        f"{'variant':16} {'decode tok/s':>12} {'ratio':>6} {'TTFT s':>7} {'TTFT ratio':>10} {'compile s':>9} "
        f"{'other prompt s':>14} {'prob diff':>9} same16"
    )
    for name, r in results.items():
        compile_s = f"{r['compile_s']:.1f}" if r["compile_s"] is not None else "-"
        print(
            f"{name:16} {r['decode_tps']:12.1f} {r['decode_ratio_vs_baseline']:6.2f} {r['ttft_s']:7.3f} "
            f"{r['ttft_ratio_vs_baseline']:10.2f} {compile_s:>9} {r['other_prompt_first_call_s']:14.2f} "
            f"{r['prob_max_abs_diff']:9.2e} {r['same_tokens_16']}"
        )
    for name, f in failed.items():
        print(f"{name:16} FAILED after {f['warmup_s']:.1f} s: {f['error']}")
    suffix = "" if args.threads == 2 else f"_threads{args.threads}"
    out = ROOT / "bench" / "results" / f"transformers_speed{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "results": results, "failed": failed}, indent=1) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
