"""Looking back through the history: a step clicked in the strip is shown, before and after, in the result
panel; "continue from here" then makes it the start of the next edit, which branches there."""

from __future__ import annotations

from typing import Any

from pixels import InputError

from .canvas import require, require_photo
from .handlers import View, view
from .state import StudioSession


def step_view(st: StudioSession | None, index: Any) -> View:
    """The page with history step `index` (0 = the source) shown; what the next edit starts from is unchanged."""
    st = require(st)
    with st.busy("history"):
        history = require_photo(st)
        last = len(history.frames) - 1
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= last:
            raise InputError(f"history: expected a step in [0, {last}], got {index!r}")
        history.show(index)
        start = f"step {history.start}" if history.start else "the source photo"
        if index == 0:
            status = "The source photo."
        else:
            parent = history.parent(index)
            status = f"Showing step {index} (seed {history.seed(index)}), made from " \
                     f"{f'step {parent}' if parent else 'the source photo'}."
        if index != history.start:
            status += f" The next edit still starts from {start}; **Continue from here** to start from this one" \
                      + (" (a new branch)." if history.session.children(index) else ".")
        else:
            status += " The next edit starts from here."
        return view(st, status=status)


__all__ = ["step_view"]
