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
        self.takes_regional_text = self.takes_prompt and getattr(adapter, "takes_regional_text", False)
        self.takes_regional_lora = self.takes_regional_text and getattr(adapter, "takes_regional_lora", False)
        self.loras = [(lora["name"], lora["lora"], lora["scale"]) for lora in getattr(editor, "loras", [])]
        self._lock = threading.Lock()
        self.runs = 0  # jobs that have had the model so far: the next one's order is runs + 1
        # what the queue's place and estimate are computed from (see `place`)
        self._state = threading.Lock()
        self._waiting: dict[int, tuple[int, threading.Event, int, object]] = {}  # id(flag) -> order, flag, steps, owner
        self._arrivals = 0
        self._current: tuple[threading.Event, int, int] | None = None  # the running job: flag, steps done, total
        self.seconds_per_step: float | None = None  # measured: a moving average over the steps run so far

    def run(self, job: Callable[[Progress], T], cancel: threading.Event, on_step: Progress | None = None
            ) -> tuple[T, Ticket]:
        """Run `job(step_callback)` on the model alone. The callback reports progress and raises
        `Cancelled` once `cancel` is set, which stops the edit between two steps."""
        last = [0.0]

        def step(done: int, total: int) -> None:
            now = time.monotonic()
            if done > 0:
                self._measured(now - last[0])
            last[0] = now
            with self._state:
                self._current = (cancel, done, total)
            if cancel.is_set():
                raise Cancelled("edit cancelled; nothing was changed")
            if on_step is not None:
                on_step(done, total)

        try:
            with self._lock:
                with self._state:
                    self._waiting.pop(id(cancel), None)
                if cancel.is_set():  # cancelled while it waited for the model
                    raise Cancelled("edit cancelled before it started; nothing was changed")
                self.runs += 1
                started = time.time()
                last[0] = time.monotonic()
                try:
                    value = job(step)
                finally:
                    with self._state:
                        self._current = None
                return value, Ticket(self.runs, started, time.time())
        finally:
            with self._state:
                self._waiting.pop(id(cancel), None)

    # -- the queue's place and estimate ------------------------------------------------------------
    def _measured(self, seconds: float) -> None:
        with self._state:
            old = self.seconds_per_step
            self.seconds_per_step = seconds if old is None else 0.8 * old + 0.2 * seconds

    def wait(self, cancel: threading.Event, steps: int, owner: object = None) -> None:
        """An edit of `steps` denoising steps, known by its cancel flag, is about to wait for the model (for
        `owner`: see `forget`)."""
        with self._state:
            for key in [k for k, entry in self._waiting.items() if entry[1].is_set()]:
                del self._waiting[key]  # cancelled while waiting: out of the queue
            self._arrivals += 1
            self._waiting[id(cancel)] = (self._arrivals, cancel, max(1, int(steps)), owner)

    def forget(self, owner: object) -> None:
        """`owner`'s edit has ended without reaching the model (refused, or taken out of the queue)."""
        with self._state:
            for key in [k for k, entry in self._waiting.items() if entry[3] is owner]:
                del self._waiting[key]

    def place(self, cancel: threading.Event) -> tuple[str, int, float | None] | None:
        """Where the edit of `cancel` stands: ("waiting", edits ahead of it, seconds until it starts), ("running",
        steps left, seconds left), or None once it has ended or was cancelled. Seconds are None until a step has
        been measured; they count the steps of the running edit and of the waiting edits ahead."""
        with self._state:
            rate, current = self.seconds_per_step, self._current
            if current is not None and current[0] is cancel:
                left = max(0, current[2] - current[1])
                return "running", left, None if rate is None else left * rate
            mine = self._waiting.get(id(cancel))
            if mine is None or cancel.is_set():
                return None
            ahead = [steps for order, flag, steps, _ in self._waiting.values() if order < mine[0] and not flag.is_set()]
            steps = sum(ahead) + (max(0, current[2] - current[1]) if current is not None else 0)
            return "waiting", len(ahead) + (current is not None), None if rate is None else steps * rate


__all__ = ["Cancelled", "Engine", "Progress", "Ticket"]
