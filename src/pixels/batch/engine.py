"""Running a batch: what is left to do, and doing it. The same functions serve the local engine (one process,
one model load) and every worker of the Ray engine, so both write the same files and follow the same rules.

Resume rule: a row is done when its output exists and carries the row's settings hash (what it depends
on: the row, the model, its input files' contents). A rerun skips done rows and makes the others again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, PixelsError, short
from ..files import check_writable
from ..output import image_writer
from ..transaction import atomic_write, recover
from .manifest import Row, load_rows, row_hash, row_seed
from .results import append_result, done_record, read_results, record, write_results

# the settings that decide a schedule: rows sharing them can share model calls (Editor.edit_batch)
SCHEDULE_KEYS = ("num_inference_steps", "strength", "denoising_start", "guidance_scale", "guidance_rescale",
                 "scheduler", "eta", "switch_at")


@dataclass
class Plan:
    """A batch job as found on disk: every row, its settings hash, what is done, what is left."""

    manifest: Path
    folder: Path
    rows: list[Row]
    hashes: dict[int, str] = field(default_factory=dict)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)  # the results so far, by row
    todo: list[Row] = field(default_factory=list)
    already: int = 0  # rows found done when the job started


def plan(manifest: str | os.PathLike, folder: str | os.PathLike, model: str, defaults: dict | None = None) -> Plan:
    """Read the manifest, clean up after a killed run, and sort the rows into done, failed and to do.
    defaults: settings for whatever a row does not set (the model's recommended ones)."""
    manifest, folder = Path(manifest).expanduser(), Path(folder).expanduser()
    rows = load_rows(manifest, defaults)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{str(folder)!r} exists and is not a folder", param="output")
    if not folder.parent.is_dir():
        raise InputError(f"folder {str(folder.parent)!r} does not exist", param="output")
    folder.mkdir(exist_ok=True)
    check_writable(folder, "output")
    _check_inputs_are_not_outputs(rows, folder, manifest)
    for sub in sorted({(folder / row.output).parent for row in rows}):
        recover(sub)
    job = Plan(manifest, folder, rows, records=read_results(folder))
    for row in rows:
        if row.error is not None:
            job.records[row.number] = record(row, "failed", error=row.error)
            continue
        job.hashes[row.number] = row_hash(row, model)
        done = done_record(folder, row, job.hashes[row.number])
        if done is None:
            job.todo.append(row)
            continue
        job.already += 1
        job.records[row.number] = done  # from the output's own metadata: what the line written with it said
    numbers = {row.number for row in rows}
    job.records = {k: v for k, v in job.records.items() if k in numbers}
    write_results(folder, job.records)  # one line per row, whatever a killed run left
    return job


def _check_inputs_are_not_outputs(rows: Sequence[Row], folder: Path, manifest: Path) -> None:
    inputs = {manifest.resolve()}
    for row in rows:
        if row.edit is not None:
            inputs |= {Path(p).expanduser().resolve() for p in row.inputs()}
    for row in rows:
        if (folder / row.output).resolve() in inputs:
            raise InputError(f"row {row.number} would write its output over an input, {row.output!r}; outputs go"
                             " to their own files", param="manifest")


def _schedule(row: Row) -> tuple:
    assert row.edit is not None
    return tuple(str(row.edit.settings.get(k)) for k in SCHEDULE_KEYS)


def process(editor, rows: Sequence[Row], hashes: dict[int, str], folder: Path, manifest_name: str, *,
            batch_size: int = 1, retries: int = 0, on_record: Callable[[dict[str, Any]], None] | None = None,
            on_edit: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Make the rows' results: `batch_size` rows at a time through `Editor.edit_batch` (rows with one schedule
    side by side, so that they share model calls), each result written atomically with its settings hash,
    each failure retried `retries` times on its own and then recorded. Returns the records, and hands each
    to `on_record` as soon as it is known."""
    records = []
    ordered = sorted(rows, key=_schedule)
    for start in range(0, len(ordered), batch_size):
        chunk = ordered[start:start + batch_size]
        seeds = {row.number: row_seed(row, hashes[row.number]) for row in chunk}
        began = time.perf_counter()
        outcomes = editor.edit_batch([row.request(seeds[row.number]) for row in chunk], return_exceptions=True)
        share = (time.perf_counter() - began) / len(chunk)
        for row, outcome in zip(chunk, outcomes):
            seconds = share
            for _ in range(retries):
                if not isinstance(outcome, Exception) or isinstance(outcome, InputError):
                    break  # bad input fails again: only failures of the run are retried
                again = time.perf_counter()
                try:
                    outcome = editor.edit(**row.request(seeds[row.number]))
                except Exception as error:  # noqa: BLE001 - recorded for the row, the batch goes on
                    outcome = error
                seconds = time.perf_counter() - again
            if isinstance(outcome, Exception):
                entry = record(row, "failed", seed=seeds[row.number], settings_hash=hashes[row.number],
                               error=_describe(outcome))
            else:
                entry = _write(row, outcome, folder, manifest_name, hashes[row.number], seconds)
            records.append(entry)
            if on_record is not None:
                on_record(entry)
            if on_edit is not None:
                on_edit()
    return records


def _describe(error: Exception) -> str:
    return str(error) if isinstance(error, PixelsError) else f"{type(error).__name__}: {short(str(error), 300)}"


def _write(row: Row, result, folder: Path, manifest_name: str, settings_hash: str, seconds: float) -> dict[str, Any]:
    target = folder / row.output
    metadata = {**result.metadata, "source": row.source,
                "batch": {"row": row.number, "manifest": manifest_name, "settings_hash": settings_hash,
                          "seconds": round(seconds, 3)}}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, image_writer(result.image, target, metadata), overwrite=True)
    except (OSError, PixelsError) as error:
        return record(row, "failed", seed=result.metadata["seed"], settings_hash=settings_hash,
                      error=f"writing {row.output}: {_describe(error)}")
    return record(row, "ok", seconds=seconds, seed=result.metadata["seed"], settings_hash=settings_hash)


def finish(job: Plan, new: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The job's final records (one per row), written as the results file."""
    job.records.update({entry["row"]: entry for entry in new})
    write_results(job.folder, job.records)
    return job.records


def run_local(job: Plan, editor, *, batch_size: int, retries: int, on_edit: Callable[[], None] | None = None
              ) -> dict[int, dict[str, Any]]:
    """The local engine: this process, the loaded `editor`, one line appended per row as it finishes."""
    records = process(editor, job.todo, job.hashes, job.folder, job.manifest.name, batch_size=batch_size,
                      retries=retries, on_record=lambda entry: append_result(job.folder, entry), on_edit=on_edit)
    return finish(job, records)
