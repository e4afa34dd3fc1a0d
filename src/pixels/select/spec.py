"""`Select`: what a selection asks for, declared once, checked on construction and recorded as a plain dict.

A selection finds where to edit on a photo: clicks and boxes (a click model, SAM 2.1 by default), a phrase (SAM 3
by default, or GroundingDINO boxes masked by the click model, or CLIPSeg), a range of relative depth (Depth
Anything V2), or a region weighted by depth; then the tools of `pixels.select.tools` make it ready to edit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import InputError, short
from . import prompts
from .tools import _radius

POINT_MODEL = "sam2.1-tiny"  # clicks and boxes
TEXT_MODEL = "sam3"  # phrases
BOX_MODEL = POINT_MODEL  # masks the boxes GroundingDINO finds for a phrase
DEPTH_MODEL = "depth-anything-v2-small"


def _model_name(value, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"expected a short name, a hub id or a folder, got {short(value)}", param=where)
    return value


def _flag(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"expected True or False, got {short(value)}", param=where)
    return value


@dataclass(frozen=True)
class Select:
    """Where to edit, found on the photo: every field has a default, and at least one of points, boxes, text or
    depth must be given. Coordinates are photo pixels (x to the right, y down from the top-left corner)."""

    points: tuple[tuple[float, float], ...] = ()  # positive clicks (x, y): on the object
    negative: tuple[tuple[float, float], ...] = ()  # negative clicks (x, y): what to leave out
    boxes: tuple[tuple[float, float, float, float], ...] = ()  # (x, y, w, h), one object each
    text: str | None = None  # a phrase ("the sofa"): every instance the text model finds
    pick: str | int = "best"  # "best" (highest score), "largest" (most pixels), "all" (their union), k (k-th best)
    threshold: float | None = None  # the text model's score threshold; None: the model's default
    depth: tuple[float, float] | None = None  # (near, far) fractions of the relative depth, 0 nearest, 1 farthest
    direction: str = "far"  # "far": strength rises from near to far (the background changes most); or "near"
    gamma: float = 1.0  # strength = ramp ** gamma: above 1 stays weak longer, below 1 rises sooner
    grow: int = 0  # pixels the region is grown by
    shrink: int = 0  # pixels the region is shrunk by (after growing)
    fill_holes: bool = False  # enclosed gaps selected
    largest: bool = False  # only the largest connected part kept
    feather: float = 0.0  # pixels of soft edge, inside the region only (what is 0 stays 0)
    invert: bool = False  # everything but the region
    model: str | None = None  # clicks and boxes: sam2.1-tiny; text: sam3 (or grounding-dino-*, clipseg)
    mask_model: str | None = None  # the click model masking GroundingDINO's boxes: sam2.1-tiny
    depth_model: str | None = None  # depth-anything-v2-small

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: the checked values replace the given ones once, here
        set_(self, "points", prompts.check_points(self.points, "points"))
        set_(self, "negative", prompts.check_points(self.negative, "negative"))
        set_(self, "boxes", prompts.check_boxes(self.boxes, "boxes"))
        if self.text is not None:
            set_(self, "text", prompts.check_text(self.text))
        set_(self, "pick", prompts.check_pick(self.pick))
        if self.threshold is not None:
            set_(self, "threshold", prompts.check_threshold(self.threshold))
        if self.depth is not None:
            set_(self, "depth", prompts.check_depth(self.depth))
        set_(self, "direction", prompts.check_direction(self.direction))
        set_(self, "gamma", prompts.check_gamma(self.gamma))
        set_(self, "grow", _radius(self.grow, "grow"))
        set_(self, "shrink", _radius(self.shrink, "shrink"))
        set_(self, "feather", _radius(self.feather, "feather", integer=False))
        for name in ("fill_holes", "largest", "invert"):
            _flag(getattr(self, name), name)
        for name in ("model", "mask_model", "depth_model"):
            set_(self, name, _model_name(getattr(self, name), name))

        clicks = bool(self.points or self.negative or self.boxes)
        if not clicks and self.text is None and self.depth is None:
            raise InputError("nothing to select: give points, boxes, text or depth", param="points")
        if clicks and self.text is not None:
            raise InputError("give clicks and boxes or a phrase, not both: select each on its own and combine the"
                             " maps (pixels.maps.combine)", param="text")
        if clicks:
            prompts.check_clicks(self.points, self.negative, self.boxes)
        if self.threshold is not None and self.text is None:
            raise InputError("a score threshold is for phrases (text); clicks keep every candidate", param="threshold")
        if self.depth is None and (self.direction != "far" or self.gamma != 1.0 or self.depth_model is not None):
            which = "direction" if self.direction != "far" else "gamma" if self.gamma != 1.0 else "depth_model"
            raise InputError("is for a depth selection: give a depth range (near, far) too", param=which)
        if self.task is None and (self.model is not None or self.pick != "best"):
            which = "model" if self.model is not None else "pick"
            raise InputError("is for clicks, boxes or a phrase; a depth selection takes depth_model", param=which)
        if self.mask_model is not None and self.text is None:
            raise InputError("masks the boxes a phrase finds with GroundingDINO: give text too", param="mask_model")

    @property
    def task(self) -> str | None:
        """The region's task for the selection model: "points" (clicks and boxes), "text", or None (depth only)."""
        if self.text is not None:
            return "text"
        return "points" if self.points or self.boxes else None

    def to_dict(self) -> dict[str, Any]:
        """Every field, as JSON-ready values (lists for tuples): what metadata and spec files record."""
        data = asdict(self)
        for name in ("points", "negative", "boxes", "depth"):
            if data[name] is not None:
                data[name] = [list(p) for p in data[name]] if name != "depth" else list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Select:
        """The selection a dict describes (as `to_dict` writes it; absent keys take their defaults). An unknown
        key raises InputError naming it."""
        if not isinstance(data, dict):
            raise InputError(f"expected a mapping of selection fields, got {short(data)}", param="select")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise InputError(f"unknown key {short(key)}; a selection has {', '.join(sorted(known))}",
                                 param=str(key))
        values = dict(data)
        for name in ("points", "negative", "boxes"):
            if values.get(name) is None and name in values:
                values[name] = ()
        return cls(**values)

    @classmethod
    def from_text(cls, text: str) -> Select:
        """The selection one line of text describes: a YAML mapping of fields (`{text: the lamp, grow: 4}`,
        `{points: [[120, 80]]}`), or a bare phrase (`the lamp`), which is `Select(text=...)`. An error about the
        whole text has no `param` (the caller names its input); one about a field names the field."""
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"expected a phrase or a mapping such as '{{text: the sofa}}', got {short(text)}")
        if not text.lstrip().startswith("{"):
            return cls(text=text.strip())
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InputError(f"expected a mapping such as '{{text: the sofa}}', got {short(text)} ({error})"
                             ) from None
        return cls.from_dict(data)
