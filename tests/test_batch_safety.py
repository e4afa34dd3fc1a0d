"""`pixels batch` as a hostile user meets it: files it did not write, two jobs in one folder, two runs at
once, paths written every which way, deep and long input, engines that must agree, and output that must
make sense off a terminal."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import photo
from test_batch import FAST, folder, good_rows, pixels_of, results, rows_jsonl, run  # noqa: F401 - fixture

from pixels.batch.engine import identity, plan
from pixels.batch.job import LOCK, MARKER, FolderLock
from pixels.batch.results import FAILURES, RESULTS
from pixels.errors import InputError
from pixels.files import TEMPORARY
from pixels.outputs.transaction import recover
from pixels.outputs.writers import read_metadata

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def cli(*argv, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`pixels ...` in a process of its own (its working folder, its stderr off a terminal)."""
    return subprocess.run([sys.executable, "-m", "pixels", *map(str, argv)], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def snapshot(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# -- what a batch may overwrite ------------------------------------------------------------------------------
def test_a_file_the_job_did_not_write_is_never_replaced_without_overwrite(folder, capsys):
    out = folder / "out"
    out.mkdir()
    photo(40, 32, seed=50).save(out / "photo1.png")  # the user's own file, where row 2's default output goes
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    manifest = rows_jsonl(folder, good_rows(3))
    code, err = run(["batch", manifest, "-o", out, "--model", "demo"], capsys)
    assert code == 2 and "1 output(s) exist that this job did not write: 'photo1.png' (row 2)" in err, err
    assert "--overwrite" in err and snapshot(out) == before  # refused before any work: nothing written
    # a result of another job copied in is not this job's either, even with the same settings
    other = folder / "other"
    assert run(["batch", rows_jsonl(folder, good_rows(3), "copy.jsonl"), "-o", other, "--model", "demo", "-q"])[0] == 0
    shutil.copy(other / "photo0.png", out / "photo0.png")
    code, err = run(["batch", manifest, "-o", out, "--model", "demo"], capsys)
    assert code == 2 and "2 output(s) exist" in err and "'photo0.png' (row 1)" in err
    # with --overwrite they are replaced, and only they: the rest of the folder is untouched
    code, err = run(["batch", manifest, "-o", out, "--model", "demo", "--overwrite", "-q"], capsys)
    assert code == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert read_metadata(out / "photo1.png")["batch"]["row"] == 2
    # a rerun finds them done: the job wrote them
    code, err = run(["batch", manifest, "-o", out, "--model", "demo"], capsys)
    assert code == 0 and "3 done already, 0 to do" in err


def test_two_jobs_in_one_folder_are_refused_and_the_first_survives(folder, capsys):
    shoes = rows_jsonl(folder, good_rows(2), "shoes.jsonl")
    bags = rows_jsonl(folder, [{**row, "seed": 10 + k} for k, row in enumerate(good_rows(3))], "bags.jsonl")
    out = folder / "out"
    assert run(["batch", shoes, "-o", out, "--model", "demo", "-q"])[0] == 0
    before = snapshot(out)
    code, err = run(["batch", bags, "-o", out, "--model", "demo"], capsys)
    assert code == 2 and "holds the results of another job" in err and "shoes.jsonl" in err, err
    assert snapshot(out) == before  # every file of the first job byte for byte, its results.jsonl too
    # a results file that no job marker explains is refused as well (another tool's, an older run's)
    (out / MARKER).unlink()
    code, err = run(["batch", bags, "-o", out, "--model", "demo"], capsys)
    assert code == 2 and "no readable job marker" in err


def test_a_bad_map_and_names_like_pixels_own_files(folder, capsys):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows = [*good_rows(1), {"source": "photo1.png", "map": "broken.png", **FAST},
            {"source": "photo2.png", "output": ".pixels-tmp-0a0a0a-1-00000000-new-x.png", **FAST},
            {"source": "photo3.png", "output": "sub/.pixels-batch.png", **FAST}]
    code, err = run(["batch", rows_jsonl(folder, rows), "-o", folder / "out", "--model", "demo", "-q"], capsys)
    lines = results(folder / "out")
    assert code == 3 and [r["status"] for r in lines] == ["ok", "failed", "failed", "failed"]
    assert lines[1]["error"].startswith("map: "), lines[1]["error"]  # the manifest's key, not strength_map
    assert "names starting with '.pixels-' are pixels' own" in lines[2]["error"]
    assert "names starting with '.pixels-' are pixels' own" in lines[3]["error"]


# -- what makes a row done ------------------------------------------------------------------------------------
def test_how_a_path_is_written_does_not_matter(folder):
    """The same manifest named relatively, absolutely and through `..`, from other working folders: the
    second and third runs find everything done, with the seeds of the first."""
    (folder / "jobs").mkdir()
    (folder / "jobs" / "m.csv").write_text(
        "source,map,steps,strength\n../photo0.png,../where.png,20,0.3\n../photo1.png,../gray.png,20,0.3\n")
    first = cli("batch", "m.csv", "-o", "out", "--model", "demo", cwd=folder / "jobs")
    assert first.returncode == 0, first.stderr
    seeds = [r["seed"] for r in results(folder / "jobs" / "out")]
    again = cli("batch", folder / "jobs" / "m.csv", "-o", folder / "jobs" / "out", "--model", "demo", cwd=folder)
    assert again.returncode == 0 and "2 done already, 0 to do" in again.stderr, again.stderr
    (folder / "elsewhere").mkdir()
    third = cli("batch", "../jobs/m.csv", "-o", "../jobs/out", "--model", "demo", cwd=folder / "elsewhere")
    assert third.returncode == 0 and "2 done already, 0 to do" in third.stderr, third.stderr
    assert [r["seed"] for r in results(folder / "jobs" / "out")] == seeds
    # the same files under other names are the same row: the hash holds the contents, not the paths
    shutil.copytree(folder / "jobs", folder / "moved", ignore=shutil.ignore_patterns("out"))
    for name in ("photo0.png", "photo1.png", "where.png", "gray.png"):
        shutil.copy(folder / name, folder / "moved" / name)
    (folder / "moved" / "m.csv").write_text((folder / "jobs" / "m.csv").read_text().replace("../", ""))
    elsewhere = plan(folder / "moved" / "m.csv", folder / "moved" / "out", "demo")
    here = plan(folder / "jobs" / "m.csv", folder / "jobs" / "out", "demo")
    elsewhere.close(), here.close()
    assert elsewhere.hashes == here.hashes


def test_the_engine_is_part_of_what_makes_a_row_done(folder):
    from pixels.models.catalog import recommended

    manifest = rows_jsonl(folder, good_rows(2))
    out = folder / "out"
    assert run(["batch", manifest, "-o", out, "--model", "demo", "--threads", 1, "-q"])[0] == 0
    defaults = recommended("demo")  # what the command line fills in
    for engine, todo in [(identity("demo", "cpu", "fp32", 1), 0), (identity("demo", "cpu", "auto", 1), 0),
                         (identity("demo", "cpu", "bf16", 1), 2), (identity("demo", "cpu", "fp16", 1), 2),
                         (identity("demo", "cpu", "fp32", 2), 2), (identity("demo", "cuda", "fp32", 1), 2)]:
        with plan(manifest, out, "demo", defaults, engine=engine) as job:
            assert len(job.todo) == todo, engine
    # a local model is known by its resolved path, however it is written
    here = identity(str(folder), "cpu")["model"]
    assert here == identity(str(folder / ".." / folder.name), "cpu")["model"] == str(folder.resolve())


def test_inserting_a_row_renames_no_other_output(folder, capsys):
    rows = good_rows(3)
    manifest = rows_jsonl(folder, rows)
    out = folder / "out"
    assert run(["batch", manifest, "-o", out, "--model", "demo", "-q"])[0] == 0
    names = [r["output"] for r in results(out)]
    assert names == ["photo0.png", "photo1.png", "photo2.png"]
    new = {"source": "photo3.png", **FAST}
    rows_jsonl(folder, [new, rows[0], rows[1], {**rows[1], "seed": 40}, rows[2]])  # rows inserted before others
    code, err = run(["batch", manifest, "-o", out, "--model", "demo"], capsys)
    assert code == 0 and "3 done already, 2 to do" in err, err
    assert [r["output"] for r in results(out)] == ["photo3.png", "photo0.png", "photo1.png", "photo1-2.png",
                                                   "photo2.png"]
    # the job's outputs that no row names any more are kept, and said
    rows_jsonl(folder, [rows[0]])
    code, err = run(["batch", manifest, "-o", out, "--model", "demo"], capsys)
    assert code == 0 and "4 file(s) this job wrote earlier are no longer named by the manifest (kept)" in err
    assert (out / "photo2.png").exists()


# -- input: deep, long, many ----------------------------------------------------------------------------------
def test_deep_and_long_manifests_are_refused_naming_the_limit(folder, capsys):
    cases = {
        "deep.jsonl": ('{"source": "photo0.png"}\n' + "[" * 200_000 + "]" * 200_000 + "\n", "line 2: nested more"),
        "nested.jsonl": ('{"source": "photo0.png", "prompt": ' + "[" * 40 + "]" * 40 + "}\n", "line 1: nested more"),
        "long.csv": ("source,prompt\nphoto0.png," + "x" * 140_000 + "\n", "line 2: a cell is longer than 131,072 characters"),
        "list.yaml": ("[]\n", "lists no rows"),
    }
    for name, (text, message) in cases.items():
        (folder / name).write_text(text)
        code, err = run(["batch", folder / name, "-o", folder / f"out-{name}", "--model", "demo"], capsys)
        assert code == 2 and message in err, (name, err)
        assert not (folder / f"out-{name}").exists()


def test_a_plain_list_manifest_runs(folder, capsys):
    for name, text in [("rows.yaml", "- {source: photo0.png, steps: 20, strength: 0.3}\n"),
                       ("rows.json", json.dumps([{"source": "photo1.png", **FAST}]))]:
        (folder / name).write_text(text)
        code, err = run(["batch", folder / name, "-o", folder / f"out-{name}", "--model", "demo", "-q"], capsys)
        assert code == 0, err


def test_a_row_too_deep_or_too_crowded_fails_alone_before_the_model_loads(folder, capsys):
    rows = [*good_rows(1), {"source": "photo1.png", "output": "/".join(["d"] * 2000) + "/x.png", **FAST},
            {"source": "photo2.png", "exemplars": ["ex.png"] * 65, **FAST}]
    code, err = run(["batch", rows_jsonl(folder, rows), "-o", folder / "out", "--model", "demo", "-q"], capsys)
    lines = results(folder / "out")
    assert code == 3 and [r["status"] for r in lines] == ["ok", "failed", "failed"], err
    assert "output: " in lines[1]["error"] and "the limit is 1024 characters in 16 parts" in lines[1]["error"]
    assert "65 exemplars, more than the limit of 64" in lines[2]["error"]


def test_an_internal_error_is_not_a_failed_row(folder, capsys, monkeypatch):
    """Exit 1 means pixels broke; 3 means some rows failed and the rest are done."""
    from pixels.batch import engine

    monkeypatch.setattr(engine, "process", lambda *a, **k: 1 / 0)
    code, err = run(["batch", rows_jsonl(folder, good_rows(1)), "-o", folder / "out", "--model", "demo"], capsys)
    assert code == 1 and "internal error: ZeroDivisionError" in err


# -- two runs at once ------------------------------------------------------------------------------------------
def test_a_second_run_into_a_locked_folder_is_refused(folder, capsys):
    manifest = rows_jsonl(folder, good_rows(1))
    out = folder / "out"
    out.mkdir()
    with FolderLock(out):
        code, err = run(["batch", manifest, "-o", out, "--model", "demo"], capsys)
    assert code == 2 and "is in use by another pixels batch (pid" in err and "wait for it to finish" in err, err
    assert not (out / RESULTS).exists()
    assert run(["batch", manifest, "-o", out, "--model", "demo", "-q"])[0] == 0  # released: it runs


def test_a_run_killed_holding_the_lock_leaves_it_free(folder):
    manifest = rows_jsonl(folder, good_rows(4))
    out = folder / "out"
    process = subprocess.Popen([sys.executable, "-m", "pixels", "batch", str(manifest), "-o", str(out), "--model",
                                "demo", "-q"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:  # until it holds the lock
        if (out / LOCK).exists() and str(process.pid) in (out / LOCK).read_text():
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    again = cli("batch", manifest, "-o", out, "--model", "demo")
    assert again.returncode == 0, again.stderr
    assert [r["status"] for r in results(out)] == ["ok"] * 4


# -- temporary files after a restart -------------------------------------------------------------------------
def test_a_temporary_file_of_a_reused_pid_is_cleaned_up(tmp_path):
    """A container restarted with the same PIDs: a name with this very pid but another start time is a dead
    writer's; one with this process's own start time is a live writer's and stays."""
    from pixels.files import HOST_TAG, process_start

    pid, start = os.getpid(), process_start(os.getpid())
    if start is None:
        pytest.skip("no /proc here: process start times are unknown")
    dead = tmp_path / f".pixels-tmp-{HOST_TAG}-{pid}.{start + 1}-0123abcd-new-r.png"
    live = tmp_path / f".pixels-tmp-{HOST_TAG}-{pid}.{start}-0123abcd-new-s.png"
    for path in (dead, live):
        assert TEMPORARY.match(path.name)
        path.write_bytes(b"partial")
    recover(tmp_path)
    assert not dead.exists() and live.exists()


# -- engines that agree, files that repeat --------------------------------------------------------------------
def test_a_rerun_from_scratch_writes_the_same_bytes(folder):
    manifest = rows_jsonl(folder, good_rows(3))
    for name in ("a", "b"):
        assert run(["batch", manifest, "-o", folder / name, "--model", "demo", "-q"])[0] == 0
    first, second = snapshot(folder / "a"), snapshot(folder / "b")
    images = [name for name in first if name.endswith(".png")]
    assert len(images) == 3 and all(first[name] == second[name] for name in images)  # byte for byte
    metadata = read_metadata(folder / "a" / images[0])
    assert "seconds" not in metadata["batch"] and metadata["batch"]["job"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path):
    """A Ray head started with `ray start` on 127.0.0.1, as a cluster outside the driver would be."""
    ray = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    assert ray is not None, "the ray command comes with ray[data], a declared test dependency"
    port = free_port()
    temp = Path("/tmp") / f"pxray{port}"  # Ray's socket paths must stay short
    started = subprocess.run([ray, "start", "--head", "--port", str(port),
                              "--num-cpus", "2", "--include-dashboard", "false", "--temp-dir", str(temp),
                              "--disable-usage-stats"], env=ENV, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr[-2000:]
    assert "Local node IP: 127.0.0.1" in started.stdout + started.stderr, started.stdout[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=ENV, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_on_a_cluster_with_relative_paths_writes_the_local_engines_bytes(folder, ray_cluster):
    """The README's own command line (relative manifest and output) against a running cluster, whose workers
    work in folders of their own: every row done, and the files byte-identical to the local engine's."""
    rows = [*good_rows(3), {"source": "missing.png", **FAST}]
    rows_jsonl(folder, rows)
    local = cli("batch", "rows.jsonl", "-o", "local", "--model", "demo", "--batch-size", "2", cwd=folder)
    assert local.returncode == 3, local.stderr
    remote = cli("batch", "rows.jsonl", "-o", "ray", "--model", "demo", "--batch-size", "2", "--engine", "ray",
                 "--address", ray_cluster, cwd=folder, timeout=600)
    assert remote.returncode == 3, remote.stderr
    ray_lines = re.findall(r"^\[\d{4}-.*$", remote.stderr, re.M)  # Ray's own log lines: `[2026-12-02 16:48:40,369 E ...`
    assert "Traceback" not in remote.stderr and not ray_lines, remote.stderr
    a, b = results(folder / "local"), results(folder / "ray")
    assert [(r["status"], r["output"], r["seed"]) for r in a] == [(r["status"], r["output"], r["seed"]) for r in b]
    for line in a[:3]:
        assert (folder / "local" / line["output"]).read_bytes() == (folder / "ray" / line["output"]).read_bytes()
    assert json.loads((folder / "ray" / FAILURES).read_text().splitlines()[0])["row"] == 4


# -- what a batch says ----------------------------------------------------------------------------------------
def test_progress_off_a_terminal_and_the_summary(folder):
    rows = [*good_rows(3), {"source": "missing.png", **FAST}]
    manifest = rows_jsonl(folder, rows)
    done = cli("batch", manifest, "-o", folder / "out", "--model", "demo", "--log-every", "0.001", "--threads", "1")
    assert done.returncode == 3
    lines = [line for line in done.stderr.splitlines() if line.startswith("batch: ")]
    assert lines[-1] == "batch: 4/4 rows, 1 failed" and len(lines) == 4, done.stderr
    assert "left" in lines[1] and "rows/s" in lines[1]
    assert "loading demo on cpu (1 thread)" in done.stderr and "model loaded in" in done.stderr
    assert "3 of 4 rows done" in done.stdout and "rows/s" in done.stdout and FAILURES in done.stdout
    assert [json.loads(line)["row"] for line in (folder / "out" / FAILURES).read_text().splitlines()] == [4]
    # once nothing fails, failures.jsonl goes
    rows_jsonl(folder, rows[:3])
    assert cli("batch", manifest, "-o", folder / "out", "--model", "demo").returncode == 0
    assert not (folder / "out" / FAILURES).exists()


def test_the_python_api_runs_the_job_the_command_line_runs(folder):
    from pixels.batch import BatchProgress, run_batch

    class Seen(BatchProgress):
        def __init__(self) -> None:
            self.events = []

        def planned(self, job) -> None:
            self.events.append(("planned", len(job.todo)))

        def loaded(self, workers: bool) -> None:
            self.events.append(("loaded", workers))

        def __call__(self, record) -> None:
            self.events.append(("row", record["row"], record["status"]))

    manifest = rows_jsonl(folder, [*good_rows(2), {"source": "missing.png", **FAST}])
    seen = Seen()
    done = run_batch(manifest, folder / "api", "demo", threads=1, progress=seen)
    assert [r["status"] for r in done.failed] == ["failed"] and done.made == 2 and done.job.already == 0
    assert seen.events[:2] == [("planned", 3), ("loaded", False)]
    assert sorted(seen.events[2:]) == [("row", 1, "ok"), ("row", 2, "ok"), ("row", 3, "failed")]
    assert run(["batch", manifest, "-o", folder / "cli", "--model", "demo", "--threads", 1, "-q"])[0] == 3
    for line in results(folder / "api")[:2]:  # one manifest, one engine: the same bytes
        assert (folder / "api" / line["output"]).read_bytes() == (folder / "cli" / line["output"]).read_bytes()
    for bad, param in [({"batch_size": 0}, "batch_size"), ({"engine": "spark"}, "engine"),
                       ({"workers": 2}, "engine"), ({"threads": 0}, "threads"), ({"device": "tpu"}, "device")]:
        with pytest.raises(InputError) as error:
            run_batch(manifest, folder / "bad", "demo", **bad)
        assert error.value.param == param, bad
    assert not (folder / "bad").exists()
