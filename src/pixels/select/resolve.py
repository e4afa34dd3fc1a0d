"""`resolve_selection`: a `Select` found on a photo, as a strength map and a record of how it was found."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from ..errors import InputError, short
from ..inputs import maps
from ..limits import MAX_PIXELS
from ..models.loading import resolve_device, resolve_dtype
from . import prompts, segment, tools
from .depth import depth_strength, predict_disparity, relative_depth
from .models import LoadedModel, cached
from .spec import BOX_MODEL, DEPTH_MODEL, POINT_MODEL, TEXT_MODEL, Select


class Selection(NamedTuple):
    """A resolved selection: `strength` (H, W) float32 in [0, 1] at the photo's size (white = edit), and `record`,
    a JSON-ready dict: the selection as given (`record["select"]`, which `Select.from_dict` replays), the models
    used and what they found."""

    strength: np.ndarray
    record: dict[str, Any]


def _model_record(loaded: LoadedModel) -> dict[str, str]:
    return {"model": loaded.name, "repo": loaded.source, "class": type(loaded.model).__name__}


def _photo(photo) -> Image.Image:
    if not isinstance(photo, Image.Image):
        raise InputError(f"expected a PIL image, got {type(photo).__name__}", param="photo")
    if photo.width * photo.height > MAX_PIXELS:
        raise InputError(f"{photo.width}x{photo.height} is more than the limit of {MAX_PIXELS:,} pixels",
                         param="photo")
    return photo.convert("RGB")


def resolve_selection(select: Select, photo: Image.Image, *, device: str | torch.device = "auto",
                      dtype: str | torch.dtype = "fp32", allow_unsafe_pickle: bool = False,
                      local_files_only: bool | None = None) -> Selection:
    """Find `select` on `photo`: its region (clicks and boxes, or a phrase), weighted by depth if it asks for
    depth, then made ready to edit (holes filled, largest part, grown, shrunk, inverted, feathered inside).

    Models are loaded once per process and kept (`pixels.select.clear_cache` lets them go). The same selection
    on the same photo, device and dtype gives the same map, bit for bit. Raises InputError naming the field at
    fault (`points[1]`, `boxes[0]`, `text`, `pick`), ModelNotFoundError with the command that fetches a missing
    model."""
    # 1. Check the photo, and the clicks and boxes against its size
    if not isinstance(select, Select):
        raise InputError(f"expected a Select, got {short(select)}", param="select")
    photo = _photo(photo)
    size = photo.size
    points = prompts.check_points(select.points, "points", size)
    negative = prompts.check_points(select.negative, "negative", size)
    boxes = prompts.check_boxes(select.boxes, "boxes", size)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    load = {"device": device, "dtype": dtype, "allow_unsafe_pickle": allow_unsafe_pickle,
            "local_files_only": local_files_only}
    record: dict[str, Any] = {"select": select.to_dict(), "size": list(size)}

    # 2. The region: the clicks' or the phrase's masks, those `pick` keeps
    region = None
    if select.task == "points":
        loaded = cached(select.model or POINT_MODEL, "points", name="model", **load)
        found = segment.click_candidates(loaded, photo, points, negative, boxes)
        parts, chosen = [], []
        for candidates in found:
            mask, picked = segment.choose(candidates, select.pick, "candidate mask")
            parts.append(mask)
            chosen.append(picked)
        region = np.logical_or.reduce(parts, axis=0)
        record["region"] = {**_model_record(loaded), "task": "points",
                            "objects": [{"candidates": c.record(), "chosen": p} for c, p in zip(found, chosen)]}
    elif select.task == "text":
        loaded = cached(select.model or TEXT_MODEL, "text", name="model", **load)
        threshold = select.threshold if select.threshold is not None else segment.DEFAULT_THRESHOLD[loaded.kind]
        masker = None
        if loaded.kind == "grounding_dino":
            masker = cached(select.mask_model or BOX_MODEL, "points", name="mask_model", **load)
        elif select.mask_model is not None:
            raise InputError(f"masks GroundingDINO's boxes; {select.model!r} finds masks itself", param="mask_model")
        found, extra = segment.text_instances(loaded, photo, select.text, threshold, masker)
        region, chosen = segment.choose(found, select.pick, f"instance of {select.text!r}")
        record["region"] = {**_model_record(loaded), "task": "text", "text": select.text, "threshold": threshold,
                            "instances": found.record(), "chosen": chosen, **extra}
        if masker is not None:
            record["region"]["mask_model"] = _model_record(masker)

    # 3. The shape tools on the region, then depth
    strength = None
    if region is not None:
        strength = tools.refine(region.astype(np.float64), fill_holes=select.fill_holes, largest=select.largest,
                                grow=select.grow, shrink=select.shrink)
    if select.depth is not None:
        loaded = cached(select.depth_model or DEPTH_MODEL, "depth", name="depth_model", **load)
        near, far = select.depth
        weight = depth_strength(relative_depth(predict_disparity(loaded, photo)), near, far, select.direction,
                                select.gamma)
        record["depth"] = {**_model_record(loaded), "near": near, "far": far, "direction": select.direction,
                           "gamma": select.gamma}
        if strength is None:
            strength = tools.refine(weight, fill_holes=select.fill_holes, largest=select.largest, grow=select.grow,
                                    shrink=select.shrink)
        else:
            strength = strength * weight

    # 4. Inverted, then feathered on the selected side only (what is 0 stays exactly 0)
    assert strength is not None  # Select refuses a selection of nothing
    if select.invert:
        strength = maps.invert(strength)
    if select.feather:
        strength = maps.feather(strength, select.feather)
    strength = np.clip(strength, 0.0, 1.0).astype(np.float32)
    record["selected_pixels"] = int(np.count_nonzero(strength))
    return Selection(strength, record)
