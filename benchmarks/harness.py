"""Shared benchmark machinery: flags, setup, instrumentation, alternating timing, tables and JSON.

Every comparison runs its two sides in one process, alternating A, B, A, B, ... on the same
components, and reports each side's fastest run (or medians, --stat median) and ratios. A ratio
is always `subject / baseline`: below 1 means the subject is cheaper.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import json
import os
import platform
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import components
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MIB = 1024 * 1024
PROMPT = "a photo"  # the prompt of both sides of every comparison


# --- flags ----------------------------------------------------------------------------------------

def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every benchmark script and run_all.py."""
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run (default cpu)")
    parser.add_argument("--dtype", default="fp32", choices=tuple(DTYPES), help="model dtype (default fp32)")
    parser.add_argument("--model", default="sd15", choices=components.MODELS, help="architecture (default sd15)")
    parser.add_argument("--steps", type=int, default=4, help="num_inference_steps (default 4)")
    parser.add_argument("--strength", type=float, default=1.0, help="img2img strength (default 1.0)")
    parser.add_argument("--guidance", type=float, default=7.5, help="guidance_scale (default 7.5: CFG, batch 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (default 3)")
    parser.add_argument("--size", type=int, default=None,
                        help="square image size in px (default: 256 on cpu, 512 on cuda; sdxl: 512 / 1024)")
    parser.add_argument("--stat", default="min", choices=("min", "median"),
                        help="per side: the fastest run (min, default: least disturbed by other load) or medians")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: $OMP_NUM_THREADS, else the usable cores)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every edit (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="JSON result path (default benchmarks/results/)")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # smoke runs: test-suite sizes


def finish_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults that depend on the device, the model and --tiny; check the values."""
    if args.size is None:
        big = args.model == "sdxl"
        args.size = 64 if args.tiny else {("cpu", False): 256, ("cpu", True): 512,
                                          ("cuda", False): 512, ("cuda", True): 1024}[(args.device, big)]
    for name in ("steps", "repeats", "size"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name}: must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return args


# --- setup ----------------------------------------------------------------------------------------

def setup_torch(args: argparse.Namespace) -> int:
    """Seed everything and set the CPU thread count; returns the thread count used."""
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = False
    return threads


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine slows every side."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def machine_info(args: argparse.Namespace, threads: int) -> dict[str, Any]:
    """What the numbers were measured on."""
    import diffusers
    import transformers

    info = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
        "torch_threads": threads, "torch": torch.__version__, "diffusers": diffusers.__version__,
        "transformers": transformers.__version__, "python": platform.python_version(), "device": args.device,
        "loadavg_at_start": load_average(),
    }
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# --- instrumentation ------------------------------------------------------------------------------

class Probe:
    """Counts and times the model calls (UNet forward, VAE encode/decode, text encoders) of both sides.

    The wrappers are instance attributes on the shared modules, so the diffusers pipeline and the
    pixels editor are measured by the very same code. On CUDA each wrapped call synchronises.
    """

    PARTS = ("unet", "vae_encode", "vae_decode", "text")

    def __init__(self, comps: components.Components) -> None:
        self.sync = comps.device.type == "cuda"
        self.calls = dict.fromkeys(self.PARTS, 0)
        self.seconds = dict.fromkeys(self.PARTS, 0.0)
        pipe = comps.pipe
        self._wrap("unet", pipe.unet, "forward")
        self._wrap("vae_encode", pipe.vae, "encode")
        self._wrap("vae_decode", pipe.vae, "decode")
        for name in ("text_encoder", "text_encoder_2"):
            if getattr(pipe, name, None) is not None:
                self._wrap("text", getattr(pipe, name), "forward")

    def _wrap(self, part: str, module: torch.nn.Module, method: str) -> None:
        original = getattr(module, method)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self._synchronize()
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._synchronize()
                self.seconds[part] += time.perf_counter() - start
                self.calls[part] += 1

        setattr(module, method, wrapper)

    def _synchronize(self) -> None:
        if self.sync:
            torch.cuda.synchronize()

    def reset(self) -> None:
        for part in self.PARTS:
            self.calls[part], self.seconds[part] = 0, 0.0


def _statm_reader() -> Callable[[], int]:
    fd = os.open("/proc/self/statm", os.O_RDONLY)
    page = os.sysconf("SC_PAGE_SIZE")
    return lambda: int(os.pread(fd, 128, 0).split()[1]) * page


def release_memory(device: torch.device) -> None:
    """Free what can be freed so every run starts from the same baseline."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    try:  # give freed heap memory back to the OS so the RSS baseline is the live data only
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak working memory of one run above what was allocated just before it.

    CUDA: torch's allocator statistics. CPU: the process RSS (/proc/self/statm) sampled every
    `interval` seconds in a background thread, peak minus the RSS just before the run.
    """

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device, self.interval = device, interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rss = _statm_reader() if device.type == "cpu" else None
        self._base = 0
        self._peak = 0

    def __enter__(self) -> PeakMemory:
        if self._rss is None:
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        self._base = self._peak = self._rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._rss())
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        if self._rss is None:
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated() - self._base
            return
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._peak = max(self._peak, self._rss())
        self.peak_bytes = self._peak - self._base


def tensor_peak_mib(side: Side) -> float:
    """Peak of live tensor memory during one untimed run of `side`, from the PyTorch profiler's
    allocation records (each op's own allocations and frees, in start order). Unlike the RSS it does
    not see what the C allocator keeps after frees, so it compares the work of two sides exactly."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        side()
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    live = peak = 0
    for event in events:
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


# --- timing ---------------------------------------------------------------------------------------

@dataclass
class Run:
    """One timed run of one side."""

    wall_s: float
    peak_mib: float
    calls: dict[str, int]
    seconds: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)  # what the side reported (e.g. pixels' model_calls)

    @property
    def rest_s(self) -> float:
        """Wall time outside the VAE and the text encoders: the denoising loop and the glue around it."""
        return self.wall_s - self.seconds["vae_encode"] - self.seconds["vae_decode"] - self.seconds["text"]


Side = Callable[[], dict[str, Any] | None]


def measure(bench: Bench, side: Side) -> Run:
    """Time one call of `side`, with its peak memory and the probe's counts."""
    release_memory(bench.comps.device)
    bench.probe.reset()
    with PeakMemory(bench.comps.device) as memory:
        start = time.perf_counter()
        extra = side() or {}
        if bench.comps.device.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    probe = bench.probe
    return Run(wall, memory.peak_bytes / MIB, dict(probe.calls), dict(probe.seconds), extra)


def alternate(bench: Bench, sides: dict[str, Side], repeats: int) -> dict[str, list[Run]]:
    """Run the sides in turn, A, B, A, B, ..., `repeats` times each; on CUDA each side is warmed up first."""
    if bench.comps.device.type == "cuda":
        for side in sides.values():
            side()
    runs: dict[str, list[Run]] = {name: [] for name in sides}
    for k in range(repeats):
        for name, side in sides.items():
            run = measure(bench, side)
            runs[name].append(run)
            print(f"  [{k + 1}/{repeats}] {name:<22} {run.wall_s:8.2f} s  peak {run.peak_mib:8.1f} MiB"
                  f"  unet calls {run.calls['unet']}", flush=True)
    return runs


def _pick(runs: list[Run], stat: str, get: Callable[[Run], float]) -> float:
    """A figure of the fastest run (stat "min") or its median over the runs ("median")."""
    if stat == "min":
        return get(min(runs, key=lambda r: r.wall_s))
    return statistics.median(get(r) for r in runs)


def summarize(runs: list[Run], stat: str = "min") -> dict[str, Any]:
    """One side's figures: those of its fastest run (stat "min") or the medians of every field ("median").

    Peak memory is always the median over the runs.
    """
    pick = functools.partial(_pick, runs, stat)
    calls = runs[0].calls["unet"]
    summary: dict[str, Any] = {
        "runs": len(runs),
        "stat": stat,
        "wall_s": pick(lambda r: r.wall_s),
        "wall_s_each": [round(r.wall_s, 4) for r in runs],
        "peak_mib": statistics.median(r.peak_mib for r in runs),
        "peak_mib_each": [round(r.peak_mib, 1) for r in runs],
        "unet_calls": calls,
        "vae_encode_calls": runs[0].calls["vae_encode"],
        "text_calls": runs[0].calls["text"],
        "rest_s": pick(lambda r: r.rest_s),
    }
    for part in ("unet", "vae_encode", "vae_decode", "text"):
        summary[f"{part}_s"] = pick(lambda r, part=part: r.seconds[part])
    summary["unet_s_per_call"] = summary["unet_s"] / calls if calls else None
    summary["rest_s_per_call"] = summary["rest_s"] / calls if calls else None
    summary["glue_s"] = summary["rest_s"] - summary["unet_s"]  # masks, schedulers, image conversions
    if runs[0].extra:
        summary["reported"] = runs[0].extra
    return summary


def compare(bench: Bench, sides: dict[str, Side]) -> dict[str, dict[str, Any]]:
    """Alternate the sides `--repeats` times and summarise each (see `summarize`, `--stat`)."""
    runs = alternate(bench, sides, bench.args.repeats)
    return {name: summarize(r, bench.args.stat) for name, r in runs.items()}


def ratio(subject: float, baseline: float) -> float:
    return subject / baseline if baseline else float("nan")


# --- checks, tables, files ------------------------------------------------------------------------

@dataclass
class Check:
    """One measured figure against its target. kind: '<=' or '==' (pass/fail), or 'info'."""

    benchmark: str
    metric: str
    measured: float | None
    target: float | None
    kind: str = "<="
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return "n/a"
        if self.kind == "info" or self.target is None:
            return "info"
        ok = self.measured <= self.target + 1e-9 if self.kind == "<=" else abs(self.measured - self.target) < 1e-9
        return "PASS" if ok else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


SIDE_COLUMNS = ["side", "wall s", "s/step", "unet calls", "unet s/call", "vae enc n", "vae enc s",
                "vae dec s", "text s", "glue s", "peak MiB"]


def print_sides(sides: dict[str, dict[str, Any]]) -> None:
    """One row per side: its figures (see `summarize`) and the per-step times."""
    rows = []
    for name, s in sides.items():
        per_step = s["wall_s"] / s["unet_calls"] if s["unet_calls"] else None
        rows.append([name, s["wall_s"], per_step, s["unet_calls"], s["unet_s_per_call"], s["vae_encode_calls"],
                     s["vae_encode_s"], s["vae_decode_s"], s["text_s"], s["glue_s"], s["peak_mib"]])
    print_table(SIDE_COLUMNS, rows)


def print_checks(checks: list[Check]) -> None:
    print_table(["benchmark", "metric", "measured", "target", "result", "note"],
                [[c.benchmark, c.metric, c.measured, _target(c), c.verdict, c.note] for c in checks])


def _target(check: Check) -> str:
    if check.target is None:
        return "-"
    return f"{check.kind} {fmt(check.target)}" if check.kind != "info" else f"~{fmt(check.target)}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"wrote {path}")


# --- context and entry points ---------------------------------------------------------------------

@dataclass
class Bench:
    """Everything a benchmark needs: the flags, the built components and the probe on them."""

    args: argparse.Namespace
    comps: components.Components
    probe: Probe
    machine: dict[str, Any]

    def settings(self) -> dict[str, Any]:
        a = self.args
        return {"model": a.model, "tiny": a.tiny, "device": a.device, "dtype": a.dtype, "size": a.size,
                "steps": a.steps, "strength": a.strength, "guidance": a.guidance, "repeats": a.repeats,
                "stat": a.stat, "seed": a.seed, "build_s": round(self.comps.build_s, 2)}


def warm_up(comps: components.Components) -> None:
    """One small call of each side, so one-time initialisation is not timed (64 px, 1 step)."""
    image = components.photo("astronaut", 64)
    comps.pipe(prompt="a photo", image=image, strength=1.0, num_inference_steps=1, guidance_scale=7.5,
               generator=torch.Generator("cpu").manual_seed(0))
    comps.editor.edit(image, num_inference_steps=1, seed=0)


def make_bench(args: argparse.Namespace) -> Bench:
    """Set torch up, build the components once (printing how long that took) and warm them up."""
    threads = setup_torch(args)
    kind = "tiny" if args.tiny else "full-size"
    print(f"building {kind} {args.model} at random weights on {args.device} ({args.dtype}), {threads} threads ...",
          flush=True)
    comps = components.build(args.model, args.device, DTYPES[args.dtype], tiny=args.tiny)
    print(f"built in {comps.build_s:.1f} s", flush=True)
    warm_up(comps)
    load = load_average()
    if args.device == "cpu" and load and load[0] > threads:
        print(f"warning: load average {load[0]:.1f} is above the {threads} threads used: other work on this machine"
              " slows and disturbs the timings", flush=True)
    return Bench(args, comps, Probe(comps), machine_info(args, threads))


def report(bench: Bench, name: str, result: dict[str, Any], out: Path | None) -> None:
    """Print one benchmark's tables and write its JSON."""
    print()
    if result.get("sides"):
        print_sides(result["sides"])
        print()
    print_checks([Check(**{k: v for k, v in c.items() if k != "verdict"}) for c in result["checks"]])
    write_json(out or RESULTS / f"{name}.json", {"machine": bench.machine, **result})


def main_single(name: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[Bench], dict[str, Any]]) -> None:
    """Entry point of one benchmark script run on its own."""
    parser = argparse.ArgumentParser(description=description)
    add_common_arguments(parser)
    add_arguments(parser)
    args = finish_arguments(parser.parse_args())
    bench = make_bench(args)
    report(bench, name, run(bench), args.out)


def result(name: str, bench: Bench, sides: dict[str, dict[str, Any]] | None, checks: list[Check],
           **extra: Any) -> dict[str, Any]:
    """The JSON record of one benchmark."""
    return {"name": name, "settings": {**bench.settings(), **extra}, "sides": sides or {},
            "checks": [c.as_dict() for c in checks]}


def edit_side(bench: Bench, source: Any, **overrides: Any) -> Side:
    """A pixels edit of `source` with the common settings (`overrides` replace or add arguments).

    It reports pixels' own count of model calls and any crop or skip metadata the edit records.
    """
    a = bench.args
    kwargs = {"prompt": PROMPT, "num_inference_steps": a.steps, "strength": a.strength,
              "guidance_scale": a.guidance, "seed": a.seed, **overrides}

    def call() -> dict[str, Any]:
        out = bench.comps.editor.edit(source, **kwargs)
        meta = out.metadata
        return {"model_calls": meta["model_calls"], **{k: v for k, v in meta.items() if "crop" in k or "skip" in k}}

    return call


def supports(bench: Bench, parameter: str) -> bool:
    """Whether this pixels version's Editor.edit takes `parameter` (an argument, or a setting by name)."""
    import dataclasses
    import inspect

    try:
        from pixels import EditSettings
    except ImportError:  # versions before the settings were declared apart
        return parameter in inspect.signature(bench.comps.editor.edit).parameters
    names = {f.name for f in dataclasses.fields(EditSettings)}
    return parameter in names or parameter in inspect.signature(bench.comps.editor.edit).parameters


def unavailable(name: str, bench: Bench, parameter: str) -> dict[str, Any]:
    """The record of a benchmark whose API is not in this pixels version."""
    note = f"Editor.edit takes no {parameter!r} in this pixels version"
    print(f"{name}: skipped: {note}")
    return result(name, bench, None, [Check(name, f"{parameter} API", None, None, "info", note)])
