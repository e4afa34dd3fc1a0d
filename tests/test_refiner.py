"""Base-to-refiner hand-off: two models, one release schedule."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import box_map, photo

from pixels import Editor, Exemplar, InputError
from pixels.cli import main

FAST = dict(num_inference_steps=10, guidance_scale=4.0, seed=2)


def hooked(denoiser, calls):
    return denoiser.register_forward_hook(lambda *args: calls.append(1))


@pytest.mark.parametrize("scheduler", ["ddim", "euler"])
@pytest.mark.parametrize("switch_at,strength,value", [(0.5, 1.0, 1.0), (0.8, 0.6, 0.7), (0.3, 1.0, 0.3)])
def test_handing_over_to_the_same_model_changes_nothing(sdxl_pipe, scheduler, switch_at, strength, value):
    """The thresholds continue across the switch: a hand-off to the very same model is the single run."""
    single = Editor.from_pipe(sdxl_pipe)
    handoff = Editor.from_pipe(sdxl_pipe, refiner=sdxl_pipe)
    m = box_map(value=value)
    exemplar = Exemplar(photo(32, 32, seed=6), box_map(box=(12, 12, 20, 20)))
    kwargs = dict(strength_map=m, exemplars=[exemplar], strength=strength, scheduler=scheduler, preserve="none",
                  **FAST)
    a = single.edit(photo(32, 32, seed=1), **kwargs)
    b = handoff.edit(photo(32, 32, seed=1), switch_at=switch_at, **kwargs)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert b.metadata["steps_run"] == a.metadata["steps_run"]
    assert 0 < b.metadata["switch_steps"] < b.metadata["steps_run"]


def test_skipped_steps_may_span_the_switch(sdxl_pipe):
    single = Editor.from_pipe(sdxl_pipe)
    handoff = Editor.from_pipe(sdxl_pipe, refiner=sdxl_pipe)
    kwargs = dict(strength_map=box_map(value=0.2), scheduler="ddim", preserve="none", **FAST)
    a = single.edit(photo(32, 32, seed=1), **kwargs)
    b = handoff.edit(photo(32, 32, seed=1), switch_at=0.5, **kwargs)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert b.metadata["model_calls"] == a.metadata["model_calls"] == 3  # all of them after the switch


def test_base_then_refiner_splits_the_calls(sdxl_pipe, refiner_pipe):
    editor = Editor.from_pipe(sdxl_pipe, refiner=refiner_pipe)
    base_calls, refiner_calls = [], []
    handles = [hooked(editor.adapter.denoiser, base_calls), hooked(editor.refiner.denoiser, refiner_calls)]
    try:
        source = photo(32, 32, seed=1)
        result = editor.edit(source, strength_map=box_map(), skip_steps="never", switch_at=0.7, **FAST)
    finally:
        for handle in handles:
            handle.remove()
    md = result.metadata
    assert md["switch_steps"] == len(base_calls) == 7 and len(refiner_calls) == 3
    assert md["model_calls"] == 10 and md["refiner_model"]
    out, src = np.asarray(result.image), np.asarray(source)
    assert np.array_equal(out[box_map() == 0], src[box_map() == 0])
    # an edit that starts after the switch runs on the refiner alone
    late = editor.edit(source, strength_map=box_map(), strength=0.2, switch_at=0.5, **FAST)
    assert late.metadata["switch_steps"] is None and late.metadata["steps_run"] == 2


def test_refiner_errors_are_named(sd_pipe, pixel_pipe, sdxl_pipe, tmp_path):
    from pixels.testing.tiny import build as build_flow

    with pytest.raises(InputError, match="refiner: a pixel model cannot continue a sd model"):
        Editor.from_pipe(sd_pipe, refiner=pixel_pipe)
    with pytest.raises(InputError, match="refiner: a sdxl model cannot continue a sd model's latents"):
        Editor.from_pipe(sd_pipe, refiner=sdxl_pipe)  # VAEs with different latent scales
    flux = build_flow("flux-schnell", tmp_path)
    with pytest.raises(InputError, match="refiner: flux models run the whole schedule alone"):
        Editor.from_pipe(flux, refiner=flux)
    with pytest.raises(InputError, match="switch_at: this editor has no refiner"):
        Editor.from_pipe(sd_pipe).edit(photo(), switch_at=0.5, **FAST)
    with pytest.raises(InputError, match="switch_at: must lie in"):
        Editor.from_pipe(sdxl_pipe, refiner=sdxl_pipe).edit(photo(), switch_at=1.5, **FAST)


def test_cli_refiner_hand_off(tmp_path, sdxl_pipe, refiner_pipe):
    base, refiner = tmp_path / "base", tmp_path / "refiner"
    sdxl_pipe.save_pretrained(base, safe_serialization=True)
    refiner_pipe.save_pretrained(refiner, safe_serialization=True)
    photo(32, 32, seed=1).save(tmp_path / "src.png")
    from PIL import Image

    Image.fromarray((box_map() * 255).astype(np.uint8)).save(tmp_path / "map.png")
    out = tmp_path / "out.png"
    args = ["edit", str(tmp_path / "src.png"), "--map", str(tmp_path / "map.png"), "--model", str(base),
            "--steps", "6", "--seed", "0", "-o", str(out), "-q"]
    assert main(args + ["--refiner", str(refiner), "--switch-at", "0.5"]) == 0
    assert out.exists()
    assert main(args + ["--switch-at", "0.5", "--overwrite"]) == 2  # no refiner to switch to


def test_from_pretrained_refiner_shares_the_base_vae(tmp_path, sdxl_pipe, refiner_pipe):
    base, refiner = tmp_path / "base", tmp_path / "refiner"
    sdxl_pipe.save_pretrained(base, safe_serialization=True)
    refiner_pipe.save_pretrained(refiner, safe_serialization=True)
    editor = Editor.from_pretrained(str(base), device="cpu", refiner=str(refiner))
    assert editor.refiner.pipe.vae is editor.adapter.pipe.vae
    assert editor.refiner.pipe.text_encoder_2 is editor.adapter.pipe.text_encoder_2
    assert editor.refiner.is_refiner and editor.refiner_id == str(refiner)
