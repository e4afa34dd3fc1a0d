"""`pixels batch`: the edits of a manifest with one model load, resumable, on this machine or on Ray."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..errors import InputError
from .common import EXIT_FAILURE, EXIT_OK, Progress, note, number


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
                    " go to OUTDIR with results.jsonl. A rerun skips the rows already done and redoes the rest.",
        epilog="Exit codes: 0 every row done, 1 some rows failed (see results.jsonl), 2 the manifest or a flag is"
               " invalid.",
    )
    batch.add_argument("manifest", metavar="MANIFEST", help="rows of edits: .jsonl, .csv, .yaml or .json")
    batch.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                       help="folder for the results (made if missing; its parent must exist)")
    batch.add_argument("--model", required=True, metavar="ID|PATH",
                       help="short name (pixels models), hub id, local diffusers folder or .safetensors checkpoint")
    batch.add_argument("--batch-size", type=_at_least(1), default=1, metavar="N",
                       help="rows denoised together, one model call per step for all (default 1)")
    batch.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: this process (default); ray: Ray Data, a worker per model copy")
    batch.add_argument("--address", metavar="ADDR", help="with --engine ray: an existing cluster (default: local)")
    batch.add_argument("--workers", type=_at_least(1), default=1, metavar="N", help="with --engine ray: model copies")
    batch.add_argument("--gpus-per-worker", type=number, default=0.0, metavar="F",
                       help="with --engine ray: GPUs each worker reserves (default 0)")
    batch.add_argument("--retries", type=_at_least(0), default=1, metavar="N",
                       help="run a row that failed while running (not for bad input) again up to N times (default 1)")
    batch.add_argument("--device", default="auto", metavar="auto|cpu|cuda|mps", help="default auto")
    batch.add_argument("--dtype", default="auto", metavar="auto|fp32|fp16|bf16", help="default auto")
    batch.add_argument("--allow-unsafe-pickle", action="store_true", help="allow pickle weights (they can run code)")
    batch.add_argument("--offline", action="store_true", help="never contact the hub")
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    batch.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..batch.engine import plan, run_local
    from ..loading import resolve_device, resolve_dtype
    from .edit import recommended

    if args.engine == "local" and (args.address or args.workers != 1 or args.gpus_per_worker):
        raise InputError("--address, --workers and --gpus-per-worker are for --engine ray", param="--engine")
    device = resolve_device(args.device)
    resolve_dtype(args.dtype, device)
    defaults = recommended(args.model)
    job = plan(args.manifest, args.output, args.model, defaults)
    invalid = sum(1 for row in job.rows if row.error)
    if not args.quiet:
        note(f"{len(job.rows)} rows: {job.already} done already, {len(job.todo)} to do"
             + (f", {invalid} invalid (recorded as failed)" if invalid else ""))
    Progress(enabled=not args.quiet and sys.stderr.isatty())  # silences the loaders' bars off a terminal
    bar = _bar(len(job.todo), enabled=not args.quiet and sys.stderr.isatty())
    load = dict(model=args.model, device=str(device) if args.engine == "local" else args.device, dtype=args.dtype,
                allow_unsafe_pickle=args.allow_unsafe_pickle, local_files_only=True if args.offline else None)
    if not job.todo:
        records = job.records  # plan() wrote them
    elif args.engine == "local":
        from ..editor import Editor

        editor = Editor.from_pretrained(**load)
        records = run_local(job, editor, batch_size=args.batch_size, retries=args.retries, on_edit=bar.update)
    else:
        from ..batch.ray_engine import run_ray

        records = run_ray(job, load, batch_size=args.batch_size, workers=args.workers,
                          gpus_per_worker=args.gpus_per_worker, retries=args.retries, address=args.address,
                          defaults=defaults, on_edit=bar.update)
    bar.close()
    failed = sorted((entry for entry in records.values() if entry["status"] != "ok"), key=lambda e: e["row"])
    if not args.quiet:
        print(f"{len(records) - len(failed)} of {len(job.rows)} rows done in {args.output}"
              + (f"; {len(failed)} failed:" if failed else ""))
        for entry in failed[:20]:
            print(f"  row {entry['row']}: {entry['error']}")
        if len(failed) > 20:
            print(f"  ... and {len(failed) - 20} more in results.jsonl")
    return EXIT_FAILURE if failed else EXIT_OK


def _bar(total: int, enabled: bool):
    """Edits per second and the time left, on a terminal (a bar that draws nothing otherwise). Not common.Progress:
    that one counts one edit's denoising steps."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="edit", desc="batch", file=sys.stderr, disable=not enabled or not total)
