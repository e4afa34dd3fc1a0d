"""The one loaded model of an app, and the rule that it runs one edit at a time.

Gradio's queue already runs the edit events one at a time (concurrency 1, one concurrency group for
the studio and the API); the lock here makes that hold for anything else that reaches the model too
(a replayed session, a cancelled edit still finishing its step), so a device never runs two edits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pixels import Editor, InputError, PixelsError
from pixels.limits import MAX_STEPS

from .settings import recommended

T = TypeVar("T")
Progress = Callable[[int, int], None]


class Cancelled(PixelsError):
    """The user cancelled the edit; raised between two denoising steps, so nothing is half-done."""

    exit_code = 2


@dataclass(frozen=True)
class Ticket:
    """When a model job ran: its place in the order the model ran jobs, and its clock times."""

    order: int  # 1 for the app's first job, counting every job that reached the model
    started: float  # time.time() when it got the model
    finished: float


class Engine:
    """An `Editor` shared by every session of the app, used by one job at a time."""

    def __init__(self, editor: Editor, model: str, max_steps: int = MAX_STEPS) -> None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or not 1 <= max_steps <= MAX_STEPS:
            raise InputError(f"expected an integer in [1, {MAX_STEPS}], got {max_steps!r}", param="max_steps")
        self.editor = editor
        self.model = model
        self.max_steps = max_steps  # edits of a longer schedule are refused: one user cannot hold the model for hours
        adapter = getattr(editor, "adapter", None)
        self.family: str | None = getattr(adapter, "family", None)
        self.takes_prompt = getattr(adapter, "takes_text", True)  # unconditional models take no prompt
        self.defaults: dict[str, Any] = recommended(model, adapter)  # {spec key: field value}
        self.defaults["steps"] = min(self.defaults["steps"], max_steps)
        # what the page offers beyond the settings: exemplars' condition weights and prompt images with an
        # IP-Adapter (or a model conditioned on image embeddings), a control with a ControlNet
        self.takes_conditions = getattr(editor, "ip_adapter", None) is not None
        self.takes_prompt_images = self.takes_conditions or getattr(adapter, "takes_image_prompts", False)
        self.takes_control = getattr(adapter, "controlnet", None) is not None
        self.loras = [(lora["lora"], lora["scale"]) for lora in getattr(editor, "loras", [])]
        self._lock = threading.Lock()
        self.runs = 0  # jobs that have had the model so far: the next one's order is runs + 1

    def run(self, job: Callable[[Progress], T], cancel: threading.Event, on_step: Progress | None = None
            ) -> tuple[T, Ticket]:
        """Run `job(step_callback)` on the model alone. The callback reports progress and raises
        `Cancelled` once `cancel` is set, which stops the edit between two steps."""
        def step(done: int, total: int) -> None:
            if cancel.is_set():
                raise Cancelled("edit cancelled; nothing was changed")
            if on_step is not None:
                on_step(done, total)

        with self._lock:
            if cancel.is_set():  # cancelled while it waited for the model
                raise Cancelled("edit cancelled before it started; nothing was changed")
            self.runs += 1
            started = time.time()
            value = job(step)
            return value, Ticket(self.runs, started, time.time())


__all__ = ["Cancelled", "Engine", "Progress", "Ticket"]
