"""The Ray engine: the rows left to do, on Ray Data. `map_batches` hands them to a worker class that loads the
model once per actor (`concurrency` actors, `num_gpus` each) and runs the local engine's `process` on each
batch, writing outputs into the shared output folder; the driver appends each record to results.jsonl as
batches come back. The files and the resume rules are the local engine's: a job can start on one machine
and be finished on a cluster, or the other way round.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .engine import Plan, finish, process
from .results import append_result


class RowWorker:
    """One Ray actor: the model, loaded once, and the manifest's rows, which it reads itself from the shared
    folder (so that its constructor arguments stay small). Each item names a row and brings its settings hash,
    computed once by the driver's plan."""

    def __init__(self, manifest: str, folder: str, defaults: dict[str, Any], load: dict[str, Any], retries: int
                 ) -> None:
        import os

        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        from ..editor import Editor
        from .manifest import load_rows

        self.rows = {row.number: row for row in load_rows(manifest, defaults)}
        self.folder, self.manifest_name, self.retries = Path(folder), Path(manifest).name, retries
        self.editor = Editor.from_pretrained(**load)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        rows = [self.rows[int(number)] for number in batch["row"]]
        hashes = {row.number: str(value) for row, value in zip(rows, batch["hash"])}
        records = process(self.editor, rows, hashes, self.folder, self.manifest_name, batch_size=len(rows),
                          retries=self.retries)
        return {"record": [json.dumps(entry) for entry in records]}


def run_ray(job: Plan, load: dict[str, Any], *, batch_size: int, workers: int, gpus_per_worker: float,
            retries: int, address: str | None = None, defaults: dict[str, Any] | None = None,
            on_edit: Callable[[], None] | None = None) -> dict[int, dict[str, Any]]:
    """Run the rows left to do on Ray: a local instance unless `address` names a cluster (or one is already
    initialised in this process). load: `Editor.from_pretrained` arguments for each worker."""
    import logging
    import os

    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    import ray

    for name in ("ray", "ray.data"):  # pixels reports progress and failures itself
        logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    if not job.todo:
        return job.records  # plan() wrote them
    dataset = ray.data.from_items([{"row": row.number, "hash": job.hashes[row.number]} for row in job.todo])
    results = dataset.map_batches(
        RowWorker, batch_size=batch_size, concurrency=workers, num_gpus=gpus_per_worker or None,
        fn_constructor_kwargs={"manifest": str(job.manifest), "folder": str(job.folder), "defaults": defaults or {},
                               "load": load, "retries": retries},
    )
    records = []
    for batch in results.iter_batches(batch_size=None):
        for text in batch["record"]:
            entry = json.loads(text)
            append_result(job.folder, entry)
            records.append(entry)
            if on_edit is not None:
                on_edit()
    return finish(job, records)
