"""Attention tab on the bundled model: compute + render every view for a 128-token text.

    python bench/attention_views.py [--tokens 128] [--rounds 5]

Times what "Show attention" does (one forward pass with attention weights, then every view:
heatmap, head view, model view of all 30×9 heads, mean, rollout, shaded text, the Q/K/V
recomputation and the next-token panel) against a bare forward pass in the same run.
Target: compute + render < 2 s on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from demos.attention import core as attention_core
from demos.attention import ui as attention_ui  # noqa: E402
from shared import runtime  # noqa: E402
from shared.settings import Settings  # noqa: E402

SENTENCE = "The quick brown fox jumps over the lazy dog while the cat watches from the warm windowsill. "


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    runtime.configure(Settings(preload=False))
    am = runtime.attention_model("smollm2-135m-instruct")
    ids = am.tokenizer(SENTENCE * 20)["input_ids"][: args.tokens]
    text = am.tokenizer.decode(ids)
    assert len(attention_core.tokenize(am, text)) == args.tokens, "the text must be exactly --tokens long"

    def bare() -> None:
        with torch.inference_mode():
            am.model(input_ids=torch.tensor([ids]), output_attentions=True)

    def full() -> None:
        result = attention_ui.run(am.key, text, 12, 4, args.tokens - 1, 1.0, 0, 1.0)
        assert attention_ui.RESULTS.get(result[0]).shape == (30, 9, args.tokens)

    bare(), full()  # warm-up
    bare_s, full_s = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        bare()
        bare_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        full()
        full_s.append(time.perf_counter() - start)
    full_median = statistics.median(full_s)
    print(f"device: {runtime.get().device}, torch threads: {torch.get_num_threads()}, tokens: {args.tokens}")
    print(f"bare forward with attentions: {statistics.median(bare_s):.3f} s (median of {args.rounds})")
    print(f"compute + render every view:  {full_median:.3f} s (median; all: {', '.join(f'{s:.2f}' for s in full_s)})")
    print(
        f"ratio full / bare forward: {full_median / statistics.median(bare_s):.1f}x; target: full < 2 s -> "
        f"{'met' if full_median < 2 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
