"""The bundled chat model's accuracy on the graded concept questions, per chat mode.

    python bench/chat_modes.py [--max-new-tokens 80] [--modes direct,few-shot,retrieval]

Each of the questions in ``tests/data/concept_questions.json`` (GANs, VAEs, attention, diffusion,
chat) is asked alone, greedily, in each mode, through the tab's own path (``apply_mode`` then
``stream_reply``); an answer is right when it holds the question's key terms
(``chat_modes.grade``). Prints accuracy per mode and topic, and writes every answer to
``bench/results/chat_modes_<mode>.json`` so the grading can be read and checked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from demos.chat import core as chat_core  # noqa: E402
from demos.chat import engine as chat_engine  # noqa: E402
from demos.chat import modes as chat_modes  # noqa: E402
from shared import runtime  # noqa: E402
from shared.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--modes", default=",".join(chat_modes.MODES))
    args = parser.parse_args()
    questions = json.loads((ROOT / "tests" / "data" / "concept_questions.json").read_text())["questions"]
    runtime.configure(Settings(preload=False))
    lm = runtime.causal_lm("smollm2-135m-instruct")
    settings = chat_core.validate_settings(temperature=0.0, max_new_tokens=args.max_new_tokens)
    results, started = [], time.perf_counter()
    for mode in args.modes.split(","):
        for item in questions:
            messages, found = chat_modes.apply_mode(mode, [{"role": "user", "content": item["question"]}])
            reply = list(chat_engine.stream_reply(lm, messages, settings))[-1]
            right = chat_modes.grade(reply.text, item["all"])
            results.append({"mode": mode, "topic": item["topic"], "question": item["question"], "right": right,
                            "answer": reply.text, "passages": [p.title for p, _ in found]})  # fmt: skip
            print(f"{mode:9} {'✓' if right else '✗'} {item['question'][:60]:60} {reply.text[:70]!r}", flush=True)
    table: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for row in results:
        table[row["mode"]]["all"].append(row["right"])
        table[row["mode"]][row["topic"]].append(row["right"])
    topics = ["all", *sorted({q["topic"] for q in questions})]
    print(f"\n{len(questions)} questions, greedy, max {args.max_new_tokens} new tokens, "
          f"{time.perf_counter() - started:.0f} s in all\n")  # fmt: skip
    print("| mode | " + " | ".join(topics) + " |\n|---|" + "---|" * len(topics))
    for mode, by_topic in table.items():
        cells = [f"{sum(by_topic[t])}/{len(by_topic[t])} ({sum(by_topic[t]) / len(by_topic[t]):.0%})" for t in topics]
        print(f"| {mode} | " + " | ".join(cells) + " |")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    for mode in table:  # one file per mode, so a run of some modes never overwrites another's answers
        rows = [row for row in results if row["mode"] == mode]
        (out / f"chat_modes_{mode}.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
