"""load_app: the studio under load. Not a test: a measurement to run by hand.

Starts `python -m pixels.app` with the bundled demo model on a free loopback port, makes one edit
(the warm-up), then sends N concurrent edit requests (default 20) through `gradio_client` to the
app's "edit" endpoint, each with its own seed, and checks:

- all N complete, none lost and none duplicated (each answer carries its request's seed, and the
  results differ);
- every result keeps the pixels outside the map equal to the source, bit for bit;
- the queue drains in order: the model runs the requests in the order the server received them (each
  request is sent once the server has queued the one before it);
- one edit at a time: no two model jobs overlap in time;
- the server process's memory (RSS) after the run is within 1.2x of its RSS after the first edit.

Prints the time per edit, the queue wait and the memory, and writes them to
benchmarks/results/app_load.json.

    python benchmarks/load_app.py [--requests 20] [--steps 100] [--strength 0.2] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT = 1.2  # RSS after the run / RSS after the first edit


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def wait_until_up(url: str, server: subprocess.Popen, timeout: float) -> None:
    """Bounded: until the server answers HTTP (or exits, or the time is up)."""
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"the app exited with code {server.returncode} before it served")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.25)  # polling a server that is starting: there is no event to wait on
    raise SystemExit(f"the app did not answer at {url} within {timeout:.0f} s")


def check(answers: list, kept: np.ndarray, source_pixels: np.ndarray, requests: int, ratio: float
          ) -> tuple[dict[str, bool], list[str]]:
    """The checks of the docstring as booleans, and a line for each one that failed."""
    seeds = [info["seed"] for _, _, info, _ in answers]
    leaks, digests = [], set()
    for k, path, _, _ in answers:
        result = np.asarray(Image.open(path).convert("RGB"))
        if not np.array_equal(result[kept], source_pixels[kept]):
            leaks.append(k)
        digests.add(hashlib.sha256(result.tobytes()).hexdigest())
    orders = [info["order"] for _, _, info, _ in answers]
    spans = sorted((info["started"], info["finished"]) for _, _, info, _ in answers)
    checks = {
        "all_completed": len(answers) == requests, "seeds_match": seeds == list(range(requests)),
        "in_order": orders == sorted(orders) and len(set(orders)) == len(orders), "outside_map_bit_exact": not leaks,
        "no_duplicates": len(digests) == requests,
        "one_at_a_time": not any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)),
        "memory_within_limit": ratio <= MEMORY_LIMIT,
    }
    problems = [] if checks["seeds_match"] else [f"answers do not match their requests' seeds: {seeds}"]
    problems += [f"request {k}: pixels outside the map differ from the source" for k in leaks]
    if not checks["no_duplicates"]:
        problems.append(f"{requests - len(digests)} results are duplicates")
    if not checks["in_order"]:
        problems.append(f"the queue did not drain in order: model order {orders}")
    if not checks["one_at_a_time"]:
        problems.append("two edits ran at the same time")
    if not checks["memory_within_limit"]:
        problems.append(f"memory grew {ratio:.2f}x after the run (limit {MEMORY_LIMIT}x)")
    return checks, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20, help="concurrent edit requests (default 20)")
    parser.add_argument("--steps", type=int, default=100, help="schedule length (default 100, the demo's)")
    parser.add_argument("--strength", type=float, default=0.2, help="img2img strength (default 0.2: 20 steps run)")
    parser.add_argument("--timeout", type=float, default=1800, help="limit for the whole run, seconds")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "app_load.json"))
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    from pixels.app.server import free_port
    from pixels.demo import asset
    from pixels.inputs import maps

    work = Path(tempfile.mkdtemp(prefix="pixels-load-"))
    source = asset("rocket.png")
    source_path, map_path = work / "rocket.png", work / "map.png"
    source.save(source_path)
    strength = maps.feather(maps.ellipse(source.size, (150, 32), (30, 22)), 8)
    maps.to_image(strength).save(map_path)
    kept = np.asarray(Image.open(map_path)) == 0  # black in the 8-bit file: kept bit for bit
    source_pixels = np.asarray(source)

    port = free_port("127.0.0.1")
    url = f"http://127.0.0.1:{port}/"
    with open(work / "server.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "pixels.app", "--model", "demo", "--device", "cpu", "--port", str(port),
             "--queue-size", str(max(args.requests + 4, 32))],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
    deadline = time.monotonic() + args.timeout
    try:
        wait_until_up(url, server, 300)
        rss_start = rss_mib(server.pid)
        client = Client(url, verbose=False, download_files=str(work / "downloads"))
        files = (handle_file(str(source_path)), handle_file(str(map_path)))

        def settings(seed: int) -> str:
            return json.dumps({"steps": args.steps, "strength": args.strength, "seed": seed})

        # 1. The warm-up edit, and the memory after it
        started = time.monotonic()
        client.predict(*files, settings(1000), api_name="/edit")
        first_wall = time.monotonic() - started
        rss_first = rss_mib(server.pid)

        # 2. N requests at once: each sent when the server has queued the one before (so its order is known)
        from gradio_client.utils import Status

        jobs, sent = [], []
        for k in range(args.requests):
            sent.append(time.time())
            job = client.submit(*files, settings(k), api_name="/edit")
            jobs.append(job)
            while job.status().code not in (Status.IN_QUEUE, Status.PROCESSING, Status.PROGRESS, Status.FINISHED):
                if time.monotonic() > deadline:
                    raise SystemExit(f"request {k} was not queued in time")
                time.sleep(0.02)  # the client reports the queue position by polling; nothing to wait on
        answers = []
        for k, job in enumerate(jobs):
            path, info = job.result(timeout=max(1.0, deadline - time.monotonic()))
            answers.append((k, path, info, time.time()))
        rss_end = rss_mib(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    # 3. Checks
    ratio = rss_end / rss_first
    checks, problems = check(answers, kept, source_pixels, args.requests, ratio)

    # 4. Figures
    edit_s = [info["seconds"] for _, _, info, _ in answers]
    wait_s = [info["started"] - sent[k] for k, _, info, _ in answers]
    total_s = max(t for *_, t in answers) - sent[0]
    figures = {
        "requests": args.requests, "completed": len(answers), "steps": args.steps, "strength": args.strength,
        "steps_run": answers[0][2]["steps_run"], "size": answers[0][2]["size"],
        "first_edit_wall_s": round(first_wall, 3),
        "edit_s": {"mean": round(statistics.mean(edit_s), 3), "median": round(statistics.median(edit_s), 3),
                   "min": round(min(edit_s), 3), "max": round(max(edit_s), 3)},
        "queue_wait_s": {"mean": round(statistics.mean(wait_s), 3), "median": round(statistics.median(wait_s), 3),
                         "min": round(min(wait_s), 3), "max": round(max(wait_s), 3)},
        "total_s": round(total_s, 3), "throughput_edits_per_min": round(60 * len(answers) / total_s, 2),
        "rss_mib": {"at_start": round(rss_start, 1), "after_first_edit": round(rss_first, 1),
                    "after_run": round(rss_end, 1), "ratio": round(ratio, 3), "limit": MEMORY_LIMIT},
        "model_order": [info["order"] for _, _, info, _ in answers],
        "checks": checks,
        "problems": problems,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "loadavg": [round(v, 2) for v in os.getloadavg()]},
    }
    print(f"{len(answers)}/{args.requests} edits of {figures['size'][0]}x{figures['size'][1]},"
          f" {figures['steps_run']} steps each, in {total_s:.1f} s ({figures['throughput_edits_per_min']} per minute)")
    print(f"time per edit (model)  mean {figures['edit_s']['mean']:.2f} s, median {figures['edit_s']['median']:.2f},"
          f" min {figures['edit_s']['min']:.2f},"
          f" max {figures['edit_s']['max']:.2f}; first edit {first_wall:.2f} s wall")
    print(f"queue wait             mean {figures['queue_wait_s']['mean']:.2f} s,"
          f" max {figures['queue_wait_s']['max']:.2f} s")
    print(f"server RSS             {rss_start:.0f} MiB at start, {rss_first:.0f} after the first edit,"
          f" {rss_end:.0f} after the run ({ratio:.3f}x, limit {MEMORY_LIMIT}x)")
    print("checks                 " + ("all passed" if not problems else "; ".join(problems)))
    shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
