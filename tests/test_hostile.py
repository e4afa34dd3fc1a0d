"""Hostile and careless input to specs, sessions, maps and `pixels evaluate`: each refused with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import box_map, make_tokenizer, photo
from conftest import run_cli as run
from PIL import Image

from pixels import Editor, EditSession
from pixels.errors import InputError, UnsafeCheckpointError

BOMB = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
edits: [{prompt: *i}]
"""


@pytest.fixture
def folder(tmp_path):
    photo(40, 30, seed=1).save(tmp_path / "source.png")
    Image.fromarray((box_map(40, 30, box=(4, 4, 20, 20)) * 255).astype(np.uint8)).save(tmp_path / "where.png")
    (tmp_path / "edits.yaml").write_text("edits:\n  - map: where.png\n  - map: where.png\n    steps: 6\n")
    return tmp_path


def test_flags_fill_in_what_the_spec_leaves_to_the_defaults(sd_folder, folder, capsys):
    out = folder / "out.png"
    code, _, stderr = run(["edit", folder / "source.png", "--spec", folder / "edits.yaml", "--model", sd_folder,
                           "--steps", 8, "--seed", 3, "--strength", 0.4, "--save-session", folder / "s", "-o", out],
                          capsys)
    assert code == 0, stderr
    assert "edits[1] sets num_inference_steps itself" in stderr
    history = json.loads((folder / "s" / "manifest.json").read_text())["steps"]
    assert [(h["settings"]["num_inference_steps"], h["settings"]["seed"], h["settings"]["strength"])
            for h in history] == [(8, 3, 0.4), (6, 3, 0.4)]


def test_billion_laughs_spec_is_refused_quickly_with_a_short_message(sd_folder, folder, capsys):
    (folder / "bomb.yaml").write_text(BOMB)
    started = time.perf_counter()
    code, _, stderr = run(["edit", folder / "source.png", "--spec", folder / "bomb.yaml", "--model", sd_folder,
                           "-o", folder / "out.png"], capsys)
    assert code == 2 and "more than 100,000 values" in stderr and len(stderr) < 400, stderr
    assert time.perf_counter() - started < 10
    # values that are merely long are cut in messages, not repeated in full
    (folder / "long.yaml").write_text("edits:\n  - steps: '" + "x" * 1_000_000 + "'\n")
    code, _, stderr = run(["edit", folder / "source.png", "--spec", folder / "long.yaml", "--model", sd_folder,
                           "-o", folder / "out.png"], capsys)
    assert code == 2 and "edits[0].steps: expected integer" in stderr and len(stderr) < 400


def test_oversized_and_deeply_nested_specs(folder, capsys):
    (folder / "big.yaml").write_text("edits: []\n" + "#" * 2_000_000)
    code, _, stderr = run(["edit", "--spec", folder / "big.yaml", "--model", "demo", "-o", folder / "o.png"], capsys)
    assert code == 2 and "larger than 1,048,576 bytes" in stderr
    (folder / "deep.json").write_text("[" * 50_000 + "]" * 50_000)
    code, _, stderr = run(["edit", "--spec", folder / "deep.json", "--model", "demo", "-o", folder / "o.png"], capsys)
    assert code == 2 and ("cannot parse" in stderr or "nested more than" in stderr)


def test_json_spec_with_a_byte_order_mark(sd_folder, folder, capsys):
    spec = {"source": "source.png", "edits": [{"map": "where.png", "steps": 4, "seed": 1}]}
    (folder / "edits.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(spec).encode())
    code, _, stderr = run(["edit", "--spec", folder / "edits.json", "--model", sd_folder, "-o", folder / "o.png",
                           "-q"], capsys)
    assert code == 0, stderr


def test_spec_file_errors_name_their_edit(sd_folder, folder, capsys):
    (folder / "bad.yaml").write_text("edits:\n  - map: where.png\n  - map: missing.png\n")
    code, _, stderr = run(["edit", folder / "source.png", "--spec", folder / "bad.yaml", "--model", sd_folder,
                           "-o", folder / "o.png"], capsys)
    assert code == 2 and "bad.yaml: edits[1].map: no such file" in stderr, stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (["map", "box", "0,0,5,5", "--size", "100000x100000"], "--size: 100000x100000 is more than the limit"),
        (["map", "box", "0,0,inf,5", "--size", "10x10"], "box: expected finite numbers"),
        (["map", "radial", "5,5,1,nan", "--size", "10x10"], "radial: expected finite numbers"),
    ],
)
def test_map_sizes_are_bounded(tmp_path, capsys, argv, message):
    code, _, stderr = run([*argv, "-o", tmp_path / "m.png"], capsys)
    assert code == 2 and message in stderr, stderr
    assert not (tmp_path / "m.png").exists()


def test_maps_api_sizes_are_bounded():
    from pixels.inputs import maps

    for make in (lambda: maps.box((100000, 100000), (0, 0, 5, 5)), lambda: maps.radial((100000, 100000), (1, 1), 1, 2),
                 lambda: maps.linear((100000, 100000), (0, 0), (1, 1))):
        with pytest.raises(InputError, match="more than the limit"):
            make()


# -- sessions -------------------------------------------------------------------------------------------
@pytest.fixture
def saved(sd_pipe, tmp_path):
    session = EditSession(Editor.from_pipe(sd_pipe), photo(32, 32, seed=1))
    session.apply(strength_map=box_map(), num_inference_steps=2, seed=1)
    return session.save(tmp_path / "session")


def edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("path", ["../outside.png", "/etc/passwd", "step-01/../../outside.png"])
def test_session_manifest_may_not_point_outside_its_folder(sd_pipe, saved, path):
    photo(32, 32).save(saved.parent / "outside.png")
    edit_manifest(saved, lambda m: m["steps"][0].update(result=path))
    with pytest.raises(InputError, match="lies outside the session folder"):
        EditSession.load(saved, Editor.from_pipe(sd_pipe))
    edit_manifest(saved, lambda m: m.update(source="../outside.png"))
    with pytest.raises(InputError, match="source: '../outside.png' lies outside"):
        EditSession.load(saved, Editor.from_pipe(sd_pipe))


def test_session_symlink_out_of_the_folder_is_refused(sd_pipe, saved):
    photo(32, 32).save(saved.parent / "outside.png")
    (saved / "step-01" / "result.png").unlink()
    (saved / "step-01" / "result.png").symlink_to(saved.parent / "outside.png")
    with pytest.raises(InputError, match="lies outside the session folder"):
        EditSession.load(saved, Editor.from_pipe(sd_pipe))


def test_forged_array_shapes_are_refused_before_reading(sd_pipe, saved):
    path = saved / "step-01" / "strength.npy"
    header = {"descr": "<f8", "fortran_order": False, "shape": (100000, 100000)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)
    with pytest.raises(InputError, match=r"holds float64 \(100000, 100000\), expected a float map of shape \(32, 32\)"):
        EditSession.load(saved, Editor.from_pipe(sd_pipe))
    np.save(path, np.zeros((32, 32), dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="expected a float map"):
        EditSession.load(saved, Editor.from_pipe(sd_pipe))


# -- evaluate ----------------------------------------------------------------------------------------------
@pytest.fixture
def pickled_clip(tmp_path):
    """A tiny CLIP model whose weights are a pickle (pytorch_model.bin), with its processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(0)
    text = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=1000,
                bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32,
                  patch_size=8)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    folder = tmp_path / "clip"
    model.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=make_tokenizer(tmp_path / "tok"))
    processor.save_pretrained(folder)
    return folder


def test_evaluate_refuses_pickle_weights_unless_allowed(pickled_clip, tmp_path, capsys):
    from pixels.eval.model_metrics import clip_scores

    picture = photo(32, 32)
    with pytest.raises(UnsafeCheckpointError, match="only pickle files"):
        clip_scores(picture, picture, model=str(pickled_clip))
    assert set(clip_scores(picture, picture, "a fox", model=str(pickled_clip), allow_unsafe_pickle=True)) == {
        "clip_i", "clip_t"}
    picture.save(tmp_path / "r.png")
    Image.fromarray((box_map(32, 32) * 255).astype(np.uint8)).save(tmp_path / "m.png")
    argv = ["evaluate", tmp_path / "r.png", "--source", tmp_path / "r.png", "--map", tmp_path / "m.png",
            "--exemplar", tmp_path / "r.png", "--clip", pickled_clip, "--dino", "none", "--json"]
    code, _, stderr = run(argv, capsys)
    assert code == 2 and "only pickle files" in stderr and "--allow-unsafe-pickle" in stderr
    code, stdout, stderr = run([*argv, "--allow-unsafe-pickle"], capsys)
    assert code == 0 and "clip_i" in json.loads(stdout)["model_based"], stderr


def test_evaluate_flat_images_and_full_frame_edits(tmp_path, capsys):
    flat = Image.new("RGB", (24, 16), (90, 90, 90))
    flat.save(tmp_path / "flat.png")
    Image.new("RGB", (24, 16), (200, 30, 30)).save(tmp_path / "red.png")
    Image.fromarray((box_map(24, 16, box=(4, 4, 12, 12)) * 255).astype(np.uint8)).save(tmp_path / "part.png")
    Image.new("L", (24, 16), 255).save(tmp_path / "white.png")
    for result, exemplar, strength in (("flat", "flat", "part"), ("red", "red", "white"), ("flat", "red", "white")):
        code, stdout, stderr = run(["evaluate", tmp_path / f"{result}.png", "--source", tmp_path / "flat.png",
                                    "--map", tmp_path / f"{strength}.png", "--exemplar", tmp_path / f"{exemplar}.png",
                                    "--clip", "none", "--dino", "none", "--json"], capsys)
        assert code == 0, stderr
        report = json.loads(stdout)
        assert "exemplar" in report
        if strength == "part":
            assert report["seam_vs_paste"]["ratio"] is None  # a flat paste has no seam to compare with
        else:
            assert "seam_vs_paste" not in report  # a full-frame graft has no seam at all


# -- files and the command line --------------------------------------------------------------------------------
def test_permission_denied_is_not_called_corrupt(tmp_path, monkeypatch):
    from pixels.inputs.images import load_image

    photo(8, 8).save(tmp_path / "p.png")
    real_open = os.open

    def denied(path, flags, *args, **kwargs):
        if str(path).endswith("p.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(InputError, match="source: cannot read .*p.png': permission denied"):
        load_image(tmp_path / "p.png", name="source")


def test_demo_with_a_bad_value_leaves_no_folder(tmp_path, capsys):
    for argv in (["--strength", "1.5"], ["--steps", "0"], ["--steps", "100000"]):
        code, _, stderr = run(["demo", "-o", tmp_path / "demo", *argv], capsys)
        assert code == 2 and stderr.startswith(f"pixels: error: {argv[0]}:"), stderr
        assert not (tmp_path / "demo").exists()


CHATTY_HUB = """
import logging, sys, warnings
import huggingface_hub

def chatty_download(*args, **kwargs):  # what the hub client does on a flaky network, then gives up
    logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
    warnings.warn("a library's UserWarning", UserWarning)
    raise OSError("cannot reach the hub")

huggingface_hub.hf_hub_download = chatty_download
from pixels.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_library_chatter_does_not_reach_the_command_line(tmp_path):
    """Only pixels' own lines on stderr: no Python warnings, no hub retry logging, whatever the libraries do."""
    photo(40, 30).save(tmp_path / "s.png")
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-c", CHATTY_HUB, "edit", str(tmp_path / "s.png"), "--model",
                           "someone/not-cached-model", "-o", str(tmp_path / "p.png")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and "hf download someone/not-cached-model" in done.stderr, done.stderr
    assert all(line.startswith(("pixels: ", "  ")) for line in done.stderr.splitlines()), done.stderr


def test_a_whole_edit_prints_only_its_own_lines(sd_folder, tmp_path):
    photo(40, 30).save(tmp_path / "s.png")
    env = {**os.environ, "PYTHONWARNINGS": "default", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "pixels", "edit", str(tmp_path / "s.png"), "--model", str(sd_folder),
                           "--steps", "2", "--seed", "1", "-o", str(tmp_path / "o.png")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert all(line.startswith("pixels: ") for line in done.stderr.splitlines()), done.stderr
