"""Error types. The CLI maps `InputError` to exit code 2 and any other `PixelsError` to 1."""

from __future__ import annotations


class PixelsError(Exception):
    """Base class for every error pixels raises on purpose."""


class InputError(PixelsError, ValueError):
    """Bad argument or unusable input file: the message names the argument and the value."""


class ModelNotFoundError(InputError):
    """The model could not be found locally and could not be downloaded."""


class UnsafeCheckpointError(InputError):
    """A pickle checkpoint was refused because it can run arbitrary code when loaded."""
