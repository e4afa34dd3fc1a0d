"""Run every benchmark on one set of components and print one summary table.

    python benchmarks/run_all.py --device cpu            # about 10 minutes on 2 CPU cores
    python benchmarks/run_all.py --device cuda --dtype fp16

Each benchmark's record goes to benchmarks/results/<name>.json (or next to --out), and the summary,
with the machine description, to benchmarks/results/summary.json (or --out).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import bench_crop
import bench_exemplars
import bench_overhead
import bench_skip
import harness

BENCHMARKS = {m.NAME: m for m in (bench_overhead, bench_exemplars, bench_skip, bench_crop)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.add_common_arguments(parser)
    for module in BENCHMARKS.values():
        module.add_arguments(parser)
    parser.add_argument("--only", nargs="+", choices=tuple(BENCHMARKS), default=list(BENCHMARKS),
                        help="run only these benchmarks (default: all)")
    return harness.finish_arguments(parser.parse_args())


def main() -> None:
    args = parse_args()
    summary_path: Path = args.out or harness.RESULTS / "summary.json"
    start = time.perf_counter()
    bench = harness.make_bench(args)
    records: dict[str, Any] = {}
    for name in args.only:
        records[name] = BENCHMARKS[name].run(bench)
        harness.report(bench, name, records[name], summary_path.parent / f"{name}.json")
    total = time.perf_counter() - start
    checks = [harness.Check(**{k: v for k, v in c.items() if k != "verdict"})
              for record in records.values() for c in record["checks"]]
    print(f"\n== summary ({args.model}, {'tiny' if args.tiny else 'full-size'}, {args.device}, {args.dtype},"
          f" {args.size} px, {args.steps} steps, {total:.0f} s in all, load average {harness.load_average()})")
    harness.print_checks(checks)
    harness.write_json(summary_path, {
        "machine": bench.machine, "settings": bench.settings(), "total_s": round(total, 1),
        "loadavg_at_end": harness.load_average(),
        "checks": [c.as_dict() for c in checks],
        "benchmarks": {name: record["settings"] for name, record in records.items()},
    })


if __name__ == "__main__":
    main()
