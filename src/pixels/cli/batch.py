"""`pixels batch`: the edits of a manifest with one model load, resumable, on this machine or on Ray."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError
from .common import EXIT_OK, EXIT_PARTIAL, Progress, add_model_flags, note, number
from .extensions import add_lora_flag, split_weight


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than `low`."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a number >= {low}, got {text!r}")
        return value

    return whole


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    batch = commands.add_parser(
        "batch", parents=[common],
        help="run the edits of a manifest (JSONL, CSV or YAML) into a folder, resumably, locally or on Ray",
        description="Each row of MANIFEST is an edit in the spec schema plus its source and output name; results"
                    " go to OUTDIR with results.jsonl (failed rows also in failures.jsonl). A rerun skips the rows"
                    " already done and redoes the rest. A batch replaces only files this job wrote; OUTDIR is"
                    " locked while it runs.",
        epilog="Exit codes: 0 every row done, 3 some rows failed (see failures.jsonl), 2 the manifest, a flag or"
               " the output folder is refused (nothing is written), 1 an internal error.",
    )
    batch.add_argument("manifest", metavar="MANIFEST", help="rows of edits: .jsonl, .csv, .yaml or .json")
    batch.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                       help="folder for the results (made if missing; its parent must exist)")
    add_model_flags(batch)
    batch.add_argument("--overwrite", action="store_true",
                       help="replace files in OUTDIR that this job did not write, and take over another job's"
                            " folder (default: refuse before any work)")
    batch.add_argument("--batch-size", type=_at_least(1), default=1, metavar="N",
                       help="rows denoised together, one model call per step for all (default 1)")
    batch.add_argument("--threads", type=_at_least(1), default=None, metavar="N",
                       help="CPU threads of each model copy (default: the cores here, shared by the workers);"
                            " the same count gives the same pixels on every engine")
    batch.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: this process (default); ray: Ray Data, a worker per model copy")
    batch.add_argument("--address", metavar="ADDR", help="with --engine ray: an existing cluster (default: local)")
    batch.add_argument("--workers", type=_at_least(1), default=1, metavar="N", help="with --engine ray: model copies")
    batch.add_argument("--gpus-per-worker", type=number, default=0.0, metavar="F",
                       help="with --engine ray: GPUs each worker reserves (default 0)")
    batch.add_argument("--retries", type=_at_least(0), default=1, metavar="N",
                       help="run a row that failed while running (not for bad input) again up to N times (default 1)")
    batch.add_argument("--log-every", type=number, default=30.0, metavar="SECONDS",
                       help="off a terminal, a progress line at most this often (default 30)")
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    add_lora_flag(batch)  # loaded into the model (local and on every Ray worker); in every row's settings hash
    batch.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..batch.results import FAILURES
    from ..batch.run import run_batch

    if args.engine == "local" and (args.address or args.workers != 1 or args.gpus_per_worker):
        raise InputError("--address, --workers and --gpus-per-worker are for --engine ray", param="--engine")
    if not args.log_every > 0:
        raise InputError(f"expected a number of seconds > 0, got {args.log_every:g}", param="--log-every")
    Progress(enabled=False)  # no loading bars: the batch reports its own progress
    report = Report(quiet=args.quiet, every=args.log_every)
    try:
        done = run_batch(args.manifest, args.output, args.model, engine=args.engine, device=args.device,
                         dtype=args.dtype, threads=args.threads, batch_size=args.batch_size, retries=args.retries,
                         overwrite=args.overwrite, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                         address=args.address, allow_unsafe_pickle=args.allow_unsafe_pickle,
                         local_files_only=True if args.offline else None, progress=report,
                         loras=[split_weight(text, "lora", scale=True) for text in args.loras])
    finally:
        report.close()
    failed, job = done.failed, done.job
    if not args.quiet:
        rate = f", {done.made / done.seconds:.3g} rows/s" if done.made and done.seconds > 0 else ""
        print(f"{len(done.records) - len(failed)} of {len(job.rows)} rows done in {args.output} ({done.made} now,"
              f" {job.already} already) in {done.seconds:.1f} s{rate}"
              + (f"; {len(failed)} failed (listed in {Path(args.output) / FAILURES}):" if failed else ""))
        for entry in failed[:20]:
            print(f"  row {entry['row']}: {entry['error']}")
        if len(failed) > 20:
            print(f"  ... and {len(failed) - 20} more in {FAILURES}")
    return EXIT_PARTIAL if failed else EXIT_OK


class Report:
    """A batch's progress on stderr (a `BatchProgress`): a bar on a terminal; elsewhere (nohup, CI, a cluster's
    log) a line at most every `every` seconds with rows done, failed, the rate and the time left. The rate and
    the time left count from when the model has loaded (on Ray, from the first row back: the workers load
    theirs meanwhile)."""

    def __init__(self, *, quiet: bool, every: float) -> None:
        self.quiet, self.every, self.tty = quiet, every, sys.stderr.isatty()
        self.total = self.done = self.failed = 0
        self.bar, self.on_first = None, False
        self.loading_since = self.began = self.last = time.perf_counter()
        self.counted_from = 0  # rows done before the rate's clock started

    def planned(self, job) -> None:
        self.total = len(job.todo)
        if self.quiet:
            return
        invalid = sum(1 for row in job.rows if row.error)
        note(f"{len(job.rows)} rows: {job.already} done already, {self.total} to do"
             + (f", {invalid} invalid (recorded as failed)" if invalid else ""))
        if job.orphans:
            shown = ", ".join(job.orphans[:5]) + (f" and {len(job.orphans) - 5} more" if len(job.orphans) > 5 else "")
            note(f"{len(job.orphans)} file(s) this job wrote earlier are no longer named by the manifest (kept):"
                 f" {shown}")

    def loading(self, what: str) -> None:
        self.loading_since = time.perf_counter()
        if not self.quiet:
            note(f"loading {what}...")

    def loaded(self, workers: bool) -> None:
        now = time.perf_counter()
        if not self.quiet and not workers:
            note(f"model loaded in {now - self.loading_since:.1f} s")
        self.on_first = workers
        self.began = self.last = now
        if self.tty and not self.quiet and self.total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, unit="row", desc="batch", file=sys.stderr)

    def __call__(self, entry: dict) -> None:
        self.done += 1
        self.failed += entry.get("status") != "ok"
        now = time.perf_counter()
        if self.on_first and self.done == 1:
            self.began = self.last = now  # the first row paid for the workers' model loads
            self.counted_from = 1
        if self.bar is not None:
            self.bar.update()
            if self.failed:
                self.bar.set_postfix(failed=self.failed)
        elif not self.quiet and not self.tty and (now - self.last >= self.every or self.done == self.total):
            self.last = now
            print(f"batch: {self.done}/{self.total} rows, {self.failed} failed{self._pace(now)}", file=sys.stderr,
                  flush=True)

    def _pace(self, now: float) -> str:
        counted = self.done - self.counted_from
        if counted <= 0 or now <= self.began or self.done == self.total:
            return ""
        rate = counted / (now - self.began)
        return f", {rate:.3g} rows/s, about {_duration((self.total - self.done) / rate)} left"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
