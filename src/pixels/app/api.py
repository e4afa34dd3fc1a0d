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
from pathlib import Path
from typing import Any

from pixels import InputError
from pixels.inputs.images import load_image, load_map
from pixels.inputs.spec import EDIT_KEYS, check_settings, parse_edit, spec_param
from pixels.outputs.writers import save_image

from .context import Context
from .engine import Progress
from .handlers import named_upload
from .settings import check_steps, edit_kwargs


def api_edit(ctx: Context, source: str, strength_map: str, settings: str | dict | None,
             on_step: Progress | None = None) -> tuple[Path, dict[str, Any]]:
    """One stateless edit for scripts (`gradio_client`, api_name "edit"): a source image, a map image
    (white = edit) and settings as JSON with the spec files' keys (steps, strength, guidance, seed, scheduler,
    denoising_start, guidance_rescale, crop, ...: the names of the studio's fields), the model's recommended
    settings filling in the rest. Returns the result PNG (with pixels' metadata) and a
    summary including when the model ran it."""
    if isinstance(settings, str):
        try:
            settings = json.loads(settings) if settings.strip() else {}
        except ValueError:
            raise InputError("settings: not valid JSON") from None
    settings = settings or {}
    if not isinstance(settings, dict):
        raise InputError(f"settings: expected a JSON object, got {type(settings).__name__}")
    unknown = sorted(set(settings) - set(EDIT_KEYS))  # no exemplars, maps or paths: images only
    if unknown:
        raise InputError(f"settings: unknown keys {unknown}; known: {', '.join(sorted(EDIT_KEYS))}")
    given = parse_edit(settings, "settings", Path.cwd()).settings
    kwargs = {**edit_kwargs(ctx.engine.defaults, ctx.engine.takes_prompt), **given}
    check_steps(kwargs["num_inference_steps"], ctx.engine.max_steps, "settings.steps")
    try:
        check_settings(kwargs)
    except InputError as error:  # named as the spec key the script sent
        raise InputError(error.message, param=f"settings.{spec_param(error.param)}" if error.param else None) \
            from None
    if source is None or strength_map is None:
        raise InputError("source: give a source image and a map image")
    with named_upload(source):
        picture, _ = load_image(source, name="source", max_pixels=ctx.max_pixels)
    with named_upload(strength_map):
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
