"""The memory check: an edit whose estimated peak exceeds the device's free memory is refused before any model
work, with the options that would fit; `Limits(check_memory=False)` (`--no-memory-check`) runs it anyway."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import photo
from conftest import run_cli as run

from pixels import Editor
from pixels.errors import ResourceError
from pixels.limits import Limits
from pixels.models import estimate
from pixels.models.estimate import GiB, check_memory, estimate_peak


def fake_adapter(vae_channels=(128, 256, 512, 512), tile=512, unet_channels=(32, 64), dtype=torch.float32):
    """What the estimate reads of a loaded model: an SD-like autoencoder (which dominates at large sizes)
    and a small denoiser."""
    autoencoder = SimpleNamespace(config={"block_out_channels": list(vae_channels)}, tile_sample_min_size=tile,
                                  use_tiling=False)
    denoiser = SimpleNamespace(config={"block_out_channels": list(unet_channels), "layers_per_block": 1})
    return SimpleNamespace(device=torch.device("cpu"), autoencoder=autoencoder, denoiser=denoiser,
                           vae_scale_factor=8, dtype=dtype)


def free_memory(monkeypatch, free):
    monkeypatch.setattr(estimate, "available_memory", lambda device: free)


def test_the_estimate_grows_with_the_frame_and_the_batch_and_follows_the_precision():
    adapter = fake_adapter()
    one = estimate_peak(adapter, (512, 512), 1, False)
    assert estimate_peak(adapter, (1024, 1024), 1, False) > one
    assert estimate_peak(adapter, (512, 512), 2, False) >= one
    half = fake_adapter(dtype=torch.float16)
    assert estimate_peak(half, (1024, 1024), 1, False) * 2 == estimate_peak(adapter, (1024, 1024), 1, False)
    assert estimate_peak(adapter, (4096, 4096), 1, True) < estimate_peak(adapter, (4096, 4096), 1, False)  # tiles


def test_an_edit_that_fits_or_a_device_that_cannot_tell_is_not_refused(monkeypatch):
    adapter = fake_adapter()
    need = estimate_peak(adapter, (1024, 1024), 2, False)
    free_memory(monkeypatch, need)
    check_memory(adapter, (1024, 1024), 2)
    free_memory(monkeypatch, None)
    check_memory(adapter, (1024, 1024), 2)


def test_a_refusal_lists_only_the_options_that_would_fit(monkeypatch):
    adapter = fake_adapter()
    frame, crop = (4096, 4096), (512, 512)
    need, tiled = estimate_peak(adapter, frame, 2, False), estimate_peak(adapter, frame, 2, True)
    cropped = estimate_peak(adapter, crop, 2, False)
    assert cropped < tiled < need
    free_memory(monkeypatch, tiled)  # tiling fits, and so does the crop
    with pytest.raises(ResourceError) as refused:
        check_memory(adapter, frame, 2, crop_frame=crop)
    message = str(refused.value)
    assert message.startswith(f"memory: this 4096x4096 edit needs about {need / GiB:.1f} GiB on cpu but"
                              f" {tiled / GiB:.1f} GiB is free; options that would fit: ")
    assert f"crop='auto' (about {cropped / GiB:.1f} GiB)" in message
    assert f"MemoryOptions(vae_tiling=True) (about {tiled / GiB:.1f} GiB)" in message
    assert "a source of at most" in message and message.endswith("(or Limits(check_memory=False) to try anyway)")
    free_memory(monkeypatch, cropped)  # only the crop (and a smaller source) fit now
    with pytest.raises(ResourceError) as refused:
        check_memory(adapter, frame, 2, crop_frame=crop)
    assert "crop='auto'" in str(refused.value) and "vae_tiling" not in str(refused.value)
    free_memory(monkeypatch, 1)  # nothing fits
    with pytest.raises(ResourceError, match="options that would fit: a smaller source "):
        check_memory(adapter, frame, 2, crop_frame=crop)


def test_an_edit_is_refused_before_any_model_call_unless_the_check_is_off(sd_pipe, monkeypatch):
    editor = Editor.from_pipe(sd_pipe)
    steps = []
    edit = dict(strength_map=np.ones((32, 32)), num_inference_steps=4, seed=0,
                on_step=lambda done, total: steps.append(done))
    free_memory(monkeypatch, 1)
    with pytest.raises(ResourceError, match="^memory: this 32x32 edit needs about"):
        editor.edit(photo(32, 32), **edit)
    assert steps == []
    editor.limits = Limits(max_pixels=editor.limits.max_pixels, check_memory=False)
    try:
        assert editor.edit(photo(32, 32), **edit).image.size == (32, 32) and steps
    finally:
        editor.limits = Limits(max_pixels=editor.limits.max_pixels)


def test_the_command_line_says_it_with_its_flags(sd_folder, tmp_path, capsys, monkeypatch):
    photo(32, 32).save(tmp_path / "photo.png")
    argv = ["edit", tmp_path / "photo.png", "--model", sd_folder, "--steps", 2, "-o", tmp_path / "out.png"]
    free_memory(monkeypatch, 1)
    code, _, err = run(argv, capsys)
    assert code == 2 and "memory: this 32x32 edit needs about" in err and "--no-memory-check to try anyway" in err
    assert "check_memory" not in err and not (tmp_path / "out.png").exists()
    code, _, err = run([*argv, "--no-memory-check"], capsys)
    assert code == 0 and (tmp_path / "out.png").exists(), err
