"""The Ray engine: the rows left to do, on Ray Data. `map_batches` hands them to a worker class that loads the
model once per actor (`concurrency` actors, `num_gpus` each) and runs the local engine's `process` on each
batch, writing outputs into the shared output folder; the driver appends each record to results.jsonl as
batches come back. The files and the resume rules are the local engine's: a job can start on one machine
and be finished on a cluster, or the other way round.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

from ..errors import PixelsError, first_line
from .engine import Destination, Plan, finish, process, set_threads
from .results import append_result


class RowWorker:
    """One Ray actor: the model, loaded once, and the manifest's rows, which it reads itself from the shared
    folder (so that its constructor arguments stay small). Each item names a row and brings its settings hash,
    computed once by the driver's plan, and whether its output may replace an existing file. Paths arrive
    absolute: a worker's working folder is not the driver's."""

    def __init__(self, manifest: str, destination: Destination, defaults: dict[str, Any], load: dict[str, Any],
                 retries: int, threads: int | None) -> None:
        import os

        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        set_threads(threads)  # the local engine's count: the same kernels, the same pixels
        from .engine import load_editor
        from .manifest import load_rows

        self.rows = {row.number: row for row in load_rows(manifest, defaults)}
        self.destination, self.retries = destination, retries
        self.editor = load_editor(load)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        rows = [self.rows[int(number)] for number in batch["row"]]
        hashes = {row.number: str(value) for row, value in zip(rows, batch["hash"])}
        replace = {row.output for row, allowed in zip(rows, batch["replace"]) if allowed}
        records = process(self.editor, rows, hashes, self.destination, replace=replace, batch_size=len(rows),
                          retries=self.retries)
        return {"record": [json.dumps(entry) for entry in records]}


def run_ray(job: Plan, load: dict[str, Any], *, batch_size: int, workers: int, gpus_per_worker: float,
            retries: int, address: str | None = None, defaults: dict[str, Any] | None = None,
            threads: int | None = None, on_record: Callable[[dict[str, Any]], None] | None = None
            ) -> dict[int, dict[str, Any]]:
    """Run the rows left to do on Ray: a local instance unless `address` names a cluster (or one is already
    initialised in this process; one started here is shut down at the end). load: `Editor.from_pretrained`
    arguments for each worker (and the LoRAs to load, `engine.load_editor`); threads: torch's CPU threads in each."""
    import logging
    import os

    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    import ray

    for name in ("ray", "ray.data"):  # pixels reports progress and failures itself
        logging.getLogger(name).setLevel(logging.ERROR)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 logging_level=logging.ERROR)
    try:
        return _run(ray, job, load, batch_size=batch_size, workers=workers, gpus_per_worker=gpus_per_worker,
                    retries=retries, defaults=defaults, threads=threads, on_record=on_record)
    finally:
        if started:
            ray.shutdown()


def _run(ray, job: Plan, load: dict[str, Any], *, batch_size: int, workers: int, gpus_per_worker: float,
         retries: int, defaults: dict[str, Any] | None, threads: int | None,
         on_record: Callable[[dict[str, Any]], None] | None) -> dict[int, dict[str, Any]]:
    ray.data.DataContext.get_current().enable_progress_bars = False
    if not job.todo:
        return job.records  # plan() wrote them
    dataset = ray.data.from_items([{"row": row.number, "hash": job.hashes[row.number],
                                    "replace": row.output in job.replace} for row in job.todo])
    with warnings.catch_warnings():  # Ray has no named parameter for max_restarts yet
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        results = dataset.map_batches(
            RowWorker, batch_size=batch_size, concurrency=workers, num_gpus=gpus_per_worker or None,
            fn_constructor_kwargs={"manifest": str(job.manifest), "destination": job.destination,
                                   "defaults": defaults or {}, "load": load, "retries": retries,
                                   "threads": threads},
            max_restarts=0,  # a worker that dies ends the run with its cause (a rerun resumes), never a restart loop
        )
    records = []
    try:
        for batch in results.iter_batches(batch_size=None):
            for text in batch["record"]:
                entry = json.loads(text)
                append_result(job.folder, entry)
                records.append(entry)
                if on_record is not None:
                    on_record(entry)
    except ray.exceptions.RayError as error:
        finish(job, records)  # what the workers did is kept; a rerun does the rest
        raise RayJobError(f"the Ray workers failed: {root_cause(error)}; {len(records)} row(s) were done and are"
                          " kept (a rerun resumes)") from None
    return finish(job, records)


class RayJobError(PixelsError):
    """The Ray job could not run (a worker died or could not load the model); what it finished is kept."""


def root_cause(error: BaseException) -> str:
    """The last `Type: message` line of a Ray error's nested traceback (what went wrong in the worker),
    without the tracebacks around it."""
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line for line in lines if not line.startswith(("File ", "^", "~", "Traceback", "(")) and ": " in line
              and line.split(":", 1)[0].replace(".", "").isidentifier()]
    return first_line(Exception(causes[-1] if causes else text), 300)
