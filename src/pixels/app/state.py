"""What one browser session holds: its photo, its edit history, its maps, its temporary folder.

Nothing here is shared between sessions: each browser session gets a `StudioSession` (kept in a
`gr.State`), with its own temporary folder inside the app's, removed when the session ends.
"""

from __future__ import annotations

import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixels import EditJob, EditResult, EditSession, InputError
from pixels.outputs.writers import save_image

REGION_TARGETS = ("region 1", "region 2", "region 3")  # prompt-only regions: painted, each with its own text
TARGETS = ("strength", "exemplar 1", "exemplar 2", "exemplar 3", "exemplar 4", *REGION_TARGETS)  # what one paints


@dataclass
class Frame:
    """One image of the history: the source, or the result of an applied edit."""

    image: Image.Image
    png: Path | None  # a PNG of it in the session's folder (results carry pixels' metadata); None: not written
    result: EditResult | None = None  # the edit that made it (None for the source and for replayed steps)
    map_png: Path | None = None  # the combined strength map it was made with, 8-bit (black = kept)
    report: dict[str, Any] | None = None  # its measurements (pixels.eval.metrics)
    note: str = ""  # what went wrong writing its files, if anything


class History:
    """An `EditSession` (a tree of steps) and, beside it, one frame per step for the studio to show:
    `frames[k]` is step k's, `frames[0]` the source's.

    `start` is the step the next edit starts from and `shown` the one the result panel shows. A run makes a
    new child of `start` and shows it, so runs from the same start are siblings, all kept; "continue from
    here" makes the shown step (any step, clicked in the history) the start, and the next run branches there.
    The session itself always stands on the shown step, so a saved session reopens where the user was."""

    def __init__(self, session: EditSession, frames: list[Frame]) -> None:
        """`frames`: the source's, then one per step the session has made, in the order they were made."""
        if len(frames) != len(session.nodes) + 1:
            raise ValueError(f"History: {len(frames)} frames for a session of {len(session.nodes)} steps")
        self.session = session
        self.frames: list[Frame] = list(frames)
        self.start = self.shown = session.position
        self.variations: list[tuple[EditResult, Frame]] = []  # the last run's results, when it made several
        self._job: EditJob | None = None  # the job they were made from
        self._varied = 0  # the step the variations are the candidates of

    @property
    def source(self) -> Frame:
        """What the next edit starts from."""
        return self.frames[self.start]

    def parent(self, step: int) -> int:
        """The step `step` was made from (0: the source); 0 for the source itself."""
        return self.session.nodes[step - 1].parent if step else 0

    def seed(self, step: int) -> int | None:
        """The seed step `step` was made with (None for the source)."""
        return self.session.nodes[step - 1].settings.get("seed") if step else None

    @property
    def candidate(self) -> bool:
        """Whether the shown step is not the start: "continue from here" would move the start to it."""
        return self.shown != self.start

    @property
    def can_undo(self) -> bool:
        return self.shown != 0

    @property
    def can_redo(self) -> bool:
        return self.session.can_redo

    def show(self, step: int) -> None:
        """Show step `step` (checked: one the session has made, or 0); the start stays where it is."""
        self.session.go(step)
        self.shown = step

    def _run(self, make: Callable[[], Any]) -> Any:
        """`make()` run on the start; on any error (a cancel included) the history is left exactly as it was."""
        self.session.go(self.start)
        try:
            return make()
        except BaseException:
            self.session.go(self.shown)
            raise

    def apply(self, frame_of: Callable[[EditResult, Image.Image], Frame], exemplars: list | EditJob,
              strength_map: np.ndarray | None = None, **settings: Any) -> EditResult:
        """Edit the start with `EditSession.apply`'s arguments (a checked job, or the exemplars, map and
        settings): a new step beside the start's other children, shown. `frame_of(result, before)` makes the
        new frame and must not raise (it records a failure to write files in the frame instead)."""
        result = self._run(lambda: self.session.apply(exemplars, strength_map, **settings))
        self.frames.append(frame_of(result, self.source.image))
        self.shown = self.session.position
        self.variations, self._job = [], None
        return result

    def apply_variations(self, frame_of: Callable[[EditResult, Image.Image], Frame], job: EditJob,
                         seeds: list[int], on_step: Callable[[int, int], None] | None = None) -> list[EditResult]:
        """The edit of `job` with each of `seeds`, denoised together (`EditSession.variations`): the first
        becomes a new step, shown, and the others wait in `variations` for `pick` to take its place."""
        def make() -> list[EditResult]:
            results = self.session.variations(job, seeds, on_step=on_step)
            self.session.keep(job, results[0])
            return results

        results = self._run(make)
        before = self.source.image
        self.variations = [(result, frame_of(result, before)) for result in results]
        self._job, self._varied = job, self.session.position
        self.frames.append(self.variations[0][1])
        self.shown = self._varied
        return results

    def pick(self, k: int) -> None:
        """Variation k of the last run takes the place of the one its step holds, and is shown."""
        if not self.variations:
            raise InputError("variations: no variations to pick from; run with more than one variation first")
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(self.variations):
            raise InputError(f"variations: expected one in [1, {len(self.variations)}], got {k!r}")
        result, frame = self.variations[k]
        self.session.go(self._varied)
        self.session.forget()  # the last step made, with no child: a run since would have cleared the variations
        self.session.keep(self._job, result)
        self.frames[self._varied] = frame
        self.shown = self._varied

    def accept(self) -> None:
        """Continue from here: the shown step becomes the start of the next edit (a branch, if it has children)."""
        self.start = self.shown
        self.variations, self._job = [], None

    def undo(self) -> None:
        """Back to the shown step's parent, which becomes the start (the step stays in the history)."""
        self.session.go(self.shown)
        self.session.undo()  # raises InputError("undo: nothing to undo") on the source
        self.start = self.shown = self.session.position
        self.variations, self._job = [], None

    def redo(self) -> None:
        """Forward again to the step undo left (or the one run last from here), which becomes the start."""
        self.session.redo()
        self.start = self.shown = self.session.position


@dataclass
class StudioSession:
    """Everything one browser session holds. Handlers receive it from the session's `gr.State`."""

    folder: Path  # this session's temporary folder; removed by `close`
    history: History | None = None  # None until a photo is chosen
    source_name: str = "source"  # the photo's file name, for metadata and download names
    bases: dict[str, np.ndarray] = field(default_factory=dict)  # map tools' work per target, (H, W) in [0, 1]
    target: str = "strength"  # the map the canvas paints
    # the records of the selections combined into each map (`selecting.select_into_map`), for the edit's metadata
    selections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    serial: int = 0  # the number of the last map sent to the canvas (a canvas value painted on an older one is stale)
    boxes: list[dict[str, Any]] = field(default_factory=list)  # the exemplar boxes the canvas shows (`canvas.boxes_of`)
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _tokens: dict[int, threading.Event] = field(default_factory=dict, repr=False)  # run id -> its cancel flag
    _next_run: int = 0
    _files: int = 0

    # -- temporary files ------------------------------------------------------------------------
    def new_path(self, stem: str, suffix: str) -> Path:
        """A new file name in the session's folder (never one that exists)."""
        if self.closed:
            raise InputError("session: this browser session has ended; reload the page")
        self._files += 1
        return self.folder / f"{stem}-{self._files:04d}{suffix}"

    def write_png(self, image: Image.Image, stem: str, metadata: dict[str, Any] | None = None) -> Path:
        path = self.new_path(stem, ".png")
        save_image(image, path, metadata)
        return path

    def close(self) -> None:
        """Drop the images and remove the temporary folder (idempotent; called when the session ends)."""
        self.closed = True
        self.history = None
        self.bases = {}
        self.selections = {}
        for token in list(self._tokens.values()):
            token.set()  # a queued or running edit of a closed session stops
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- one thing at a time ----------------------------------------------------------------------
    @contextmanager
    def busy(self, name: str) -> Iterator[None]:
        """Hold the session while `name` changes it; a second change meanwhile is refused, not queued."""
        if not self._lock.acquire(blocking=False):
            raise InputError(f"{name}: an edit of this session is running; wait for it, or press Cancel")
        try:
            if self.closed:
                raise InputError("session: this browser session has ended; reload the page")
            yield
        finally:
            self._lock.release()

    # -- cancelling ----------------------------------------------------------------------------
    def arm(self) -> int:
        """A new run id with its cancel flag, made when Run is pressed (before the edit is queued)."""
        self._next_run += 1
        stale = [k for k in self._tokens if k < self._next_run - 8]  # runs the queue refused never come back
        for k in stale:
            del self._tokens[k]
        self._tokens[self._next_run] = threading.Event()
        return self._next_run

    def token(self, run_id: int | None) -> threading.Event:
        """The cancel flag of run `run_id` (a fresh one for an id this session did not arm)."""
        return self._tokens.get(run_id, threading.Event())

    def finish(self, run_id: int | None) -> None:
        self._tokens.pop(run_id, None)

    def cancel(self) -> int:
        """Stop this session's running edit at its next step and its queued ones before they start;
        returns how many were flagged."""
        for token in self._tokens.values():
            token.set()
        return len(self._tokens)


class Sessions:
    """The open browser sessions of one app, by Gradio session hash, so that closing a tab (or stopping
    the app) can remove their files at once. Each session reaches only its own entry."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: dict[str, StudioSession] = {}
        self._lock = threading.Lock()

    def open(self, key: str) -> StudioSession:
        """A new session with a new folder (a reloaded page is a new session; the old one is closed)."""
        folder = self.root / f"session-{secrets.token_hex(8)}"
        folder.mkdir(parents=True)
        session = StudioSession(folder)
        with self._lock:
            previous = self._open.pop(key, None)
            self._open[key] = session
        if previous is not None:
            previous.close()
        return session

    def close(self, key: str) -> None:
        with self._lock:
            session = self._open.pop(key, None)
        if session is not None:
            session.close()

    def close_all(self) -> None:
        with self._lock:
            sessions, self._open = list(self._open.values()), {}
        for session in sessions:
            session.close()

    def __len__(self) -> int:
        return len(self._open)


__all__ = ["REGION_TARGETS", "TARGETS", "Frame", "History", "Sessions", "StudioSession"]
