"""Error types. Each carries the exit code the command line gives it: 2 for what the user can change
(bad input, not enough memory or disk, a run that diverged at these settings), 1 for anything else."""

from __future__ import annotations


class PixelsError(Exception):
    """Base class for every error pixels raises on purpose."""

    exit_code = 1


class InputError(PixelsError, ValueError):
    """Bad argument or unusable input file. `param` names the Python parameter (or file role) it is about,
    as `exemplars[1].box` or `strength_map`; the text reads `param: message`, and the command line swaps
    the parameter for its flag."""

    exit_code = 2

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param, self.message = param, message
        super().__init__(f"{param}: {message}" if param else message)

    def __reduce__(self):  # pickling (worker processes) keeps the parameter
        return _rebuild, (type(self), self.message, self.param)


def _rebuild(cls: type, message: str, param: str | None) -> InputError:
    return cls(message, param=param)


class ModelNotFoundError(InputError):
    """The model could not be found locally and could not be downloaded."""


class UnsafeCheckpointError(InputError):
    """A pickle checkpoint was refused because it can run arbitrary code when loaded."""


class ResourceError(PixelsError):
    """Not enough memory or disk, or no permission to write: the message says what to change."""

    exit_code = 2


class PixelsNote(UserWarning):
    """Something about an edit worth knowing (a conversion, an ignored setting, a slow run ahead); each note is
    also listed in the result's metadata["notes"]."""


def warn_note(text: str) -> None:
    """Say a note to a Python caller: a `PixelsNote` warning (front ends pass their own `on_note` instead)."""
    import warnings

    warnings.warn(text, PixelsNote, stacklevel=3)


class NonFiniteError(PixelsError):
    """The latents became NaN or infinite during an edit (overflow at this precision or these settings)."""

    exit_code = 2


def short(value: object, limit: int = 80) -> str:
    """repr(value) cut to about `limit` characters without building a huge repr first (error messages
    must stay short whatever the input: a spec value can expand to gigabytes)."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlong = limit, limit, limit
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = r.maxfrozenset = r.maxdeque = r.maxarray = 6
    r.maxlevel = 3
    text = r.repr(value)
    return text if len(text) <= limit + 10 else text[:limit] + "..."


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type's name when it has none), cut to `limit` characters:
    what a library's long error says, short enough for one of ours."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= limit else line[:limit] + "..."


def unsafe_pickle(model: object, param: str | None) -> UnsafeCheckpointError:
    """The refusal of a model whose weights are pickle files only (loading a pickle can run any code)."""
    return UnsafeCheckpointError(
        f"{short(model)} has no .safetensors weights, only pickle files, which can run arbitrary code when loaded;"
        " convert them, or pass allow_unsafe_pickle=True if you trust the source", param=param
    )
