"""Starting and stopping the studio: one loaded model, a Gradio server on loopback by default, and every
temporary file removed when it stops.

Importing this module is cheap (the main command line imports it to add `pixels app`): the model,
torch and Gradio are imported when the studio starts."""

from __future__ import annotations

import atexit
import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pixels import limits
from pixels.errors import InputError

if TYPE_CHECKING:
    from pixels import Editor, MemoryOptions

    from .context import Context

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MEGAPIXELS = 4.0  # a web app edits what a browser shows; the library's own limit is 67 MP
DEFAULT_QUEUE = 32  # edits waiting beyond the running one; more are refused with "busy, try again"
DEFAULT_UPLOAD_MB = 50  # largest upload Gradio accepts
DEFAULT_MAX_STEPS = 250  # the longest schedule an edit may ask for: above every model's recommended steps


def free_port(host: str) -> int:
    """A port nothing listens on at `host` now (the OS picks it), for tests and `port=None`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, credentials: tuple[str, str] | None) -> str | None:
    """What to tell the user when the studio is reachable from other machines without a password."""
    if is_loopback(host) or credentials is not None:
        return None
    return (f"serving on {host}, reachable from other machines, without a password: anyone who can reach it can"
            " use the model; give auth='USER:PASS'")


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """`auth` 'USER:PASS' as a (user, password) pair; the password may contain colons."""
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise InputError("expected USER:PASS with both parts non-empty", param="auth")
    return user, password


def max_pixels(megapixels: float | None) -> int:
    """`max_megapixels` as a pixel count (`pixels.limits.megapixels`), the error naming the parameter."""
    try:
        return limits.megapixels(DEFAULT_MEGAPIXELS if megapixels is None else megapixels)
    except InputError as error:
        raise InputError(error.message, param="max_megapixels") from None


def _print_warning(text: str) -> None:
    print(f"pixels: warning: {text}", file=sys.stderr)


def restore_temp(previous: str | None) -> None:
    """Put GRADIO_TEMP_DIR back as it was before the studio started (unset if it was)."""
    if previous is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = previous


@dataclass
class Running:
    """A started studio: its address, and `close` to stop it and remove its files."""

    demo: Any  # the gr.Blocks
    context: Context
    url: str
    _previous_temp: str | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Stop the server, end every session and remove the app's temporary folder (idempotent)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self.demo.close()
        finally:
            self.context.close()
            restore_temp(self._previous_temp)


def start(
    model: str = "demo",
    host: str = DEFAULT_HOST,
    port: int | None = DEFAULT_PORT,
    auth: str | tuple[str, str] | None = None,
    max_megapixels: float | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    allow_unsafe_pickle: bool = False,
    queue_size: int = DEFAULT_QUEUE,
    max_upload_mb: float = DEFAULT_UPLOAD_MB,
    editor: Editor | None = None,
    offline: bool = False,
    quiet: bool = True,
    warn: Callable[[str], None] | None = None,
    setup: Callable[[Editor], None] | None = None,
    memory: MemoryOptions | None = None,
    refiner: str | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> Running:
    """Load the model (or use `editor`) and start the studio in a background thread; returns at once.

    Binds to `host` (loopback by default; another address without `auth` prints a warning). `port` None
    (or 0) picks a free one. `warn` receives the warnings (default: printed on stderr). `memory` and `refiner`:
    as for `Editor.from_pretrained`. `max_steps`: the longest schedule an edit may ask for. `setup(editor)` runs
    once the model is loaded, before the page is built (loading LoRAs, an IP-Adapter, a ControlNet). Stop it with
    `Running.close()` (also run at interpreter exit)."""
    # 1. Check the options before loading anything
    credentials = parse_auth(auth) if isinstance(auth, str) or auth is None else tuple(auth)
    limit = max_pixels(max_megapixels)
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or not 1 <= queue_size <= 10_000:
        raise InputError(f"expected an integer in [1, 10000], got {queue_size!r}", param="queue_size")
    if not isinstance(max_upload_mb, (int, float)) or not 0 < max_upload_mb <= 100_000:
        raise InputError(f"expected a number in (0, 100000], got {max_upload_mb!r}", param="max_upload_mb")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        raise InputError(f"expected an integer in [0, 65535], got {port!r}", param="port")
    warning = exposure_warning(host, credentials)
    if warning:
        (warn or _print_warning)(warning)

    if not port:
        port = free_port(host)

    # 2. The model, once for every session
    from pixels import Editor, Limits

    from .context import create

    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    if editor is None:
        editor = Editor.from_pretrained(model, device=device, dtype=dtype, limits=Limits(max_pixels=limit),
                                        allow_unsafe_pickle=allow_unsafe_pickle, memory=memory, refiner=refiner,
                                        local_files_only=True if offline else None)
    elif max_megapixels is not None:  # a given editor keeps its own limits unless told otherwise
        editor.limits = Limits(max_pixels=limit, check_memory=editor.limits.check_memory)
    if setup is not None:
        setup(editor)
    context = create(editor, model, max_steps=max_steps)

    # 3. The page, with Gradio's uploads and caches inside the app's temporary folder
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(context.root / "gradio")
    running = None
    try:
        from .ui import CSS, build, theme

        demo = build(context)
        demo.queue(max_size=queue_size, default_concurrency_limit=1)
        _, url, _ = demo.launch(
            server_name=host, server_port=port, auth=credentials, max_file_size=f"{max_upload_mb}mb",
            prevent_thread_lock=True, quiet=quiet, share=False, inbrowser=False, show_error=False,
            ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False, theme=theme(), css=CSS,
        )
        running = Running(demo, context, url, previous)
        atexit.register(running.close)
        return running
    finally:
        if running is None:  # failed to start: nothing may be left behind
            context.close()
            restore_temp(previous)


def launch(
    model: str = "demo",
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    auth: str | tuple[str, str] | None = None,
    max_megapixels: float | None = None,
    **options: Any,
) -> None:
    """Start the studio and serve until interrupted (Ctrl-C), then stop it and remove its files.
    `options`: those of `start` (device, dtype, allow_unsafe_pickle, queue_size, max_upload_mb, editor,
    offline, quiet, warn, setup, memory, refiner, max_steps)."""
    running = start(model, host, port, auth, max_megapixels, **options)
    print(f"pixels studio: {running.url} (model {model}; Ctrl-C to stop)", file=sys.stderr)
    try:
        running.demo.block_thread()
    finally:
        running.close()


__all__ = ["Running", "exposure_warning", "is_loopback", "launch", "parse_auth", "start"]
