"""Selecting a region by model instead of painting it: clicks and boxes (made with the canvas's Select tool, or
typed), a phrase, relative depth. The selection is combined into the map being painted, as the map tools are,
and painting on top refines it. Fields are text, as typed: `x,y` clicks separated by `;` (a leading `-` marks a
click on what to leave out), `x,y,w,h` boxes separated by `;`, depth as `near:far`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pixels import InputError
from pixels.select import Select, resolve_selection

from .canvas import bake, canvas_value, combine_into, require, require_photo
from .context import Context
from .state import StudioSession

MAX_CLICKS = 64  # clicks and boxes one selection keeps


def _numbers(text: str, count: int, what: str, where: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise InputError(f"expected {what}, got {text.strip()!r}", param=where)
    return values


def _items(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").replace("\n", ";").split(";") if part.strip()]


def parse_clicks(text: str | None) -> tuple[list[tuple[float, ...]], list[tuple[float, ...]]]:
    """The clicks of the clicks field: (on the object, left out); `-x,y` is a click left out."""
    points, negative = [], []
    for k, item in enumerate(_items(text)):
        left_out = item.startswith("-")
        xy = _numbers(item[1:] if left_out else item, 2, "x,y (or -x,y for what to leave out)", f"clicks[{k}]")
        (negative if left_out else points).append(xy)
    return points, negative


def parse_boxes(text: str | None) -> list[tuple[float, ...]]:
    return [_numbers(item, 4, "x,y,w,h", f"boxes[{k}]") for k, item in enumerate(_items(text))]


def parse_depth(text: str | None) -> tuple[float, float] | None:
    if not (text or "").strip():
        return None
    near_far = _numbers(text.replace(":", ","), 2, "near:far, fractions of the depth such as 0.3:0.8", "depth")
    return near_far[0], near_far[1]


def selection_of(clicks: str | None, boxes: str | None, phrase: str | None, depth: str | None, grow: Any,
                 feather: Any, model: str | None) -> Select:
    """The `Select` the page's selection fields describe (checked, each error naming its field)."""
    points, negative = parse_clicks(clicks)
    found = parse_boxes(boxes)
    if not (points or found or (phrase or "").strip() or (depth or "").strip()):
        raise InputError("select: click on the photo with the Select tool (S), draw a box, type a phrase or give a"
                         " depth range first")
    for name, value in (("grow", grow), ("feather", feather)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 4096:
            raise InputError(f"expected a number of pixels in [0, 4096], got {value!r}", param=name)
    model = (model or "").strip() or None
    text = (phrase or "").strip() or None
    return Select(points=points, negative=negative, boxes=found, text=text, depth=parse_depth(depth),
                  grow=int(grow), feather=float(feather), model=model if text or points or found else None,
                  depth_model=model if not (text or points or found) else None)


def clicked(data: Any) -> tuple[str, str]:
    """The clicks and boxes made so far with the canvas's Select tool (`{"clicks": [[x, y, negative], ...],
    "boxes": [[x, y, w, h], ...]}`, photo pixels) as the text of the clicks and boxes fields."""
    if not isinstance(data, dict) or not isinstance(data.get("clicks", []), list) or \
            not isinstance(data.get("boxes", []), list):
        raise InputError(f"select: expected the clicks and boxes of the canvas, got {data!r}")
    clicks, boxes = data.get("clicks", []), data.get("boxes", [])
    if len(clicks) + len(boxes) > MAX_CLICKS:
        raise InputError(f"select: at most {MAX_CLICKS} clicks and boxes; press Clear clicks and start again")
    texts = []
    for k, click in enumerate(clicks):
        if not isinstance(click, list) or len(click) != 3:
            raise InputError(f"expected [x, y, negative], got {click!r}", param=f"clicks[{k}]")
        x, y = _numbers(f"{click[0]},{click[1]}", 2, "x,y", f"clicks[{k}]")
        texts.append(("-" if click[2] else "") + f"{round(x)},{round(y)}")
    shapes = []
    for k, box in enumerate(boxes):
        values = _numbers(",".join(str(v) for v in box) if isinstance(box, list) else str(box), 4, "x,y,w,h",
                          f"boxes[{k}]")
        shapes.append(",".join(str(round(v)) for v in values))
    return "; ".join(texts), "; ".join(shapes)


def select_into_map(ctx: Context, st: StudioSession | None, canvas: dict | None, select: Select, how: str
                    ) -> tuple[dict, str]:
    """Find `select` on the photo the next edit starts from and combine it into the map being painted."""
    st = require(st)
    with st.busy("select"):
        history = require_photo(st)
        selection = resolve_selection(select, history.source.image)
        bake(st, canvas)
        combine_into(st, selection.strength.astype("float64"), how)
        st.selections.setdefault(st.target, []).append({"combine": how, **selection.record})
        share = float((selection.strength > 0).mean())
        models = ", ".join(Path(str(selection.record[part]["model"])).name for part in ("region", "depth")
                           if part in selection.record)
        return canvas_value(st), (f"Selected {share:.0%} of the photo with {models} ({how} on the {st.target} map);"
                                  " paint on top to refine it.")


__all__ = ["clicked", "parse_boxes", "parse_clicks", "parse_depth", "select_into_map", "selection_of"]
