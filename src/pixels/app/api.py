"""The studio's API endpoint for scripts: one stateless edit, called with `gradio_client`.

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    path, summary = client.predict(handle_file("photo.png"), handle_file("map.png"), '{"seed": 1}',
                                   api_name="/edit")

It runs in the same queue as the studio's edits (one at a time on the model).
"""

from __future__ import annotations

import json
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any

from pixels import InputError
from pixels.images import load_image, load_map
from pixels.output import save_image

from .context import Context
from .engine import Progress
from .settings import Settings, edit_kwargs


def api_edit(ctx: Context, source: str, strength_map: str, settings: str | dict | None,
             on_step: Progress | None = None) -> tuple[Path, dict[str, Any]]:
    """One stateless edit for scripts (`gradio_client`, api_name "edit"): a source image, a map image
    (white = edit) and settings as JSON with the studio's field names (steps, strength, guidance, seed,
    scheduler, mode, crop_auto, crop_margin, skip_steps, eta, prompt, negative_prompt). Returns the
    result PNG (with pixels' metadata) and a summary including when the model ran it."""
    if isinstance(settings, str):
        try:
            settings = json.loads(settings) if settings.strip() else {}
        except ValueError:
            raise InputError("settings: not valid JSON") from None
    settings = settings or {}
    if not isinstance(settings, dict):
        raise InputError(f"settings: expected a JSON object, got {type(settings).__name__}")
    names = {f.name for f in fields(Settings)} - {"extra"}  # the studio's fields; the model's extras stay its own
    unknown = sorted(set(settings) - names)
    if unknown:
        raise InputError(f"settings: unknown keys {unknown}; known: {', '.join(sorted(names))}")
    values = {**vars(ctx.engine.defaults), **settings}
    kwargs = edit_kwargs(Settings(**values), ctx.engine.takes_prompt)
    if source is None or strength_map is None:
        raise InputError("source: give a source image and a map image")
    picture, _ = load_image(source, name="source", max_pixels=ctx.max_pixels)
    mask, _ = load_map(strength_map, name="map", size=picture.size, max_pixels=ctx.max_pixels)
    editor = ctx.engine.editor
    result, ticket = ctx.engine.run(lambda step: editor.edit(picture, strength_map=mask, on_step=step, **kwargs),
                                    threading.Event(), on_step)
    path = ctx.api_path()
    save_image(result.image, path, result.metadata)
    md = result.metadata
    summary = {"seed": md["seed"], "steps_run": md["steps_run"], "model_calls": md["model_calls"],
               "order": ticket.order, "started": ticket.started, "finished": ticket.finished,
               "seconds": ticket.finished - ticket.started, "size": md["size"]}
    return path, summary


__all__ = ["api_edit"]
