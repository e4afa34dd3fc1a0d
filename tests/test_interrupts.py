"""Interrupting `pixels edit` and `pixels edit --spec` at several points: Ctrl-C (SIGINT) and SIGTERM leave no
file behind and exit 130 / 143 with one line; after SIGKILL, which no program can catch, the next run
cleans up what the killed one left (rolling back a half-done commit) and succeeds."""

from __future__ import annotations

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

# Runs the command line with a pause at one point, announced by a marker file, for the test to signal.
RUNNER = r"""
import os, sys, time
from pathlib import Path

point, marker = sys.argv[1], Path(os.environ["PIXELS_TEST_MARKER"])

def pause():
    marker.write_text(point)
    time.sleep(120)

def after_first(owner, name):
    original, calls = getattr(owner, name), []
    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            pause()
        return result
    setattr(owner, name, wrapped)

def before_first(owner, name):
    original, calls = getattr(owner, name), []
    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            pause()
        return original(*args, **kwargs)
    setattr(owner, name, wrapped)

import pixels.adapters.base, pixels.editor, pixels.session, pixels.outputs.transaction
if point == "loading":
    original = pixels.editor.Editor.from_pretrained.__func__
    def loading(cls, *args, **kwargs):
        pause()
        return original(cls, *args, **kwargs)
    pixels.editor.Editor.from_pretrained = classmethod(loading)
elif point == "denoising":
    before_first(pixels.adapters.base.Adapter, "predict")
elif point == "staged":
    after_first(pixels.session.EditSession, "_write")
elif point == "committing":
    after_first(pixels.outputs.transaction, "_move_in")
elif point == "between-edits":
    after_first(pixels.session.EditSession, "apply")
from pixels.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def job(tmp_path, sd_folder):
    photo(40, 30, seed=1).save(tmp_path / "source.png")
    Image.fromarray((box_map(40, 30, box=(4, 4, 20, 20)) * 255).astype(np.uint8)).save(tmp_path / "where.png")
    (tmp_path / "edits.yaml").write_text("source: source.png\nedits:\n  - {map: where.png, steps: 4, seed: 1}\n"
                                         "  - {map: where.png, steps: 4, seed: 2, mode: blend}\n")
    (tmp_path / "runner.py").write_text(RUNNER)
    outputs = [tmp_path / "out" / "result.png", tmp_path / "out" / "sheet.png", tmp_path / "out" / "session"]
    (tmp_path / "out").mkdir()
    common = ["--model", str(sd_folder), "-o", str(outputs[0]), "--contact-sheet", str(outputs[1]),
              "--save-session", str(outputs[2])]
    commands = {
        "edit": ["edit", str(tmp_path / "source.png"), "--map", str(tmp_path / "where.png"), "--steps", "4",
                 "--seed", "3", *common],
        "spec": ["edit", "--spec", str(tmp_path / "edits.yaml"), *common],
    }
    return tmp_path, outputs, commands


def interrupt(tmp_path: Path, point: str, argv: list[str], signum: int) -> subprocess.CompletedProcess:
    marker = tmp_path / "paused"
    marker.unlink(missing_ok=True)
    env = {**os.environ, "PIXELS_TEST_MARKER": str(marker), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, str(tmp_path / "runner.py"), point, *argv], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the command never reached the pause"
        time.sleep(0.05)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


CASES = [  # (command, point, signal, rerun): every SIGKILL is followed by a rerun, which must clean up and succeed
    ("edit", "loading", signal.SIGINT, False), ("edit", "denoising", signal.SIGINT, False),
    ("edit", "staged", signal.SIGINT, False), ("edit", "committing", signal.SIGINT, True),
    ("edit", "denoising", signal.SIGTERM, False), ("spec", "between-edits", signal.SIGINT, False),
    ("edit", "staged", signal.SIGKILL, True), ("edit", "committing", signal.SIGKILL, True),
    ("spec", "between-edits", signal.SIGKILL, True), ("spec", "committing", signal.SIGKILL, True),
]


@pytest.mark.parametrize("command, point, signum, rerun", CASES, ids=[f"{c}-{p}-{s.name}" for c, p, s, _ in CASES])
def test_interrupted_commands_leave_nothing_and_a_rerun_works(job, command, point, signum, rerun):
    tmp_path, outputs, commands = job
    argv = commands[command]
    done = interrupt(tmp_path, point, argv, signum)
    out_folder = outputs[0].parent
    if signum == signal.SIGKILL:
        assert done.returncode == -signal.SIGKILL
        if point == "committing":  # the first output was moved in when the run was killed
            assert "result.png" in leftovers(out_folder)
        else:  # killed before any output was moved into place
            assert not any(os.path.lexists(p) for p in outputs), leftovers(out_folder)
        # what it left (temporaries, a journal) is cleaned up by the rerun itself, without help
    else:
        expected = {signal.SIGINT: (130, "pixels: interrupted;"), signal.SIGTERM: (143, "pixels: terminated;")}
        code, line = expected[signum]
        assert done.returncode == code, done.stderr
        assert done.stderr.strip().splitlines() == [done.stderr.strip()] and done.stderr.startswith(line)
        assert leftovers(out_folder) == [], "an interrupted run left files behind"
    if not rerun:
        return
    rerun = subprocess.run([sys.executable, "-m", "pixels", *argv, "-q"], capture_output=True, text=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert leftovers(out_folder) == ["result.png", "session", "sheet.png"]
