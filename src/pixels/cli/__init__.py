"""The `pixels` command line: `pixels edit SOURCE -e EXEMPLAR -m MAP ... -o OUT.png`, and `demo`, `map`,
`select`, `evaluate`, `models`, `app`, one module each.

One error contract for every command: 0 success; 2 for anything the user can change (bad usage or input,
refused files, not enough memory or disk), with one line naming the flag or file; 1 for an internal
failure, with a hint to rerun with --debug; 130 / 143 when interrupted (SIGINT / SIGTERM), after every
temporary file is removed. Heavy imports happen inside the commands, so `pixels --version` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence

from .. import __version__
from ..errors import InputError, PixelsError
from ..files import write_error
from . import app, batch, demo, edit, evaluate, map, models, select
from .common import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, Parser, as_flag, in_flags

# each adds its subcommand: add_parser(commands, common)
COMMANDS = (edit, batch, demo, map, select, evaluate, models, app)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show library warnings and the traceback of unexpected failures")
    parser = Parser(
        prog="pixels",
        description="Exemplar-based, per-pixel image editing with off-the-shelf diffusion models (PIXELS).",
        epilog="`pixels COMMAND --help` describes a command; `pixels models` lists the short model names.",
    )
    parser.add_argument("--version", action="version", version=f"pixels {__version__}")
    parser.add_argument("--debug", action="store_true", help="show library warnings and tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands, common)
    return parser


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every `finally` and `with` block cleans up."""


class _Signals:
    """While a command runs, SIGTERM unwinds like Ctrl-C does (temporary files removed, no partial output)."""

    def __enter__(self) -> _Signals:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._terminate)
        return self

    @staticmethod
    def _terminate(signum, frame) -> None:
        raise _Terminated()

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _quiet_libraries(debug: bool) -> None:
    """Library chatter (optional-backend notices, deprecations, hub retries) is not for command-line users."""
    if debug:
        return
    for name in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY", "HF_HUB_VERBOSITY"):
        os.environ.setdefault(name, "error")
    logging.getLogger().setLevel(logging.ERROR)  # loggers without handlers print WARNING and up otherwise
    for name in ("huggingface_hub", "diffusers", "transformers"):  # those already set up by an import
        logging.getLogger(name).setLevel(logging.ERROR)


def _report(error: BaseException, debug: bool) -> int:
    """One line on stderr for a failed command, and its exit code (see `errors`)."""
    if isinstance(error, PixelsError):
        print(f"pixels: error: {in_flags(str(error))}", file=sys.stderr)
        if error.exit_code == EXIT_FAILURE and not debug:
            print("pixels: rerun with --debug to see the traceback", file=sys.stderr)
        return error.exit_code
    if isinstance(error, MemoryError):
        print("pixels: error: out of memory; try --crop auto, a smaller source or --vae-tiling", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(error, OSError) and (resource := write_error(error, error.filename or "?")) is not None:
        print(f"pixels: error: {resource}", file=sys.stderr)
        return EXIT_USAGE
    if debug:
        traceback.print_exception(error)
    print(f"pixels: error: internal error: {type(error).__name__}: {error}", file=sys.stderr)
    if not debug:
        print("pixels: rerun with --debug to see the traceback", file=sys.stderr)
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # said on stderr, as argparse says a usage error, so that a script's log shows it
        parser.print_usage(sys.stderr)
        print("pixels: error: give a command: edit, batch, demo, map, select, evaluate, models or app"
              " (`pixels --help` describes them)", file=sys.stderr)
        return EXIT_USAGE
    debug = bool(args.debug or os.environ.get("PIXELS_DEBUG"))
    _quiet_libraries(debug)
    for stream in (sys.stdout, sys.stderr):  # file names with undecodable bytes print as escapes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if getattr(args, "offline", False):
        os.environ["HF_HUB_OFFLINE"] = "1"
    with _Signals():
        try:
            with warnings.catch_warnings():
                if not debug:
                    warnings.simplefilter("ignore")  # what a user must know is printed as a note
                return args.run(args)
        except InputError as error:
            print(f"pixels: error: {as_flag(error)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("pixels: interrupted; no output was left half-written", file=sys.stderr)
            return EXIT_INTERRUPTED
        except _Terminated:
            print("pixels: terminated; no output was left half-written", file=sys.stderr)
            return EXIT_TERMINATED
        except Exception as error:  # noqa: BLE001 - the command line reports, the library raises
            return _report(error, debug)
