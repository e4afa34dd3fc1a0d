"""Reading files safely, and the checks an output gets before any work.

Input files are opened without blocking and checked to be regular files on the open descriptor, so a
FIFO, a device or a socket given as an input is refused instead of hanging; reads are bounded. Outputs
are written by `transaction`; the temporary names both modules use are made here.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import socket
import stat
from pathlib import Path
from typing import BinaryIO

from .errors import InputError, ResourceError

HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
TEMPORARY = re.compile(  # the writer's host, process id and the process's start time (PIDs are reused)
    r"^\.pixels-tmp-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)(?:\.(?P<start>\d+))?-[0-9a-f]{8}-(?P<kind>new|old|journal)"
    r"-(?P<name>.+)$"
)
NAME_KEPT = 200  # characters of the target's name kept in a temporary name (NAME_MAX is 255 bytes)
_WRITE_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
                 errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                 errno.EROFS: "the file system is read-only", errno.ENAMETOOLONG: "the file name is too long"}
_READ_ERRORS = {errno.ENOENT: "no such file", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                errno.EISDIR: "it is a folder, not a file", errno.ENAMETOOLONG: "the file name is too long",
                errno.ELOOP: "too many levels of symbolic links", errno.ENOTDIR: "a part of the path is not a folder"}


# -- reading ---------------------------------------------------------------------------------------
def read_error(error: OSError, name: str, path: Path | str) -> InputError:
    """An InputError for a failed read, saying why in words."""
    reason = _READ_ERRORS.get(error.errno, error.strerror or type(error).__name__)
    return InputError(f"cannot read {str(path)!r}: {reason}", param=name)


def open_regular(path: str | os.PathLike, name: str) -> BinaryIO:
    """Open `path` for reading if it is a regular file (symbolic links followed); never blocks.

    Opening a FIFO for reading blocks until a writer appears, so the file is opened non-blocking and
    checked with fstat on the open descriptor (no window between the check and the read)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except ValueError:  # a NUL character in the path
        raise InputError(f"{str(path)!r} is not a valid path", param=name) from None
    except OSError as error:
        if error.errno == errno.ENOENT:
            raise InputError(f"no such file: {path}", param=name) from None
        if error.errno == errno.EISDIR:
            raise InputError(f"{path} is a folder, not a file", param=name) from None
        raise read_error(error, name, path) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{path} is a folder, not a file", param=name)
        if not stat.S_ISREG(mode):
            raise InputError(f"{path} is not a regular file (a pipe, device or socket); give a file", param=name)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike, name: str, limit: int) -> bytes:
    """The contents of a regular file of at most `limit` bytes."""
    with open_regular(path, name) as f:
        try:
            data = f.read(limit + 1)
        except OSError as error:
            raise read_error(error, name, path) from None
    if len(data) > limit:
        raise InputError(f"{path} is larger than {limit:,} bytes, the limit for this kind of file", param=name)
    return data


def read_text(path: str | os.PathLike, name: str, limit: int) -> str:
    """UTF-8 text of a regular file of at most `limit` bytes (a leading byte-order mark is dropped)."""
    try:
        return read_bytes(path, name, limit).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text (invalid byte at offset {error.start})", param=name) from None


# -- checks before any work ------------------------------------------------------------------------
def check_writable(folder: Path, name: str) -> None:
    """Refuse a folder pixels cannot create files in (permissions, read-only file system), before any work."""
    probe = temporary_name(folder / "probe", "new")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        reason = _WRITE_ERRORS.get(error.errno, error.strerror or type(error).__name__)
        raise InputError(f"cannot write into folder {str(folder)!r}: {reason}", param=name) from None
    os.close(fd)
    os.unlink(probe)


def check_name_length(path: Path, name: str) -> None:
    """Refuse a file name longer than the file system allows (before any work, not when saving)."""
    try:
        limit = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(path.name)) > limit:
        raise InputError(f"the file name {path.name[:40]!r}... is longer than {limit} bytes", param=name)


def write_error(error: OSError, path: Path | str) -> ResourceError | None:
    """A ResourceError saying what to change, for write errors a user can fix (disk space, permissions)."""
    reason = _WRITE_ERRORS.get(error.errno)
    if reason is None:
        return None
    hint = "choose a shorter name" if error.errno == errno.ENAMETOOLONG else "free some space or choose another folder"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "choose a folder you can write to"
    return ResourceError(f"output: cannot write {str(path)!r}: {reason}; {hint}")


# -- temporary names -------------------------------------------------------------------------------
def process_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux: /proc/PID/stat); None where unknown.
    With the pid it names one process for good: a container restarted with the same PIDs has other times."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read()
        return int(stat_line[stat_line.rindex(b")") + 2:].split()[19])  # field 22, after the command name
    except (OSError, ValueError, IndexError):
        return None


def temporary_name(target: Path, kind: str) -> Path:
    """A fresh hidden name beside `target`: `.pixels-tmp-HOST-PID.START-RANDOM-KIND-NAME`."""
    pid = os.getpid()
    start = process_start(pid)
    unique = f"{HOST_TAG}-{pid if start is None else f'{pid}.{start}'}-{secrets.token_hex(4)}"
    return target.parent / f".pixels-tmp-{unique}-{kind}-{target.name[:NAME_KEPT]}"
