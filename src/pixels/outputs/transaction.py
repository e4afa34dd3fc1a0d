"""Writing outputs all or nothing, and cleaning up after runs that were killed while writing.

Every output is first written under a temporary name beside its target (`files.temporary_name`), then
all of a command's outputs are moved into place together (`Transaction`). A target replaced with
`overwrite` is first renamed aside and restored if anything fails, so on error every target is as it
was. The temporary names carry the host and process id of the writer, so what a killed run left behind
is recognised by the next write into the folder (`recover`): a commit killed midway is rolled back from
its journal, a target moved aside is put back if its replacement never arrived, and pixels' own
unfinished files are removed. Folders are only ever emptied of the names pixels writes into them
(`OWN_FILES`), never removed wholesale.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError
from ..files import HOST_TAG, NAME_KEPT, TEMPORARY, process_start, temporary_name, write_error

# The only names pixels writes inside a folder it owns (a saved session); nothing else is ever removed.
OWN_FILES = re.compile(
    r"^(manifest\.json|source\.png|step-\d+(/(exemplar-\d+\.png|exemplar-\d+-map\.npy|exemplar-\d+-condition\.png"
    r"|prompt-image-\d+\.png|control\.png|strength\.npy|result\.png))?)$"
)

def _alive(pid: int, start: int | None) -> bool:
    """Whether the writer of a temporary name is still running: process `pid`, started at `start` when the
    name records it (a live process with that pid but another start time is not the writer)."""
    if start is not None:
        now = process_start(pid)
        if now is not None:
            return now == start
    if pid == os.getpid():
        return start is None or process_start(pid) is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    return True


def foreign(folder: Path) -> list[str]:
    """What inside `folder` pixels did not write (names outside OWN_FILES, links, nested folders), as paths
    relative to it; empty for a folder pixels owns."""
    return [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*"))
            if not OWN_FILES.match(p.relative_to(folder).as_posix()) or p.is_symlink()
            or (p.is_dir() and p.parent != folder)]


def remove_own(path: Path) -> bool:
    """Remove a file, or a folder pixels owns by removing only the names in OWN_FILES (deepest first).

    Returns False, leaving the folder in place, when it holds anything pixels did not write."""
    if not path.is_dir() or path.is_symlink():
        path.unlink()
        return True
    if foreign(path):
        return False
    for entry in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        entry.rmdir() if entry.is_dir() else entry.unlink()
    path.rmdir()
    return True


def recover(folder: Path) -> None:
    """Clean up after runs that were killed while writing into `folder` (see the module docstring): an
    interrupted commit is rolled back from its journal, then unfinished temporary outputs are removed and
    targets moved aside whose replacement never arrived are put back."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    stale = []
    for name in names:
        match = TEMPORARY.match(name)
        if match is not None and match["host"] == HOST_TAG and \
                not _alive(int(match["pid"]), None if match["start"] is None else int(match["start"])):
            stale.append((name, match))
    for name, match in stale:
        if match["kind"] == "journal" and os.path.lexists(folder / name):
            _roll_back(folder / name)
    for name, match in stale:
        path, target = folder / name, folder / match["name"]
        try:
            if not os.path.lexists(path) or match["kind"] == "journal":
                continue
            if match["kind"] == "new":
                remove_own(path)
            elif not os.path.lexists(target) and len(match["name"]) < NAME_KEPT:
                os.rename(path, target)  # the replacement never arrived: put the original back
            elif os.path.lexists(target):
                remove_own(path)  # the replacement arrived: this is the original it replaced
        except OSError:
            pass


def _roll_back(journal: Path) -> None:
    """Undo a commit that was killed midway, from its journal."""
    try:
        record = json.loads(journal.read_text())
        entries, journals = record["entries"], record["journals"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    _undo(entries)
    for other in journals:
        with contextlib.suppress(OSError):
            os.unlink(other)


def _undo(entries) -> None:
    """Put every target of a commit back as it was, judging from what is on disk: an output was moved in
    if its temporary name is gone (or is the same file as the target), and a target moved aside is renamed
    back. entries: (temporary, target, aside or None) in commit order."""
    for tmp, target, aside in reversed(list(entries)):
        tmp, target = Path(tmp), Path(target)
        try:
            moved_in = os.path.lexists(target) and (not os.path.lexists(tmp) or os.path.samefile(tmp, target))
            if moved_in:
                remove_own(target)
            if aside is not None and os.path.lexists(aside) and not os.path.lexists(target):
                os.rename(aside, target)
            if os.path.lexists(tmp):
                remove_own(tmp)
        except OSError:
            pass


# -- writing -----------------------------------------------------------------------------------------
class Transaction:
    """The outputs of one command, written under temporary names and moved into place together.

    `file(target, write)` and `folder(target, write)` stage an output; `commit()` moves them all in;
    leaving the `with` block without committing (an error, Ctrl-C) removes everything staged, and a
    failure during `commit` restores every target it had already replaced."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path, bool]] = []  # (temporary, target, overwrite)
        self._recovered: set[Path] = set()  # folders already cleaned up after killed runs

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()

    def file(self, target: str | os.PathLike, write: Callable[[BinaryIO], None], *, overwrite: bool) -> Path:
        """Stage a file written by `write(f)` and flushed to disk; returns the target path."""
        target, tmp = self._stage(target, overwrite)
        with _write_errors(target):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        return target

    def folder(self, target: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool) -> Path:
        """Stage a folder filled by `write(path)` with names from OWN_FILES; returns the target path."""
        target, tmp = self._stage(target, overwrite)
        with _write_errors(target):
            tmp.mkdir()
            write(tmp)
        return target

    def _stage(self, target: str | os.PathLike, overwrite: bool) -> tuple[Path, Path]:
        """The target and the temporary name its output is written under, staged for the commit."""
        target = Path(target).expanduser()
        if target.parent not in self._recovered:
            recover(target.parent)
            self._recovered.add(target.parent)
        tmp = temporary_name(target, "new")
        self._staged.append((tmp, target, overwrite))
        return target, tmp

    def commit(self) -> None:
        """Move every staged output into place. A journal of the moves, in each folder involved, lets the
        next run roll back a commit that was killed midway (`recover`); removing it is the commit point."""
        plan = []
        for tmp, target, overwrite in self._staged:
            if os.path.lexists(target) and not overwrite:
                raise InputError(f"{str(target)!r} exists; pass overwrite=True to replace it", param="output")
            aside = temporary_name(target, "old") if os.path.lexists(target) else None
            plan.append((tmp, target, aside))
        folders = sorted({target.parent for _, target, _ in plan})
        journals = [str(temporary_name(folder / "commit", "journal")) for folder in folders]  # one per folder
        record = json.dumps({"entries": [[str(t), str(g), None if a is None else str(a)] for t, g, a in plan],
                             "journals": journals})
        try:
            for journal in journals:
                _write_synced(Path(journal), record.encode())
            for tmp, target, aside in plan:
                if aside is not None:
                    os.rename(target, aside)
                _move_in(tmp, target)
            for journal in journals:  # the commit point: from here on the new outputs stay
                os.unlink(journal)
        except BaseException:
            _undo(plan)  # whatever step was reached (even an interrupt between two renames)
            for journal in journals:
                with contextlib.suppress(OSError):
                    os.unlink(journal)
            raise
        finally:
            self._staged.clear()
        for _, _, aside in plan:
            if aside is not None:
                remove_own(aside)

    def discard(self) -> None:
        while self._staged:
            tmp, _, _ = self._staged.pop()
            if os.path.lexists(tmp):
                remove_own(tmp)


@contextlib.contextmanager
def _write_errors(target: Path):
    """A full disk, a read-only folder and the like as the error a user can act on, naming `target`."""
    try:
        yield
    except OSError as error:
        if (resource := write_error(error, target)) is not None:
            raise resource from None
        raise


def _move_in(tmp: Path, target: Path) -> None:
    """Rename `tmp` to a `target` that does not exist. Files are hard-linked, which fails instead of
    replacing a file that appeared meanwhile; a folder cannot replace anything but an empty folder."""
    if tmp.is_dir():
        os.rename(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise InputError(f"{str(target)!r} exists; pass overwrite=True to replace it", param="output") from None
    except OSError as error:  # file systems without hard links
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        os.rename(tmp, target)
        return
    with contextlib.suppress(OSError):  # the link is the move; a leftover name goes at the next `recover`
        os.unlink(tmp)


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(target: str | os.PathLike, write: Callable[[BinaryIO], None], *, overwrite: bool = False) -> Path:
    """Write one file atomically: the complete file or nothing."""
    with Transaction() as transaction:
        path = transaction.file(target, write, overwrite=overwrite)
        transaction.commit()
    return path


__all__ = ["OWN_FILES", "Transaction", "atomic_write", "foreign", "recover", "remove_own"]
