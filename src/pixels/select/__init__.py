"""Selections: where to edit, found on the photo by a model instead of painted.

    from pixels.select import Select, resolve_selection
    where = resolve_selection(Select(points=[(120, 80)], feather=8), photo).strength   # (H, W) float32 in [0, 1]

A `Select` is declarative and checked on construction; `to_dict` / `from_dict` record and replay it.
`resolve_selection` finds it on a PIL photo: clicks and boxes through a click model (SAM 2.1 by default), a phrase
through SAM 3 (or GroundingDINO and a click model, or CLIPSeg), relative depth through Depth Anything V2, then the
tools of `pixels.select.tools` (grow, shrink, fill holes, largest part) and the map tools of `pixels.maps` (invert,
feather). Models are loaded once per process (`clear_cache` lets them go).
"""

from __future__ import annotations

from . import tools
from .depth import depth_strength, relative_depth
from .models import clear_cache
from .resolve import Selection, resolve_selection
from .spec import Select

__all__ = ["Select", "Selection", "resolve_selection", "clear_cache", "depth_strength", "relative_depth", "tools"]
