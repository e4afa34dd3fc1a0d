"""Which job an output folder belongs to, and who may write into it now.

A batch writes only what it can prove it wrote for this job. The folder's marker (`.pixels-batch.json`)
names the job: an id (from the manifest's path when the job began) and the manifest it runs (its resolved path, so a rerun from another working
folder, or with the path written otherwise, is the same job). Every output carries the job id in its
metadata (`batch.job`). Before the model loads, a run refuses, unless told to overwrite:
- a folder that holds another job's marker, or a results file without a marker (another tool's, or an
  older pixels'): one folder, one job;
- a row whose output exists but was not written by this job (a file the user put there, another job's).

A lock (`.pixels-batch.lock`, an advisory `flock` held while the job runs) refuses a second run into the
same folder while one is running; the kernel releases it when the holder exits, however it exits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..outputs.transaction import atomic_write
from ..outputs.writers import read_metadata
from .results import FAILURES, RESULTS

MARKER, LOCK = ".pixels-batch.json", ".pixels-batch.lock"
MARKER_FORMAT = "pixels-batch-job"
SHOWN = 5  # files named in a refusal


@dataclass(frozen=True)
class Job:
    """The job an output folder belongs to: its id (in every output's metadata) and its manifest."""

    id: str
    manifest: str


def find_job(folder: Path, manifest: Path, *, overwrite: bool) -> Job:
    """The job of `manifest` in `folder`: the one its marker names, or a new one (`write_marker` records it
    once every check has passed). Another job's folder, or a results file pixels cannot place, is refused
    unless `overwrite`; then the folder is taken over (its id kept: outputs it wrote stay done where their
    settings still match)."""
    manifest_key = str(manifest.resolve())
    found = _read_marker(folder)
    if found is not None and found.manifest == manifest_key:
        return found
    if found is not None and not overwrite:
        raise InputError(f"{str(folder)!r} holds the results of another job (manifest {found.manifest!r}); give"
                         " each job its own folder, or pass overwrite=True to take this one over", param="output")
    if found is None and not overwrite:
        unplaced = [name for name in (RESULTS, FAILURES, MARKER) if os.path.lexists(folder / name)]
        if unplaced:
            raise InputError(f"{str(folder)!r} has {', '.join(unplaced)} but no readable job marker ({MARKER}): it"
                             " was not written by a pixels batch job; give an empty folder, or pass overwrite=True to"
                             " replace it", param="output")
    return Job(found.id if found is not None else job_id(manifest_key), manifest_key)


def job_id(manifest: str) -> str:
    """A new job's id: from its manifest's resolved path, so that two runs of one manifest into two folders
    write the same bytes."""
    return hashlib.sha256(os.fsencode(manifest)).hexdigest()[:16]


def write_marker(folder: Path, job: Job) -> None:
    """Record `job` as the folder's job (unchanged when it already is)."""
    if _read_marker(folder) == job:
        return
    text = json.dumps({"format": MARKER_FORMAT, "version": 1, "job": job.id, "manifest": job.manifest}, indent=1)
    atomic_write(folder / MARKER, lambda f: f.write(text.encode()), overwrite=True)


def _read_marker(folder: Path) -> Job | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT:
        return None
    if not isinstance(data.get("job"), str) or not isinstance(data.get("manifest"), str):
        return None
    return Job(data["job"], data["manifest"])


def written_by(path: Path, job: Job) -> bool:
    """Whether the file at `path` is an output this job wrote (its metadata carries the job's id)."""
    try:
        metadata = read_metadata(path) or {}
    except Exception:  # noqa: BLE001 - unreadable, not an image, not pixels': not this job's
        return False
    batch = metadata.get("batch")
    return isinstance(batch, dict) and batch.get("job") == job.id


def check_outputs(folder: Path, outputs: dict[int, str], job: Job, *, overwrite: bool) -> set[str]:
    """Refuse, before any work, outputs that would replace what this job did not write (unless `overwrite`),
    folders in the way, and outputs that a link inside the folder would send outside it. outputs: row ->
    name. Returns the names that exist and may be replaced."""
    root = folder.resolve()
    foreign, replace = [], set()
    for number, name in sorted(outputs.items()):
        target = folder / name
        parent = target.parent.resolve()
        if parent != root and root not in parent.parents:
            raise InputError(f"row {number}: {name!r} leads outside the output folder (a link on the way)",
                             param="output")
        if target.is_dir() and not target.is_symlink():
            raise InputError(f"row {number}: {name!r} is a folder in the output folder", param="output")
        if not os.path.lexists(target):
            continue
        if not overwrite and (target.is_symlink() or not written_by(target, job)):
            foreign.append((number, name))
        replace.add(name)
    if foreign:
        shown = ", ".join(f"{name!r} (row {number})" for number, name in foreign[:SHOWN])
        more = f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else ""
        raise InputError(f"{len(foreign)} output(s) exist that this job did not write: {shown}{more}; nothing was"
                         " written. Move them away, name other outputs, or pass overwrite=True to replace them",
                         param="output")
    return replace


class FolderLock:
    """The lock of an output folder for one run of a job (see the module docstring). `acquire()` refuses,
    naming the holder, when another run holds it."""

    def __init__(self, folder: Path) -> None:
        self.path, self._fd = folder / LOCK, None

    def acquire(self) -> FolderLock:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise InputError(f"{str(self.path.parent)!r} is in use by another pixels batch{holder}; wait for it to"
                             " finish (a rerun then resumes), or give another folder", param="output") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing releases the lock; the file stays (removing it would race)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f" (pid {int(data['pid'])} on {data['host']}, since {data['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


__all__ = ["FAILURES", "LOCK", "MARKER", "RESULTS", "FolderLock", "Job", "check_outputs", "find_job", "write_marker",
           "written_by"]
