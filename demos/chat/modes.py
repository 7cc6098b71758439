"""Three ways to use an LLM, as chat presets whose effect shows in "what the model sees".

- **direct**: the conversation as it is;
- **few-shot**: example turns inserted before it, showing the kind of answer wanted (short,
  acronyms spelled out); the model imitates them;
- **retrieval**: passages retrieved from the app's own "How it works" explanations for the latest
  question (BM25 over paragraphs), shown to the user and placed in the system prompt, so a small
  model answers from them instead of from what it half-remembers.

Everything here is a pure function of text; ``apply_mode`` is what the Chat tab calls.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections import Counter
from pathlib import Path

MODES = {
    "direct": "Direct: the conversation as typed",
    "few-shot": "Few-shot: example turns first",
    "retrieval": "Retrieval: passages from the app's explanations",
}
TOP_PASSAGES = 2  # passages placed in the prompt (SmolLM2's 8k window holds many, a 135M model reads few well)

# The tabs whose "How it works" text is the knowledge base: (tab, its package's how_it_works.md, which
# the tab itself shows too). Read as files: chat imports no other tab.
DEMOS = Path(__file__).resolve().parent.parent
SOURCES = (
    ("Chat", DEMOS / "chat" / "how_it_works.md"),
    ("Attention", DEMOS / "attention" / "how_it_works.md"),
    ("Text-to-image", DEMOS / "text_to_image" / "how_it_works.md"),
    ("GAN / VAE", DEMOS / "latent" / "how_it_works.md"),
)

# Few-shot examples: on other subjects than the graded questions, so they teach the form of an
# answer (one or two sentences, acronyms spelled out, the mechanism named), not its content.
FEW_SHOT = [
    {"role": "user", "content": "What is an MLP?"},
    {
        "role": "assistant",
        "content": "An MLP (multi-layer perceptron) is a neural network made of stacked fully connected "
        "layers with a non-linearity between them; each layer multiplies its input by a weight matrix.",
    },
    {"role": "user", "content": "What does dropout do during training?"},
    {
        "role": "assistant",
        "content": "Dropout randomly sets some activations to zero at each training step, so the network "
        "cannot rely on any single unit; at inference nothing is dropped.",
    },
]

RETRIEVAL_PROMPT = (
    "Answer the user's question in one or two sentences, using the passages below. "
    "Use their words; if they do not answer it, say so.\n\n{passages}"
)


@dataclasses.dataclass(frozen=True)
class Passage:
    tab: str  # the tab whose explanation it comes from
    title: str  # its bold heading, e.g. "Causal masks."
    text: str  # the whole paragraph, heading included

    def cite(self) -> str:
        return f"[{self.tab} · {self.title}] {self.text}"


# --- the knowledge base: the app's own explanations, one passage per paragraph --------------


def split_passages(tab: str, text: str) -> list[Passage]:
    """Paragraphs of a Markdown explanation; a paragraph's bold opening is its title."""
    passages = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        flat = " ".join(paragraph.split())
        if not flat:
            continue
        heading = re.match(r"\*\*(.+?)\*\*", flat)
        title = heading.group(1) if heading else flat[:60]
        passages.append(Passage(tab, title, flat.replace("**", "")))
    return passages


@functools.cache
def knowledge() -> tuple[Passage, ...]:
    """Every passage of every tab's "How it works" (read on first use)."""
    found: list[Passage] = []
    for tab, path in SOURCES:
        found += split_passages(tab, path.read_text())
    return tuple(found)


# --- retrieval: BM25 over the passages --------------------------------------------------------

STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how in is it its of on or that the this to what when "
    "which why with you your i me my we our it's there their them they than then so such into one also".split()
)


def terms(text: str) -> list[str]:
    """Lower-case word stems: 'Queries' and 'query' match, 'GANs' and 'GAN' too."""
    words = re.findall(r"[a-zα-ωβεμσ√]+", text.lower())
    return [_stem(w) for w in words if w not in STOPWORDS and len(w) > 1]


def _stem(word: str) -> str:
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    return word


class BM25:
    """Okapi BM25 (k1 = 1.5, b = 0.75): the classic lexical ranking, no model needed."""

    def __init__(self, passages: tuple[Passage, ...] | list[Passage], k1: float = 1.5, b: float = 0.75) -> None:
        self.passages = list(passages)
        self.docs = [Counter(terms(f"{p.title} {p.title} {p.text}")) for p in self.passages]  # title weighs twice
        self.lengths = [sum(doc.values()) for doc in self.docs]
        self.mean_length = sum(self.lengths) / max(len(self.lengths), 1)
        df = Counter(term for doc in self.docs for term in doc)
        n = len(self.docs)
        self.idf = {term: math.log(1 + (n - count + 0.5) / (count + 0.5)) for term, count in df.items()}
        self.k1, self.b = k1, b

    def scores(self, query: str) -> list[float]:
        wanted = terms(query)
        out = []
        for doc, length in zip(self.docs, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self.mean_length)
            out.append(sum(self.idf.get(t, 0.0) * doc[t] * (self.k1 + 1) / (doc[t] + norm) for t in wanted if t in doc))
        return out

    def search(self, query: str, k: int = TOP_PASSAGES) -> list[tuple[Passage, float]]:
        ranked = sorted(zip(self.passages, self.scores(query), strict=True), key=lambda pair: -pair[1])
        return [(p, s) for p, s in ranked[:k] if s > 0]


@functools.cache
def index() -> BM25:
    return BM25(knowledge())


# --- the presets ------------------------------------------------------------------------------


def check_mode(mode: object) -> str:
    if mode is None or mode == "":
        return "direct"
    if mode not in MODES:
        raise ValueError(f"Unknown chat mode {str(mode)[:40]!r}; use one of: {', '.join(MODES)}.")
    return str(mode)


def apply_mode(mode: str, messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[tuple[Passage, float]]]:
    """The messages the model gets under ``mode``, and the passages retrieved (retrieval only).

    ``messages`` is system prompt (optional) + turns ending with the user's question. Few-shot
    examples go after the system prompt; retrieved passages join the system prompt (the user's
    own system prompt, if any, stays first)."""
    mode = check_mode(mode)
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system) :]
    if mode == "few-shot":
        return [*system, *FEW_SHOT, *turns], []
    if mode == "retrieval":
        question = next((m["content"] for m in reversed(turns) if m["role"] == "user"), "")
        found = index().search(question)
        if not found:
            return messages, []
        passages = "\n\n".join(f"Passage {i}: {p.cite()}" for i, (p, _) in enumerate(found, 1))
        instruction = RETRIEVAL_PROMPT.format(passages=passages)
        if system:
            instruction = f"{system[0]['content']}\n\n{instruction}"
        return [{"role": "system", "content": instruction}, *turns], found
    return messages, []


def passages_markdown(found: list[tuple[Passage, float]], mode: str) -> str:
    """What the retrieval step found, for the panel beside the conversation."""
    if mode != "retrieval":
        return f"*Mode: {MODES.get(mode, mode)}. Pick Retrieval to see passages found for each question.*"
    if not found:
        return "*Retrieval found no passage sharing a word with the question: the model got the conversation alone.*"
    lines = [f"**Retrieved for the last question** (BM25 over {len(knowledge())} passages of the app's explanations):"]
    lines += [f"{i}. *{p.tab} · {p.title}* (score {score:.1f}) — {p.text}" for i, (p, score) in enumerate(found, 1)]
    return "\n\n".join(lines)


def grade(answer: str, required: list[list[str]]) -> bool:
    """The graded set's rule: for every group of key terms, the answer holds at least one of them
    (case-insensitive). ``tests/data/concept_questions.json`` holds the questions."""
    text = answer.lower()
    return all(any(term.lower() in text for term in group) for group in required)
