"""Looking back through the history: any step's result, before and after, in the result panel, without
changing what the next edit starts from."""

from __future__ import annotations

from typing import Any

from pixels import InputError

from .canvas import require, require_photo
from .results import report_markdown
from .state import StudioSession


def step_view(st: StudioSession | None, index: Any) -> dict[str, Any]:
    """What the result panel shows for history frame `index` (0 = the source): the frame and the one it was
    made from, its measurements, its seed and its files, and a status line."""
    history = require_photo(require(st))
    frames = history.frames
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(frames):
        raise InputError(f"history: expected a step in [0, {len(frames) - 1}], got {index!r}")
    frame = frames[index]
    if index == 0:
        return {"before": frame.image, "after": frame.image, "report": "", "seed": None, "png": frame.png,
                "map_png": None, "status": "The source photo (nothing edited yet at this step)."}
    seed = frame.result.metadata["seed"] if frame.result is not None else \
        history.session.history[index - 1].get("seed")
    return {"before": frames[index - 1].image, "after": frame.image, "report": report_markdown(frame.report),
            "seed": seed, "png": frame.png, "map_png": frame.map_png,
            "status": f"Showing step {index} (seed {seed}); the next edit still starts from step {history.committed}."}


__all__ = ["step_view"]
