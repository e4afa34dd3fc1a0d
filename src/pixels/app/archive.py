"""Saved sessions as zip files: `EditSession.save` folders packed for download, and uploaded zips unpacked
safely (no path outside the folder, no links, bounded size and count) before `EditSession.load` replays them."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from pixels import InputError

TOP = "pixels-session"  # the folder inside the zip
MAX_ENTRIES = 40_000  # a session manifest lists at most 10,000 steps, a few files each
MAX_BYTES = 512 * 1024 * 1024  # uncompressed, in all: far above a session of photos at the app's limits
MANIFEST = "manifest.json"


def pack(folder: Path, zip_path: Path) -> Path:
    """Zip a saved session folder as TOP/... (deflated)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{TOP}/{path.relative_to(folder).as_posix()}")
    return zip_path


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    """The member's name as a safe relative path, or an InputError naming it."""
    name = info.filename
    path = PurePosixPath(name)
    mode = info.external_attr >> 16
    if "\\" in name or "\x00" in name or path.is_absolute() or ".." in path.parts or not path.parts:
        raise InputError(f"session zip: the entry {name[:80]!r} points outside the folder; refused")
    if stat.S_ISLNK(mode):
        raise InputError(f"session zip: the entry {name[:80]!r} is a symbolic link; refused")
    return path


def unpack(zip_path: str | os.PathLike, folder: Path) -> Path:
    """Extract an uploaded session zip into the new folder `folder`; returns the folder holding its manifest
    (the zip's root or its one top folder). Every entry is checked before anything is written, and the
    bytes written are counted while writing (a zip can lie about its sizes)."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f"session zip: not a zip file ({type(error).__name__})") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ENTRIES:
            raise InputError(f"session zip: {len(members):,} entries, more than the limit of {MAX_ENTRIES:,}")
        paths = [_member_path(info) for info in members]
        if sum(info.file_size for info in members) > MAX_BYTES:
            raise InputError(f"session zip: more than {MAX_BYTES // 2**20} MiB once unpacked; refused")
        folder.mkdir()
        written = 0
        try:
            for info, path in zip(members, paths):
                target = folder.joinpath(*path.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, open(target, "xb") as out:
                    while chunk := source.read(1 << 20):
                        written += len(chunk)
                        if written > MAX_BYTES:
                            raise InputError(f"session zip: more than {MAX_BYTES // 2**20} MiB once unpacked; refused")
                        out.write(chunk)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError) as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise InputError(f"session zip: corrupt or unsupported ({type(error).__name__}: {str(error)[:80]})") \
                from None
        except FileExistsError:
            shutil.rmtree(folder, ignore_errors=True)
            raise InputError("session zip: an entry appears twice; refused") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    if (folder / MANIFEST).is_file():
        return folder
    tops = [p for p in folder.iterdir() if p.is_dir()]
    if len(tops) == 1 and (tops[0] / MANIFEST).is_file():
        return tops[0]
    shutil.rmtree(folder, ignore_errors=True)
    raise InputError("session zip: no manifest.json in it (save a session from the studio, or with EditSession.save)")


__all__ = ["pack", "unpack"]
