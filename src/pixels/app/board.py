"""The studio's canvas as a component: a `gr.HTML` whose script (`board.js`) paints the strength map over
the photo, in photo pixels, with a translucent overlay, brush size / hardness / opacity, zoom and pan, undo
per stroke, keyboard shortcuts, and exemplar boxes dragged on the photo.

Its value is a JSON object (see `board.js` for both directions); `painting.board_strength` reads the map
out of it. Events: `input` after every stroke (and undo/redo of one), `box` when an exemplar's box was
dragged (the event data: {"slot": k, "box": [x, y, w, h]}), `point` when the Select tool clicked ({"x", "y",
"negative"}) or dragged a box ({"box": [x, y, w, h]}), in photo pixels.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import gradio as gr

HERE = Path(__file__).resolve().parent
SHORTCUTS = (  # (keys, what they do): shown under the canvas and in the docs
    ("B / E / R", "brush / eraser / rectangle fill"),
    ("V", "move and resize exemplar boxes"),
    ("S", "select: click an object (Alt+click leaves out), or drag a box"),
    ("H, or hold Space, or the middle button", "pan"),
    ("wheel, + / -", "zoom at the pointer / at the centre"),
    ("0 / 1 / 2", "fit / 100 % / 200 %"),
    ("[ / ]", "brush size down / up"),
    ("Shift+[ / Shift+]", "hardness down / up"),
    ("Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y)", "undo / redo a stroke"),
    ("M", "show the map itself (gray) instead of the overlay"),
    ("Ctrl+Enter", "run"),
)


def _slider(name: str, label: str, low: int, high: int, value: int, title: str) -> str:
    return (f"<label class='pxb-field' title='{title}'>{label} <input type='range' class='pxb-{name}'"
            f" min='{low}' max='{high}' step='1' value='{value}'> <output class='pxb-{name}-out'></output></label>")


TEMPLATE = f"""
<div class="pxb">
  <div class="pxb-bar" role="toolbar" aria-label="canvas tools">
    <button type="button" data-tool="brush" title="Brush (B)">Brush</button>
    <button type="button" data-tool="eraser" title="Eraser (E): back to 0 %">Eraser</button>
    <button type="button" data-tool="rect" title="Rectangle fill (R)">Rectangle</button>
    <button type="button" data-tool="move" title="Move exemplar boxes (V)">Boxes</button>
    <button type="button" data-tool="pan" title="Pan (H, Space, middle button)">Pan</button>
    <button type="button" data-tool="select" title="Select (S): click on an object (Alt+click: leave out), or drag a box">Select</button>
    {_slider("level", "Strength", 0, 100, 100, "the level the brush paints: 100 % = full edit, 0 % = keep")}
    {_slider("size", "Size", 1, 512, 24, "brush diameter in photo pixels ([ and ])")}
    {_slider("hardness", "Hardness", 0, 100, 80, "where the brush's edge starts to fade (Shift+[ and Shift+])")}
    {_slider("opacity", "Opacity", 1, 100, 100, "how much of the level one stroke mixes in")}
    <span class="pxb-group">
      <button type="button" class="pxb-undo" title="Undo the last stroke (Ctrl+Z)">Undo stroke</button>
      <button type="button" class="pxb-redo" title="Redo (Ctrl+Shift+Z)">Redo stroke</button>
    </span>
    <span class="pxb-group">
      <button type="button" class="pxb-zoom-out-button" title="Zoom out (-)">&minus;</button>
      <output class="pxb-zoom-out" title="zoom"></output>
      <button type="button" class="pxb-zoom-in" title="Zoom in (+)">+</button>
      <button type="button" class="pxb-fit" title="Fit (0)">Fit</button>
      <button type="button" class="pxb-actual" title="100 % (1)">100 %</button>
      <button type="button" class="pxb-showmap" title="Show the map itself (M)">Map</button>
    </span>
  </div>
  <div class="pxb-stage">
    <canvas class="pxb-view" tabindex="0" aria-label="the photo with the strength map; paint on it"></canvas>
    <div class="pxb-empty">Choose a photo to start.</div>
  </div>
  <div class="pxb-keys">{" · ".join(f"<b>{keys}</b> {what}" for keys, what in SHORTCUTS)}</div>
</div>
"""

CSS = """
.pxb { display: flex; flex-direction: column; gap: 6px; }
.pxb-bar { display: flex; flex-wrap: wrap; gap: 6px 10px; align-items: center; font-size: 0.9em; }
.pxb-bar button { padding: 2px 8px; border: 1px solid #8888; border-radius: 6px; background: transparent; cursor: pointer; }
.pxb-bar button.pxb-on { background: #f97316; color: white; border-color: #f97316; }
.pxb-bar button:disabled { opacity: 0.4; cursor: default; }
.pxb-field { display: inline-flex; align-items: center; gap: 4px; }
.pxb-field input { width: 90px; }
.pxb-field output, .pxb-zoom-out { min-width: 3.2em; font-variant-numeric: tabular-nums; }
.pxb-group { display: inline-flex; gap: 4px; align-items: center; }
.pxb-stage { position: relative; height: 62vh; min-height: 320px; background: repeating-conic-gradient(#8882 0 25%, #0000 0 50%) 0 0 / 20px 20px;
             border-radius: 8px; overflow: hidden; }
.pxb-view { position: absolute; inset: 0; width: 100%; height: 100%; touch-action: none; cursor: crosshair; outline: none; }
.pxb[data-tool="pan"] .pxb-view { cursor: grab; }
.pxb[data-tool="move"] .pxb-view { cursor: move; }
.pxb-empty { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; opacity: 0.7; pointer-events: none; }
.pxb-keys { font-size: 0.8em; opacity: 0.8; }
"""


@cache
def script() -> str:
    """The canvas's script (read once)."""
    return (HERE / "board.js").read_text(encoding="utf-8")


def Board(**kwargs) -> gr.HTML:  # noqa: N802 - used as the component it makes
    """The canvas component (its value starts empty: the server sends one once a photo is chosen)."""
    return gr.HTML(None, html_template=TEMPLATE, css_template=CSS, js_on_load=script(), apply_default_css=False,
                   **kwargs)


__all__ = ["SHORTCUTS", "Board", "script"]
