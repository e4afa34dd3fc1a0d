"""A whole batch job in one call, as `pixels batch` runs it: the checks, the plan (under the folder's lock), the
model loaded once, the local or the Ray engine, the results file. `run_batch` is the Python form of the
command; `BatchProgress` is what it tells as it goes (the command line draws its bar or log lines from it)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..limits import LORA_SCALE
from ..models.extensions import check_scale
from .engine import Plan, default_threads, identity, load_editor, plan, run_local, set_threads

ENGINES = ("local", "ray")


class BatchProgress:
    """What a batch tells as it goes; every method does nothing here: override those you want."""

    def planned(self, job: Plan) -> None:
        """The job as found: `job.rows`, `job.already` done, `job.todo` to do, `job.orphans`."""

    def loading(self, what: str) -> None:
        """The model is being loaded (locally) or the workers are starting (Ray)."""

    def loaded(self, workers: bool) -> None:
        """The model is loaded (`workers`: on Ray, each worker loads its own as the first rows run)."""

    def __call__(self, record: dict[str, Any]) -> None:
        """A row finished: its results line."""


@dataclass
class BatchResult:
    job: Plan
    records: dict[int, dict[str, Any]]  # one results line per row
    seconds: float

    @property
    def failed(self) -> list[dict[str, Any]]:
        return sorted((r for r in self.records.values() if r["status"] != "ok"), key=lambda r: r["row"])

    @property
    def made(self) -> int:
        """Rows made by this run (not those found done)."""
        return len(self.records) - len(self.failed) - self.job.already


def run_batch(manifest: str | Path, folder: str | Path, model: str, *, engine: str = "local", device: str = "auto",
              dtype: str = "auto", threads: int | None = None, batch_size: int = 1, retries: int = 1,
              overwrite: bool = False, defaults: dict[str, Any] | None = None, workers: int = 1,
              gpus_per_worker: float = 0.0, address: str | None = None, allow_unsafe_pickle: bool = False,
              local_files_only: bool | None = None, progress: BatchProgress | None = None,
              loras: Sequence[tuple[str, str | None, float]] = ()) -> BatchResult:
    """Run every row of `manifest` into `folder` with `model`, resumably (docs/guides/batch.md).
    loras: (model, weight file name or None, scale) of each LoRA loaded into the model (`Editor.load_lora`), by
    name for the rows' regions;
    defaults: settings for what rows leave out (None: the model's recommended ones, as the command line);
    threads: torch's CPU threads for each model copy (None: this machine's cores shared by `workers`)."""
    import torch

    from ..models.catalog import recommended
    from ..models.loading import DEVICE, resolve_device, resolve_dtype

    progress = BatchProgress() if progress is None else progress
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}", param="engine")
    ray = engine == "ray"
    if not ray and (address or workers != 1 or gpus_per_worker):
        raise InputError("address, workers and gpus_per_worker are for the Ray engine", param="engine")
    for name, value, low in (("batch_size", batch_size, 1), ("retries", retries, 0), ("workers", workers, 1),
                             ("threads", 1 if threads is None else threads, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InputError(f"expected a whole number >= {low}, got {value!r}", param=name)
    if ray:  # the workers' device, which may be a GPU this machine lacks: its name is checked here, not its presence
        if DEVICE.match(str(device).strip().lower()) is None:
            resolve_device(device)  # the error naming the accepted devices
        device = device if device != "auto" else "cuda" if gpus_per_worker else "cpu"
    else:
        device = str(resolve_device(device))
    resolve_dtype(dtype, torch.device(device.split(":")[0]))  # the name
    threads = threads or default_threads(workers if ray else 1)
    loras = [(str(m), w, check_scale(s, f"loras[{k}].scale", *LORA_SCALE)) for k, (m, w, s) in enumerate(loras)]
    if defaults is None:
        defaults = recommended(model)
    began = time.perf_counter()
    with plan(manifest, folder, model, defaults, engine=identity(model, device, dtype, threads, loras),
              overwrite=overwrite) as job:
        progress.planned(job)
        load = dict(model=model, device=device, dtype=dtype, allow_unsafe_pickle=allow_unsafe_pickle,
                    local_files_only=local_files_only, loras=loras)
        if not job.todo:
            records = job.records  # plan() wrote them
        elif not ray:
            set_threads(threads)
            progress.loading(f"{model} on {device} ({threads} thread{'s' if threads > 1 else ''})")
            editor = load_editor(load)
            progress.loaded(workers=False)
            records = run_local(job, editor, batch_size=batch_size, retries=retries, on_record=progress)
        else:
            from .ray_engine import run_ray

            progress.loading(f"{model} on {workers} Ray worker(s), {device}")
            progress.loaded(workers=True)
            records = run_ray(job, load, batch_size=batch_size, workers=workers, gpus_per_worker=gpus_per_worker,
                              retries=retries, address=address, defaults=defaults, threads=threads,
                              on_record=progress)
    return BatchResult(job, records, time.perf_counter() - began)


__all__ = ["BatchProgress", "BatchResult", "run_batch"]
