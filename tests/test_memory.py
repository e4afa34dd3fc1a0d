"""Memory options: passed through to diffusers/PyTorch, same pictures, clear errors where they cannot apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import box_map, build_sd, photo

from pixels import Editor, InputError
from pixels.cli import main
from pixels.models.memory import MemoryOptions

FAST = dict(num_inference_steps=4, guidance_scale=4.0, seed=3)


def test_memory_options_keep_the_picture(tmp_path):
    source, m = photo(32, 32, seed=1), box_map()
    plain = Editor.from_pipe(build_sd(tmp_path / "a")).edit(source, strength_map=m, **FAST)
    options = MemoryOptions(attention_slicing=True, vae_tiling=True, vae_slicing=True, channels_last=True)
    pipe = build_sd(tmp_path / "b")
    editor = Editor.from_pipe(pipe, memory=options)
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    assert editor.adapter.denoiser.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    lean = editor.edit(source, strength_map=m, **FAST)
    diff = np.abs(np.asarray(plain.image).astype(int) - np.asarray(lean.image).astype(int))
    assert diff.max() <= 1


def test_compile_is_opt_in_and_compiles_the_denoiser(tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    Editor.from_pipe(build_sd(tmp_path / "c"))
    assert compiled == []
    Editor.from_pipe(build_sd(tmp_path / "d"), memory=MemoryOptions(compile=True))
    assert compiled == ["UNet2DConditionModel"]


def test_offload_needs_an_accelerator(tmp_path, sd_folder):
    with pytest.raises(InputError, match="cpu_offload: 'model' offload .* on the CPU"):
        MemoryOptions(cpu_offload="model").validate(torch.device("cpu"))
    with pytest.raises(InputError, match="cpu_offload: unknown value"):
        MemoryOptions(cpu_offload="disk").validate(torch.device("cuda"))
    photo(32, 32).save(tmp_path / "src.png")
    code = main(["edit", str(tmp_path / "src.png"), "--model", str(sd_folder), "--device", "cpu",
                 "--cpu-offload", "model", "-o", str(tmp_path / "out.png"), "-q"])
    assert code == 2 and not (tmp_path / "out.png").exists()


def test_cli_memory_flags_run(tmp_path, sd_folder):
    photo(32, 32).save(tmp_path / "src.png")
    out = tmp_path / "out.png"
    code = main(["edit", str(tmp_path / "src.png"), "--model", str(sd_folder), "--steps", "3", "--attention-slicing",
                 "--vae-tiling", "--vae-slicing", "--channels-last", "-o", str(out), "-q"])
    assert code == 0 and out.exists()
