"""What one running app shares between its sessions: the model, the open sessions, the temporary root.

User data never lives here: each session's photos, maps and history are in its own `StudioSession`;
the registry only lets the app remove a session's folder when its tab closes or the app stops.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from pixels import Editor
from pixels.limits import MAX_STEPS

from .engine import Engine
from .state import Sessions

API_FILES_KEPT = 64  # results of API calls kept on disk for their download; older ones are removed


@dataclass
class Context:
    """The app's shared, non-user state. `close` removes every file the app made."""

    engine: Engine
    root: Path  # the app's temporary folder: sessions, API results, Gradio's upload cache
    sessions: Sessions = field(init=False)
    _api_files: deque = field(default_factory=deque, repr=False)
    _api_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.sessions = Sessions(self.root / "sessions")

    @property
    def max_pixels(self) -> int:
        return self.engine.editor.limits.max_pixels

    def api_path(self) -> Path:
        """A new file for an API result; the oldest beyond API_FILES_KEPT are removed (Gradio has copied
        them into its cache for the client by then)."""
        folder = self.root / "api"
        folder.mkdir(exist_ok=True)
        path = folder / f"edit-{secrets.token_hex(8)}.png"
        with self._api_lock:
            self._api_files.append(path)
            while len(self._api_files) > API_FILES_KEPT:
                self._api_files.popleft().unlink(missing_ok=True)
        return path

    def close(self) -> None:
        """End every session and remove the app's temporary folder (idempotent)."""
        self.sessions.close_all()
        shutil.rmtree(self.root, ignore_errors=True)


def create(editor: Editor, model: str, root: Path | None = None, max_steps: int = MAX_STEPS) -> Context:
    """A context for `editor` with a new temporary root (or `root`, which must not exist yet); edits of more
    than `max_steps` steps are refused."""
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="pixels-app-"))
    else:
        root.mkdir(parents=True)
    return Context(Engine(editor, model, max_steps), root)


__all__ = ["Context", "create"]
