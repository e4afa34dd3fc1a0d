"""Running a batch: what is left to do, and doing it. The same functions serve the local engine (one process,
one model load) and every worker of the Ray engine, so both write the same files and follow the same rules.

Resume rule: a row is done when its output exists, was written by this job (`job`), and carries the row's
settings hash: the row's values, its input files' contents, and the engine (`identity`: the model, the
precision, the device kind, the CPU threads, pixels' version). A rerun skips done rows and makes the others.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..core.settings import schedule_key
from ..errors import InputError, PixelsError, short
from ..files import check_writable
from ..outputs.transaction import atomic_write, recover
from ..outputs.writers import image_writer
from .job import FolderLock, Job, check_outputs, find_job, write_marker
from .manifest import Row, in_row, load_rows, row_hash, row_seed
from .results import append_result, done_record, read_results, record, write_failures, write_results


def identity(model: str, device: str = "cpu", dtype: str = "auto", threads: int | None = None,
             loras: Sequence[tuple[str, str | None, float]] = ()) -> dict[str, Any]:
    """What of the engine a result depends on, for the settings hash: the model (a local one by its resolved
    path), the precision ("auto" is fp32 on the CPU; on a GPU it names each family's published precision),
    the device kind, the CPU threads (reductions split across threads round differently; ignored on a GPU),
    the LoRAs loaded into it ((model, weight name, scale) each, local ones by their resolved paths) and pixels'
    version (a new release may change pixels). torch's and diffusers' versions are recorded in each output's
    metadata but are not part of it."""
    import torch

    from ..models.loading import DTYPES

    local = Path(model).expanduser()
    kind = torch.device(device).type if device != "auto" else "auto"
    name = str(dtype).lower()
    precision = "fp32" if name == "auto" and kind == "cpu" else name
    if precision in DTYPES:
        precision = str(DTYPES[precision]).removeprefix("torch.")
    found = {"model": str(local.resolve()) if local.exists() else model, "dtype": precision, "device": kind,
             "threads": threads if kind == "cpu" else None, "pixels": __version__}
    if loras:  # absent without LoRAs: the hashes of jobs that load none are unchanged
        found["loras"] = [[str(Path(m).expanduser().resolve()) if Path(m).expanduser().exists() else m, w, s]
                          for m, w, s in loras]
    return found


def load_editor(load: dict[str, Any]):
    """The editor a batch runs with (local or on a Ray worker): `Editor.from_pretrained` with `load`'s arguments,
    then the LoRAs `load["loras"]` lists ((model, weight name, scale) each) loaded in order, as `pixels edit
    --lora` loads them."""
    from ..editor import Editor

    load = dict(load)
    loras = load.pop("loras", ())
    editor = Editor.from_pretrained(**load)
    for model, weight_name, scale in loras:
        editor.load_lora(model, scale, weight_name=weight_name, allow_unsafe_pickle=load.get("allow_unsafe_pickle",
                                                                                          False),
                         local_files_only=load.get("local_files_only"))
    return editor


@dataclass(frozen=True)
class Destination:
    """Where a job's results go and what each output records of it (small: it travels to Ray workers)."""

    folder: Path
    manifest: str  # the manifest's file name
    job: str  # the job's id


@dataclass
class Plan:
    """A batch job as found on disk: every row, its settings hash, what is done, what is left. Holds the
    output folder's lock until `close()` (or the end of a `with` block)."""

    manifest: Path
    folder: Path
    rows: list[Row]
    job: Job
    engine: dict[str, Any]
    hashes: dict[int, str] = field(default_factory=dict)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)  # the results so far, by row
    todo: list[Row] = field(default_factory=list)
    already: int = 0  # rows found done when the job started
    replace: set[str] = field(default_factory=set)  # outputs to do that exist and may be replaced
    orphans: list[str] = field(default_factory=list)  # this job's earlier outputs that no row names now
    lock: FolderLock | None = field(default=None, repr=False)

    @property
    def destination(self) -> Destination:
        return Destination(self.folder, self.manifest.name, self.job.id)

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def plan(manifest: str | os.PathLike, folder: str | os.PathLike, model: str, defaults: dict | None = None, *,
         engine: dict[str, Any] | None = None, overwrite: bool = False) -> Plan:
    """Read the manifest, take the output folder's lock, clean up after a killed run, check that every output
    to write is this job's to replace (`batch.job`; `overwrite` allows any), and sort the rows into done,
    failed and to do. Nothing is written before every check has passed.
    defaults: settings for whatever a row does not set (the model's recommended ones).
    engine: `identity(...)` of the engine that will run the rows (default: `model` on the CPU)."""
    manifest, folder = Path(os.path.abspath(Path(manifest).expanduser())), Path(os.path.abspath(Path(folder).expanduser()))
    engine = identity(model) if engine is None else engine
    rows = load_rows(manifest, defaults)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{str(folder)!r} exists and is not a folder", param="output")
    if not folder.parent.is_dir():
        raise InputError(f"folder {str(folder.parent)!r} does not exist", param="output")
    _check_inputs_are_not_outputs(rows, folder, manifest)
    if folder.is_dir():  # refusals first, touching nothing: another job's folder, files this job did not write
        check_outputs(folder, _outputs(rows), find_job(folder, manifest, overwrite=overwrite), overwrite=overwrite)
    folder.mkdir(exist_ok=True)
    check_writable(folder, "output")
    lock = FolderLock(folder).acquire()
    try:
        return _plan(manifest, folder, rows, engine, lock, overwrite=overwrite)
    except BaseException:
        lock.release()
        raise


def _outputs(rows: Iterable[Row]) -> dict[int, str]:
    return {row.number: row.output for row in rows if row.error is None}


def _plan(manifest: Path, folder: Path, rows: list[Row], engine: dict[str, Any], lock: FolderLock, *,
          overwrite: bool) -> Plan:
    """The plan, under the folder's lock (the checks again: another run may have finished meanwhile)."""
    job = find_job(folder, manifest, overwrite=overwrite)
    for sub in sorted({(folder / row.output).parent for row in rows}):
        recover(sub)
    previous = read_results(folder)
    found = Plan(manifest, folder, rows, job, engine, lock=lock)
    digests: dict[str, str] = {}
    for row in rows:
        if row.error is not None:
            found.records[row.number] = record(row, "failed", error=row.error)
            continue
        found.hashes[row.number] = row_hash(row, engine, digests)
        done = done_record(folder, row, found.hashes[row.number], job.id, previous.get(row.number))
        if done is None:
            found.todo.append(row)
            continue
        found.already += 1
        found.records[row.number] = done
    found.replace = check_outputs(folder, _outputs(found.todo), job, overwrite=overwrite)
    named = {row.output for row in rows}
    found.orphans = sorted({r["output"] for r in previous.values() if isinstance(r.get("output"), str)
                            and r["output"] not in named and os.path.lexists(folder / r["output"])})
    write_marker(folder, job)
    write_results(folder, found.records)  # one line per row, whatever a killed run left
    return found


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
    return schedule_key(row.edit.settings)


def process(editor, rows: Sequence[Row], hashes: dict[int, str], destination: Destination, *,
            replace: Iterable[str] = (), batch_size: int = 1, retries: int = 0,
            on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Make the rows' results: `batch_size` rows at a time through `Editor.edit_batch` (rows with one schedule
    side by side, so that they share model calls), each result written atomically with its settings hash
    and the job's id, each failure retried `retries` times on its own and then recorded. An output is
    written over an existing file only if its name is in `replace` (what `plan` checked). Returns the
    records, and hands each to `on_record` as soon as it is known."""
    records = []
    replace = set(replace)
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
                entry = _write(row, outcome, destination, hashes[row.number], seconds, row.output in replace)
            records.append(entry)
            if on_record is not None:
                on_record(entry)
    return records


def _describe(error: Exception) -> str:
    """A row's error as its manifest says it (`map: ...`, not the Python parameter `strength_map`)."""
    if isinstance(error, InputError):
        return in_row(error)
    return str(error) if isinstance(error, PixelsError) else f"{type(error).__name__}: {short(str(error), 300)}"


def _write(row: Row, result, destination: Destination, settings_hash: str, seconds: float, replace: bool
           ) -> dict[str, Any]:
    target = destination.folder / row.output
    metadata = {**result.metadata, "source": row.source,
                "batch": {"job": destination.job, "row": row.number, "manifest": destination.manifest,
                          "settings_hash": settings_hash}}  # no timings: a rerun writes the same bytes
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, image_writer(result.image, target, metadata), overwrite=replace)
    except (OSError, PixelsError) as error:
        return record(row, "failed", seed=result.metadata["seed"], settings_hash=settings_hash,
                      error=f"writing {row.output}: {_describe(error)}")
    return record(row, "ok", seconds=seconds, seed=result.metadata["seed"], settings_hash=settings_hash)


def finish(job: Plan, new: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The job's final records (one per row), written as the results file; the failed ones also in
    failures.jsonl (removed when none failed)."""
    job.records.update({entry["row"]: entry for entry in new})
    write_results(job.folder, job.records)
    write_failures(job.folder, job.records)
    return job.records


def run_local(job: Plan, editor, *, batch_size: int, retries: int,
              on_record: Callable[[dict[str, Any]], None] | None = None) -> dict[int, dict[str, Any]]:
    """The local engine: this process, the loaded `editor`, one line appended per row as it finishes."""
    def done(entry: dict[str, Any]) -> None:
        append_result(job.folder, entry)
        if on_record is not None:
            on_record(entry)

    records = process(editor, job.todo, job.hashes, job.destination, replace=job.replace, batch_size=batch_size,
                      retries=retries, on_record=done)
    return finish(job, records)


def set_threads(threads: int | None) -> None:
    """CPU threads for torch's kernels in this process (None: torch's default)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def default_threads(workers: int = 1) -> int:
    """The CPU threads of each model copy by default: the cores this process may use, shared by `workers`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)
