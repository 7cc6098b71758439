"""The Attention tab's views: numbers in, pictures and HTML out (no model calls here).

Heatmaps are SVG with one ``<rect>`` per cell whose ``<title>`` names the row token (the query),
the column token (the key) and the weight, so hovering a cell shows its value in any browser;
the tab's script also writes it under the map. Past ``HOVER_MAX_TOKENS`` tokens the cells are one
embedded picture and each row's hover names its largest weights instead.
"""

from __future__ import annotations

import base64
import colorsys
import dataclasses
import io
from html import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from demos.attention.core import AttentionResult, Retrieval

HEATMAP_PX = 640  # heatmaps are at most this wide
HOVER_MAX_TOKENS = 128  # up to this many tokens every cell is its own element with its value on hover
THUMB_PX = 48  # model-view thumbnail size
SINK_GREY = (209, 213, 219)  # the first column, when it is left out of the colour scale
ROW_TOP = 3  # weights named per row past HOVER_MAX_TOKENS


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _short(token: str, width: int = 12) -> str:
    token = token.replace("\n", "\\n")
    return token if len(token) <= width else token[: width - 1] + "…"


def _named(tokens: list[str], i: int) -> str:
    """Token ``i`` for a sentence: its index and its text in quotes (leading spaces kept)."""
    return f'{i} "{_short(tokens[i], 20)}"'


def _weight(w: float) -> str:
    return f"{w:.4f}" if w == 0 or w >= 1e-3 else f"{w:.1e}"


def _blues(matrix: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] → RGB uint8, white to dark blue (sqrt, so small weights stay visible)."""
    x = np.sqrt(np.clip(matrix.astype(np.float32), 0, 1))[..., None]
    white, blue = np.array([255, 255, 255]), np.array([8, 48, 107])
    return (white + (blue - white) * x).astype(np.uint8)


# --- heatmaps ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HeatmapScale:
    """How weights become colours: divided by ``top`` (1 = the weights as they are); with
    ``first_grey`` the first column is grey and out of the scale."""

    top: float = 1.0
    first_grey: bool = False


def scale_for(matrix: np.ndarray, leave_out_first: bool) -> HeatmapScale:
    """The colour scale: the weights as they are, or (leaving out the first column) stretched so the
    largest weight on any other token is the darkest blue."""
    if not leave_out_first or matrix.shape[1] < 2:
        return HeatmapScale()
    rest = float(matrix[:, 1:].astype(np.float32).max())
    return HeatmapScale(top=rest if rest > 0 else 1.0, first_grey=True)


def cell_colours(matrix: np.ndarray, scale: HeatmapScale) -> np.ndarray:
    """(T, T, 3) uint8: each cell's colour under ``scale``."""
    colours = _blues(np.clip(matrix.astype(np.float32) / scale.top, 0, 1))
    if scale.first_grey:
        colours[:, 0] = SINK_GREY
    return colours


def _axis_labels(tokens: list[str], margin: int, cell: int, font: int) -> list[str]:
    """Row labels on the left, column labels rotated along the top."""
    parts = []
    for i, token in enumerate(tokens):
        label, middle = escape(_short(token)), margin + i * cell + cell / 2
        parts.append(
            f'<text x="{margin - 4}" y="{middle:g}" text-anchor="end" dominant-baseline="central" '
            f'font-size="{font}" xml:space="preserve">{label}</text>'
            f'<text transform="translate({middle:g},{margin - 4}) rotate(-90)" dominant-baseline="central" '
            f'font-size="{font}" xml:space="preserve">{label}</text>'
        )
    return parts


def _cells(matrix: np.ndarray, tokens: list[str], colours: np.ndarray) -> list[str]:
    """Per row a group of 1×1 rects (cell units; their size is set once, in CSS), one per non-zero cell, each
    titled row token → column token: weight. Zeros are not drawn: the background says so."""
    names = [escape(_named(tokens, i), quote=False) for i in range(len(tokens))]
    parts = [
        "<style>.hm-svg g.hm-row > rect { width: 1px; height: 1px; }"
        " .hm-svg g.hm-row > rect:hover { stroke: #dc2626; stroke-width: 0.12; }</style>"
    ]
    for i, row in enumerate(matrix.astype(np.float32)):
        parts.append(f'<g class="hm-row" transform="translate(0,{i})">')
        for j in np.flatnonzero(row):
            r, g, b = colours[i, j]
            parts.append(
                f'<rect x="{j}" fill="#{r:02x}{g:02x}{b:02x}"><title>{names[i]} → {names[j]}: '
                f"{_weight(float(row[j]))}</title></rect>"
            )
        parts.append("</g>")
    return parts


def _picture_rows(matrix: np.ndarray, tokens: list[str], colours: np.ndarray) -> list[str]:
    """Past HOVER_MAX_TOKENS: the cells as one picture, and per row a hover naming its largest weights."""
    png = io.BytesIO()
    Image.fromarray(colours).save(png, format="PNG")
    n = len(tokens)
    parts = [
        f'<image href="data:image/png;base64,{base64.b64encode(png.getvalue()).decode()}" width="{n}" height="{n}" '
        'preserveAspectRatio="none" style="image-rendering:pixelated"/>'
    ]
    for i, row in enumerate(matrix.astype(np.float32)):
        largest = [int(j) for j in np.argsort(-row)[:ROW_TOP] if row[j] > 0]
        top = ", ".join(f"{escape(_named(tokens, j), quote=False)} {_weight(float(row[j]))}" for j in largest)
        parts.append(
            f'<rect y="{i}" width="{n}" height="1" fill="transparent">'
            f"<title>{escape(_named(tokens, i), quote=False)} gives most weight to {top}</title></rect>"
        )
    return parts


def heatmap_svg(matrix: np.ndarray, tokens: list[str], title: str, scale: HeatmapScale | None = None) -> str:
    """Rows = the token that attends (query), columns = the token attended to (key); hover a cell for its weight."""
    n = len(tokens)
    scale = scale or HeatmapScale()
    cell = max(2, min(24, HEATMAP_PX // n))
    labelled = cell >= 8
    margin = 90 if labelled else 4
    side = margin + n * cell + 4
    colours = cell_colours(matrix, scale)
    parts = [
        f'<svg class="hm-svg" viewBox="0 0 {side} {side}" width="{side}" height="{side}" role="img" '
        f'aria-label="{escape(title)}" style="max-width:100%;height:auto;font-family:sans-serif">',
    ]
    if labelled:
        parts += _axis_labels(tokens, margin, cell, max(8, min(12, cell - 2)))
    # the cells in cell units: cell (i, j) is the unit square at (j, i)
    parts.append(f'<g transform="translate({margin},{margin}) scale({cell})" shape-rendering="crispEdges">')
    parts.append(f'<rect width="{n}" height="{n}" fill="#ffffff"><title>weight 0</title></rect>')
    draw = _cells if n <= HOVER_MAX_TOKENS else _picture_rows
    parts += draw(matrix, tokens, colours)
    parts.append("</g></svg>")
    hint = (
        "Hover a cell to read its weight."
        if n <= HOVER_MAX_TOKENS
        else f"Over {HOVER_MAX_TOKENS} tokens: hover a row to read its largest weights."
    )
    return (
        f'<div class="attention-heatmap"><div class="hm-title"><b>{escape(title)}</b> · rows (queries) attend to '
        f'columns (keys)</div>{"".join(parts)}<div class="hm-readout" aria-live="polite">{hint}</div>'
        '<button type="button" class="hm-download" style="font-size:0.8em;padding:2px 8px">Download SVG</button></div>'
    )


# --- rollout and its attention sink ---------------------------------------------------------------


def sink_share(flow: np.ndarray) -> float:
    """The mean share of every later token's rollout that ends on the first token."""
    return float(flow[1:, 0].mean()) if len(flow) > 1 else 1.0


def _percent(share: float) -> str:
    """A share as a percentage that never rounds up to 100 % (or down to 0 %) unless it is."""
    if 0.995 <= share < 1:
        return "over 99%"
    if 0 < share < 0.005:
        return "under 1%"
    return f"{share:.0%}"


def rollout_html(flow: np.ndarray, tokens: list[str], leave_out_first: bool) -> str:
    """The rollout heatmap under a caption saying why its first column is dark, optionally with the
    first token left out of the colour scale so the rest can be read."""
    scale = scale_for(flow, leave_out_first)
    then = (
        "Here the first token is left out of the colours (grey), which spread over the other tokens; hovering "
        "still shows every true weight."
        if scale.first_grey
        else "Tick <i>leave out the first token</i> to spread the colours over the other tokens."
    )
    caption = (
        f'<p class="sink-caption">On this text <b>{_percent(sink_share(flow))}</b> of each later token\'s rollout '
        f"ends on the first token, {escape(_named(tokens, 0))}: an <b>attention sink</b>. Softmax weights must add "
        "up to 1, so a head with nothing to look for parks its weight on a token every position can see, and "
        f"rollout multiplies that through every layer. {then}</p>"
    )
    title = "Rollout across all layers"
    if scale.first_grey:
        title += f" · first token (grey) left out: darkest blue = {_weight(scale.top)}, the largest other weight"
    return caption + heatmap_svg(flow, tokens, title, scale)


# --- the model view: every head as a thumbnail ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GridLayout:
    cell: int  # pixels per thumbnail, gap included
    top: int  # pixels above the first row
    layers_across: bool = False  # columns are layers (a deep model reads as one wide strip), else heads

    def locate(self, x: int, y: int, layers: int, heads: int) -> tuple[int, int] | None:
        """The (layer, head) of the thumbnail at pixel (x, y), or None between thumbnails."""
        row, column = (y - self.top) // self.cell, (x - 30) // self.cell
        layer, head = (column, row) if self.layers_across else (row, column)
        return (layer, head) if 0 <= layer < layers and 0 <= head < heads and x >= 30 and y >= self.top else None


GRID = GridLayout(cell=THUMB_PX + 4, top=20)


def grid_layout(layers: int, heads: int) -> GridLayout:
    """Layers across when there are more of them than heads: SmolLM2's 30 × 9 is a 1,590 × 488 strip
    (thumbnails ~43 px on a laptop) instead of a 1,580 px tall column of them."""
    return dataclasses.replace(GRID, layers_across=layers > heads)


def model_view_image(result: AttentionResult) -> tuple[Image.Image, GridLayout]:
    """All layers × heads as thumbnails, the longer of the two across."""
    layers, heads, _ = result.shape
    layout = grid_layout(layers, heads)
    columns, rows = (layers, heads) if layout.layers_across else (heads, layers)
    column_label, row_label = ("L", "h") if layout.layers_across else ("h", "L")
    image = Image.new("RGB", (30 + columns * layout.cell, layout.top + rows * layout.cell), "white")
    draw = ImageDraw.Draw(image)
    font = _font(10)
    for column in range(columns):
        draw.text(
            (30 + column * layout.cell + THUMB_PX // 2 - 6, 4), f"{column_label}{column}", font=font, fill="black"
        )
    for row in range(rows):
        draw.text((2, layout.top + row * layout.cell + THUMB_PX // 2 - 5), f"{row_label}{row}", font=font, fill="black")
        for column in range(columns):
            layer, head = (column, row) if layout.layers_across else (row, column)
            # shrink the (T, T) weights first, then colour the 48² thumbnail: 270 maps of 512² stay cheap
            weights = Image.fromarray(result.attentions[layer, head].astype(np.float32))  # mode "F"
            small = np.asarray(weights.resize((THUMB_PX, THUMB_PX), Image.BILINEAR))
            image.paste(Image.fromarray(_blues(small)), (30 + column * layout.cell, layout.top + row * layout.cell))
    return image, layout


# --- HTML views -------------------------------------------------------------------------------------


def head_colour(head: int, heads: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(head / max(heads, 1), 0.75, 0.85)
    return int(r * 255), int(g * 255), int(b * 255)


def head_view_html(result: AttentionResult, layer: int, token: int) -> str:
    """What one token attends to in every head of a layer: one colour per head, opacity = weight."""
    _, heads, _ = result.shape
    rows = []
    for head in range(heads):
        r, g, b = head_colour(head, heads)
        cells = "".join(
            f'<span title="{escape(_short(t, 30))}: {w:.1%}" style="background:rgba({r},{g},{b},{min(1.0, float(w) * 1.5):.2f});'
            f'padding:1px 2px;margin:1px;border-radius:3px;white-space:pre">{escape(_short(t, 10))}</span>'
            for t, w in zip(result.tokens, result.attentions[layer, head, token], strict=True)
        )
        rows.append(
            f'<div style="margin:2px 0"><b style="color:rgb({r},{g},{b});display:inline-block;width:3.2em">h{head}</b>{cells}</div>'
        )
    header = (
        f"<div>Layer {layer}: where <b>{escape(_short(result.tokens[token], 30))}</b> (token {token}) looks, "
        "in each head. Hover a token for its weight.</div>"
    )
    return f'<div class="head-view" style="font-size:0.85em;line-height:1.9">{header}{"".join(rows)}</div>'


def shaded_text_html(weights: np.ndarray, tokens: list[str], selected: int) -> str:
    """The text itself, each token shaded by the weight the selected token gives it."""
    spans = []
    for i, (token, weight) in enumerate(zip(tokens, weights, strict=True)):
        outline = "outline:2px solid #dc2626;" if i == selected else ""
        spans.append(
            f'<span class="att-tok" title="{float(weight):.1%}" style="background:rgba(37,99,235,{min(1.0, float(weight) * 2):.2f});'
            f'{outline}border-radius:3px;white-space:pre-wrap">{escape(token)}</span>'
        )
    return '<div class="shaded-text" style="line-height:2">' + "".join(spans) + "</div>"


def retrieval_html(r: Retrieval, tokens: list[str], token: int, top: int = 12) -> str:
    order = np.argsort(-r.weights)[:top]
    rows = "".join(
        f"<tr><td>{j}</td><td><code>{escape(_short(tokens[j], 20))}</code></td>"
        f"<td>{r.scores[j]:.3f}</td><td>{r.weights[j]:.4f}</td><td>{r.reported[j]:.4f}</td></tr>"
        for j in order
    )
    agree = "✓ matches" if r.max_difference < 1e-3 else "✗ differs from"
    return (
        f"<div>Query: token {token} <code>{escape(_short(tokens[token], 20))}</code>; head size d = {r.head_dim}; "
        f"reads key/value head {r.kv_head}.</div>"
        "<div>score = q·k / √d → softmax → weight; output = Σ weight × value "
        f"(a {r.head_dim}-vector, norm {np.linalg.norm(r.output):.3f}).</div>"
        f"<div><b>{agree}</b> the model's reported attention (largest difference {r.max_difference:.1e}).</div>"
        "<table><tr><th>key</th><th>token</th><th>q·k/√d</th><th>softmax weight</th><th>model reports</th></tr>"
        f"{rows}</table>"
    )


def token_choices(tokens: list[str]) -> list[tuple[str, int]]:
    """The token picker's (label, index) pairs."""
    return [(f"{i}: {_short(t, 20)}", i) for i, t in enumerate(tokens)]


def next_token_heading(tokens: list[str], token: int) -> str:
    """Which position the next-token panel predicts after, in words."""
    where = " (the end of the text)" if token == len(tokens) - 1 else ""
    return f"After token {token} <code>{escape(repr(_short(tokens[token], 30)))}</code>{where} the model predicts:"


def next_token_html(rows: list[tuple[str, float, float]], heading: str) -> str:
    lines = []
    for token, model_p, sampling_p in rows:
        lines.append(
            f"<tr><td><code>{escape(repr(token))}</code></td>"
            f'<td><div style="background:#93c5fd;width:{model_p * 200:.0f}px;height:10px"></div>{model_p:.1%}</td>'
            f'<td><div style="background:#f59e0b;width:{sampling_p * 200:.0f}px;height:10px"></div>{sampling_p:.1%}</td></tr>'
        )
    return (
        f'<div class="next-heading">{heading}</div>'
        '<table class="next-token"><tr><th>next token</th><th>model</th><th>after temperature / top-k / top-p</th></tr>'
        + "".join(lines)
        + "</table>"
    )


# --- the tab's script (installed once, by the heatmap's gr.HTML) -------------------------------------

# Gradio 6's slider sends its number box only on blur (its "release" event); this makes typing behave
# like dragging: a pause on a value the slider can take sends it (a synthetic pointerup, which the
# slider's own handler turns into "release"), Enter sends it at once, and a value out of range or
# between steps is put on the slider's scale before Gradio reads it. Heatmap cells write their
# <title> under the map on hover or tap; "Download SVG" saves the map beside it.
CONTROLS_JS = """
if (!window.__attentionTab) {
  window.__attentionTab = true;
  const PAUSE_MS = 500;
  const timers = new WeakMap(), before = new WeakMap();
  const isBox = (el) => el instanceof HTMLInputElement && el.matches('.attention-number input[type=number]');
  const bounds = (box) => [Number(box.min), Number(box.max), Number(box.step) || 1];
  const onScale = (box) => {
    const v = box.valueAsNumber, [lo, hi, step] = bounds(box), k = (v - lo) / step;
    return Number.isFinite(v) && v >= lo && v <= hi && Math.abs(k - Math.round(k)) < 1e-6;
  };
  const put = (box, text) => { box.value = text; box.dispatchEvent(new Event('input', {bubbles: true})); };
  const settle = (box) => {
    const v = box.valueAsNumber, [lo, hi, step] = bounds(box);
    if (!Number.isFinite(v)) put(box, before.get(box) ?? String(lo));
    else {
      const text = String(Number(Math.min(hi, Math.max(lo, lo + Math.round((v - lo) / step) * step)).toFixed(6)));
      if (text !== box.value) put(box, text);
    }
    clearTimeout(timers.get(box));
  };
  document.addEventListener('focusin', (e) => { if (isBox(e.target)) before.set(e.target, e.target.value); });
  document.addEventListener('input', (e) => {
    const box = e.target;
    if (!isBox(box)) return;
    clearTimeout(timers.get(box));
    timers.set(box, setTimeout(() => {
      if (onScale(box) && document.contains(box)) box.dispatchEvent(new PointerEvent('pointerup', {bubbles: true}));
    }, PAUSE_MS));
  }, true);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && isBox(e.target)) { e.preventDefault(); e.target.blur(); }
  }, true);
  document.addEventListener('blur', (e) => { if (isBox(e.target)) settle(e.target); }, true);
  document.addEventListener('pointerover', (e) => {
    const cell = e.target instanceof Element ? e.target.closest('.attention-heatmap rect') : null;
    const title = cell ? cell.querySelector('title') : null;
    const readout = cell ? cell.closest('.attention-heatmap').querySelector('.hm-readout') : null;
    if (title && readout) readout.textContent = title.textContent;
  });
  document.addEventListener('click', (e) => {
    const button = e.target instanceof Element ? e.target.closest('.attention-heatmap .hm-download') : null;
    const svg = button ? button.closest('.attention-heatmap').querySelector('svg') : null;
    if (!svg) return;
    const copy = svg.cloneNode(true);
    copy.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([copy.outerHTML], {type: 'image/svg+xml'}));
    link.download = 'attention.svg';
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  });
}
"""
