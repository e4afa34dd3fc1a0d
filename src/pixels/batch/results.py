"""`results.jsonl`: one line per row of a batch (row, status, output, seconds, seed, settings hash, error);
`failures.jsonl`: the lines of the rows that failed.

Lines are appended as rows finish (flushed and synced), so a killed run loses at most the line it was
writing; the next run drops a torn last line, adds the lines of rows whose result exists but whose line
was lost, and rewrites the file with one line per row (atomically). A row is done when its output file
exists and carries its settings hash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..outputs.transaction import atomic_write
from ..outputs.writers import read_metadata
from .manifest import Row

RESULTS, FAILURES = "results.jsonl", "failures.jsonl"


def read_results(folder: Path) -> dict[int, dict[str, Any]]:
    """The last line of each row, from a results file that a killed run may have cut short."""
    path = folder / RESULTS
    latest: dict[int, dict[str, Any]] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return latest
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by a kill
        if isinstance(record, dict) and isinstance(record.get("row"), int):
            latest[record["row"]] = record
    return latest


def write_results(folder: Path, records: dict[int, dict[str, Any]]) -> None:
    """Rewrite the results file with one line per row, in row order, atomically."""
    text = "".join(json.dumps(records[k], sort_keys=True) + "\n" for k in sorted(records))
    atomic_write(folder / RESULTS, lambda f: f.write(text.encode()), overwrite=True)


def append_result(folder: Path, record: dict[str, Any]) -> None:
    """One more line, on disk before the call returns."""
    with open(folder / RESULTS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def record(row: Row, status: str, *, seconds: float | None = None, seed: int | None = None,
           settings_hash: str | None = None, error: str | None = None) -> dict[str, Any]:
    """A row's line in the results file."""
    return {"row": row.number, "status": status, "output": row.output,
            "seconds": None if seconds is None else round(seconds, 3), "seed": seed, "settings_hash": settings_hash,
            "error": error}


def done_record(folder: Path, row: Row, settings_hash: str, job: str, previous: dict[str, Any] | None = None
                ) -> dict[str, Any] | None:
    """The record of a row whose output exists, was written by `job` and carries `settings_hash` (None if it
    must be made). previous: the row's last line in the results file, whose timing is kept if it matches."""
    try:
        metadata = read_metadata(folder / row.output)
    except Exception:  # noqa: BLE001 - a missing, unreadable or foreign file: the row is not done
        return None
    batch = (metadata or {}).get("batch") or {}
    if not isinstance(batch, dict) or batch.get("settings_hash") != settings_hash or batch.get("job") != job:
        return None
    seconds = None
    if previous and previous.get("status") == "ok" and previous.get("settings_hash") == settings_hash:
        seconds = previous.get("seconds")
    return record(row, "ok", seconds=seconds, seed=metadata.get("seed"), settings_hash=settings_hash)


def write_failures(folder: Path, records: dict[int, dict[str, Any]]) -> None:
    """failures.jsonl: the failed rows' lines, in row order (no file when none failed)."""
    failed = {k: v for k, v in records.items() if v.get("status") != "ok"}
    if failed:
        text = "".join(json.dumps(failed[k], sort_keys=True) + "\n" for k in sorted(failed))
        atomic_write(folder / FAILURES, lambda f: f.write(text.encode()), overwrite=True)
    elif os.path.lexists(folder / FAILURES):
        os.unlink(folder / FAILURES)
