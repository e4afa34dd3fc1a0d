"""`pixels batch`: manifests, results.jsonl, failure isolation, resume, crash safety, batched rows, Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import box_map, photo
from PIL import Image

from pixels import Editor
from pixels.batch import load_manifest
from pixels.batch.engine import identity, plan
from pixels.batch.job import LOCK, MARKER
from pixels.batch.manifest import row_hash
from pixels.batch.results import RESULTS
from pixels.cli import main
from pixels.errors import InputError
from pixels.outputs.writers import read_metadata

FAST = {"steps": 20, "strength": 0.3}  # the demo model: 6 denoising steps


def run(argv, capsys=None):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err if capsys is not None else ""
    return code, err


@pytest.fixture
def folder(tmp_path):
    """Photos, a map and an exemplar; rows are written by each test."""
    for k in range(4):
        photo(40, 32, seed=k).save(tmp_path / f"photo{k}.png")
    Image.fromarray((box_map(40, 32, box=(6, 6, 30, 26)) * 255).astype(np.uint8)).save(tmp_path / "where.png")
    Image.fromarray((box_map(40, 32, box=(6, 6, 30, 26), value=0.5) * 255).astype(np.uint8)).save(tmp_path / "gray.png")
    photo(24, 24, seed=9).save(tmp_path / "ex.png")
    return tmp_path


def rows_jsonl(folder: Path, rows: list[dict], name: str = "rows.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def good_rows(n: int = 4) -> list[dict]:
    return [{"source": f"photo{k}.png", "map": "where.png" if k % 2 else "gray.png", "seed": k, **FAST,
             **({"exemplars": [{"image": "ex.png", "map": "where.png"}]} if k == 1 else {})} for k in range(n)]


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / RESULTS).read_text().splitlines()]


def pixels_of(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# -- manifests ---------------------------------------------------------------------------------------------
def test_jsonl_csv_and_yaml_manifests_read_the_same(folder):
    rows = [{"source": "photo0.png", "map": "where.png", "seed": 1, "steps": 20, "output": "a.png",
             "exemplars": [{"image": "ex.png", "map": "gray.png", "box": [2, 2, 20, 20], "fit": "contain"}]},
            {"source": "photo1.png", "prompt": "", "strength": 0.5, "invert_map": True, "output": "b.webp"}]
    (folder / "rows.csv").write_text(
        "source,map,seed,steps,output,exemplar,exemplar_map,exemplar_box,exemplar_fit,prompt,strength,invert_map\n"
        "photo0.png,where.png,1,20,a.png,ex.png,gray.png,\"2,2,20,20\",contain,,,\n"
        "photo1.png,,,,b.webp,,,,,,0.5,true\n"
    )
    (folder / "rows.yaml").write_text("defaults: {steps: 20}\nrows:\n"
                                      "  - {source: photo0.png, map: where.png, seed: 1, output: a.png,\n"
                                      "     exemplars: [{image: ex.png, map: gray.png, box: [2, 2, 20, 20],"
                                      " fit: contain}]}\n"
                                      "  - {source: photo1.png, strength: 0.5, invert_map: true, output: b.webp,"
                                      " steps: 50}\n")
    parsed = {name: load_manifest(folder / name) for name in ("rows.csv", "rows.yaml")}
    parsed["rows.jsonl"] = load_manifest(rows_jsonl(folder, rows))
    reference = parsed["rows.jsonl"]
    for name, got in parsed.items():
        assert [r.output for r in got] == ["a.png", "b.webp"], name
        assert got[0].edit.exemplars == reference[0].edit.exemplars, name
        assert got[0].edit.settings == reference[0].edit.settings == {"seed": 1, "num_inference_steps": 20}, name
        assert got[1].edit.settings["strength"] == 0.5 and got[1].edit.settings["invert_map"] is True, name
        assert got[0].source == str(folder / "photo0.png"), name


@pytest.mark.parametrize("row, message", [
    ({"source": "photo0.png", "stength": 0.5}, "unknown key 'stength'"),
    ({"source": "photo0.png", "strength": 3}, "strength: must lie in (0, 1], got 3"),
    ({"source": "photo0.png", "steps": "many"}, "steps: expected integer, got 'many'"),
    ({"map": "where.png"}, "source: missing: every row names its source photo"),
    ({"source": "photo0.png", "output": "../escape.png"}, "output: expected a relative name inside the output"),
    ({"source": "photo0.png", "exemplars": [{"image": "ex.png", "box": [1, 2]}]}, "exemplars[0].box: expected"),
    ({"source": "photo0.png", "seed": -5}, "seed: expected an integer in [0, 2**64), got -5"),
    ({"source": "photo0.png", "control": {"kind": "canny"}, **FAST}, "control: this pixel model has no ControlNet"),
])
def test_a_bad_row_fails_alone_naming_its_key(folder, capsys, row, message):
    """Rows the schema refuses fail before the model is loaded; rows it takes (a control, here on a model
    without a ControlNet) fail when they run; either way the others go on."""
    manifest = rows_jsonl(folder, [*good_rows(2), row])
    code, err = run(["batch", manifest, "-o", folder / "out", "--model", "demo", "-q"], capsys)
    assert code == 3
    lines = results(folder / "out")
    assert [(r["row"], r["status"]) for r in lines] == [(1, "ok"), (2, "ok"), (3, "failed")]
    assert message in lines[2]["error"], lines[2]["error"]


@pytest.mark.parametrize("content, message", [
    ('{"source": "photo0.png"}\nnot json\n', "line 2: not JSON"),
    ('{"source": "photo0.png", "output": "x.png"}\n{"source": "photo1.png", "output": "x.png"}\n',
     "rows 1 and 2 both write 'x.png'"),
    ("", "lists no rows"),
])
def test_an_invalid_manifest_exits_2_and_writes_nothing(folder, capsys, content, message):
    (folder / "rows.jsonl").write_text(content)
    code, err = run(["batch", folder / "rows.jsonl", "-o", folder / "out", "--model", "demo"], capsys)
    assert code == 2 and message in err, err
    assert not (folder / "out").exists() or list((folder / "out").iterdir()) == []


def test_an_output_over_an_input_is_refused(folder, capsys):
    (folder / "out").mkdir()
    photo(40, 32).save(folder / "out" / "src.png")
    rows_jsonl(folder, [{"source": "out/src.png", "output": "src.png", **FAST}])
    code, err = run(["batch", folder / "rows.jsonl", "-o", folder / "out", "--model", "demo"], capsys)
    assert code == 2 and "would write its output over an input" in err
    # a control image is an input too
    photo(40, 32).save(folder / "out" / "edges.png")
    rows_jsonl(folder, [{"source": "photo0.png", "control": {"kind": "image", "image": "out/edges.png"},
                         "output": "edges.png", **FAST}])
    with pytest.raises(InputError, match="would write its output over an input"):
        plan(folder / "rows.jsonl", folder / "out", "demo")


def test_what_a_row_depends_on_is_in_its_hash(folder):
    """An exemplar's condition weight, and the contents of a control image, make a done row stale."""
    photo(40, 32, seed=5).save(folder / "edges.png")
    row = {"source": "photo0.png", "exemplars": [{"image": "ex.png", "map": "where.png"}],
           "control": {"kind": "image", "image": "edges.png"}}

    def hashed(row: dict) -> str:
        return row_hash(load_manifest(rows_jsonl(folder, [row]))[0], identity("demo"))

    before = hashed(row)
    assert hashed(row) == before
    assert hashed({**row, "exemplars": [{"image": "ex.png", "map": "where.png", "condition": 0.5}]}) != before
    assert hashed({**row, "control": {"kind": "image", "image": "edges.png", "scale": 0.5}}) != before
    photo(40, 32, seed=6).save(folder / "edges.png")
    assert hashed(row) != before


# -- running and resuming -------------------------------------------------------------------------------------
def test_a_batch_writes_every_row_with_its_record_and_isolates_failures(folder, capsys):
    rows = good_rows(3) + [{"source": "missing.png", **FAST}, {"source": "photo3.png", "map": "where.png", **FAST}]
    code = main([str(a) for a in ["batch", rows_jsonl(folder, rows), "-o", folder / "out", "--model", "demo"]])
    out = capsys.readouterr().out
    assert code == 3 and "4 of 5 rows done" in out and "row 4: source: no such file" in out
    lines = results(folder / "out")
    assert [r["row"] for r in lines] == [1, 2, 3, 4, 5]
    assert [r["status"] for r in lines] == ["ok", "ok", "ok", "failed", "ok"]
    assert "no such file" in lines[3]["error"]
    for line in lines:
        if line["status"] == "ok":
            metadata = read_metadata(folder / "out" / line["output"])
            assert metadata["batch"]["settings_hash"] == line["settings_hash"] and metadata["seed"] == line["seed"]
            assert isinstance(line["seconds"], float)
    # strength-0 pixels are the source's, bit for bit
    keep = box_map(40, 32, box=(6, 6, 30, 26)) == 0
    assert np.array_equal(pixels_of(folder / "out" / lines[4]["output"])[keep], pixels_of(folder / "photo3.png")[keep])
    # a row without a seed gets one derived from what it depends on: a rerun from scratch reproduces it
    assert run(["batch", rows_jsonl(folder, rows), "-o", folder / "again", "--model", "demo", "-q"])[0] == 3
    again = results(folder / "again")[4]
    assert again["seed"] == lines[4]["seed"] and again["output"] == lines[4]["output"]
    assert np.array_equal(pixels_of(folder / "again" / again["output"]), pixels_of(folder / "out" / lines[4]["output"]))


def test_a_rerun_skips_done_rows_and_redoes_what_changed(folder, capsys):
    manifest = rows_jsonl(folder, good_rows(4))
    out = folder / "out"
    assert run(["batch", manifest, "-o", out, "--model", "demo", "-q"], capsys)[0] == 0
    first = {r["row"]: r for r in results(out)}
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    code, err = run(["batch", manifest, "-o", out, "--model", "demo"], capsys)
    assert code == 0 and "4 done already, 0 to do" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == stamps  # nothing rewritten
    # change a row's setting, an input file, and delete a result: those three rows are made again
    rows = good_rows(4)
    rows[0]["strength"] = 0.4
    rows_jsonl(folder, rows)
    photo(40, 32, seed=77).save(folder / "photo2.png")
    (out / first[4]["output"]).unlink()
    code, err = run(["batch", manifest, "-o", out, "--model", "demo"], capsys)
    assert code == 0 and "1 done already, 3 to do" in err
    again = {r["row"]: r for r in results(out)}
    assert again[2] == first[2] and again[1]["settings_hash"] != first[1]["settings_hash"]
    assert again[3]["settings_hash"] != first[3]["settings_hash"] and len(results(out)) == 4


def test_a_torn_results_file_is_repaired(folder, capsys):
    manifest = rows_jsonl(folder, good_rows(2))
    out = folder / "out"
    assert run(["batch", manifest, "-o", out, "--model", "demo", "-q"], capsys)[0] == 0
    text = (out / RESULTS).read_text()
    (out / RESULTS).write_text(text.splitlines()[0] + "\n" + text.splitlines()[1][:20])  # a kill mid-line
    assert run(["batch", manifest, "-o", out, "--model", "demo", "-q"], capsys)[0] == 0
    assert [r["row"] for r in results(out)] == [1, 2] and all(r["status"] == "ok" for r in results(out))


def spy_batches(monkeypatch) -> list[tuple[int, int]]:
    """Each Editor.edit_batch call from now on, as (edits asked for, model calls made)."""
    seen = []
    real = Editor.edit_batch

    def edit_batch(self, requests, **kwargs):
        calls = []
        handle = self.adapter.denoiser.register_forward_hook(lambda module, args, out: calls.append(1))
        try:
            return real(self, requests, **kwargs)
        finally:
            handle.remove()
            seen.append((len(requests), len(calls)))

    monkeypatch.setattr(Editor, "edit_batch", edit_batch)
    return seen


def test_batched_rows_equal_rows_run_one_by_one(folder, sd_folder, capsys, monkeypatch):
    rows = [{"source": f"photo{k}.png", "map": "gray.png" if k % 2 else "where.png", "seed": k, "prompt": "a fox",
             "steps": 4, "strength": 0.75, **({"exemplars": [{"image": "ex.png", "map": "where.png"}]} if k else {})}
            for k in range(4)]
    manifest = rows_jsonl(folder, rows)
    batches = {}
    for size in (1, 4):
        batches[size] = spy_batches(monkeypatch)
        assert run(["batch", manifest, "-o", folder / f"out{size}", "--model", sd_folder, "--batch-size", size,
                    "-q"], capsys)[0] == 0
        monkeypatch.undo()
    # batched for real: the four rows in one call, one model call per step for all of them
    assert [asked for asked, _ in batches[1]] == [1, 1, 1, 1] and [asked for asked, _ in batches[4]] == [4]
    assert batches[4][0][1] == max(calls for _, calls in batches[1]) < sum(calls for _, calls in batches[1])
    for one, four in zip(results(folder / "out1"), results(folder / "out4")):
        assert one["settings_hash"] == four["settings_hash"] and one["seed"] == four["seed"]
        diff = np.abs(pixels_of(folder / "out1" / one["output"]).astype(int)
                      - pixels_of(folder / "out4" / four["output"]).astype(int))
        assert diff.max() <= 1


# -- crashes ---------------------------------------------------------------------------------------------------
def done_rows(out: Path) -> int:
    try:
        return len((out / RESULTS).read_text().splitlines())
    except OSError:
        return 0


def test_killed_at_chosen_moments_every_row_is_done_exactly_once(folder):
    """SIGKILL a batch at moments it marks itself (while loading: its lock file is there but no row is done;
    as a row's result line lands; as the next lands), rerun until it finishes: one result line per row, all
    done, no partial or temporary file, and the results those of an uninterrupted run."""
    rows = [{"source": f"photo{k % 4}.png", "map": "where.png", "seed": k, **FAST, "output": f"r{k}.png"}
            for k in range(8)]
    manifest = rows_jsonl(folder, rows)
    out = folder / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pixels", "batch", str(manifest), "-o", str(out), "--model", "demo",
               "--batch-size", "2", "-q"]

    def loading(before: int) -> bool:
        return (out / LOCK).exists() and done_rows(out) == before

    def one_more_row(before: int) -> bool:
        return done_rows(out) > before

    kills = []
    for moment in (loading, one_more_row, one_more_row, None):  # None: left to finish
        before = done_rows(out)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if moment is not None:
            deadline = time.monotonic() + 120
            while process.poll() is None and not moment(before) and time.monotonic() < deadline:
                time.sleep(0.005)
            assert process.poll() is None, f"the run ended before the {moment.__name__} kill"
            process.send_signal(signal.SIGKILL)
            kills.append(moment.__name__)
        code = process.wait(timeout=300)
    assert code == 0 and kills == ["loading", "one_more_row", "one_more_row"]
    lines = results(out)
    assert [r["row"] for r in lines] == list(range(1, 9)) and {r["status"] for r in lines} == {"ok"}
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([RESULTS, MARKER, LOCK] + [f"r{k}.png" for k in range(8)]), names  # no temporary files
    clean = folder / "clean"
    assert run(["batch", manifest, "-o", clean, "--model", "demo", "-q"])[0] == 0
    for k in range(8):
        assert np.array_equal(pixels_of(out / f"r{k}.png"), pixels_of(clean / f"r{k}.png"))


# -- Ray ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_the_ray_engine_writes_what_the_local_engine_writes(folder, local_ray, capsys):
    rows = good_rows(4) + [{"source": "missing.png", **FAST}]
    manifest = rows_jsonl(folder, rows)
    local, remote = folder / "local", folder / "ray"
    assert run(["batch", manifest, "-o", local, "--model", "demo", "--batch-size", 2, "-q"], capsys)[0] == 3
    assert run(["batch", manifest, "-o", remote, "--model", "demo", "--batch-size", 2, "--engine", "ray",
                "--workers", 1, "-q"], capsys)[0] == 3
    for a, b in zip(results(local), results(remote)):
        assert {k: a[k] for k in ("row", "status", "output", "seed", "settings_hash")} == \
               {k: b[k] for k in ("row", "status", "output", "seed", "settings_hash")}
        if a["status"] == "ok":
            assert np.array_equal(pixels_of(local / a["output"]), pixels_of(remote / b["output"]))
    # same files, same rules: a job started locally is finished on Ray
    (local / results(local)[0]["output"]).unlink()
    code, err = run(["batch", manifest, "-o", local, "--model", "demo", "--engine", "ray"], capsys)
    assert code == 3 and "3 done already, 2 to do" in err  # the failed row is tried again too
    assert np.array_equal(pixels_of(local / results(local)[0]["output"]),
                          pixels_of(remote / results(remote)[0]["output"]))
