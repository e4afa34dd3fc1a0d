"""Finding and loading models: devices, dtypes, folders, hub ids offline, pickle refusal, family detection."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch
from conftest import photo
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline
from safetensors.torch import save_file

from pixels import Editor
from pixels.adapters import SUPPORTED_PIPELINES
from pixels.errors import InputError, ModelNotFoundError, UnsafeCheckpointError
from pixels.loading import load_pipeline, resolve_device, resolve_dtype, single_file_class

CPU = dict(device=torch.device("cpu"), dtype=torch.float32)


def test_devices_and_dtypes():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(InputError, match="device: 'cuda' requested but this PyTorch build sees no CUDA"):
            resolve_device("cuda")
    with pytest.raises(InputError, match="device: unknown device 'tpu'; choose one of auto, cpu, cuda, mps"):
        resolve_device("tpu")
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert (resolve_dtype("fp16", cpu), resolve_dtype("bf16", cpu), resolve_dtype("fp32", cpu)) == (
        torch.float16, torch.bfloat16, torch.float32)
    with pytest.raises(InputError, match="dtype: unknown dtype 'int8'; choose one of auto, fp32, fp16, bf16"):
        resolve_dtype("int8", cpu)


@pytest.fixture(scope="module")
def sdxl_folders(tmp_path_factory, sdxl_pipe, refiner_pipe):
    root = tmp_path_factory.mktemp("sdxl_saved")
    sdxl_pipe.save_pretrained(root / "base", safe_serialization=True)
    refiner_pipe.save_pretrained(root / "refiner", safe_serialization=True)
    return root / "base", root / "refiner"


def test_folders_load_with_their_family(sd_folder, sdxl_folders):
    pipe = load_pipeline(str(sd_folder), **CPU)
    assert isinstance(pipe, StableDiffusionImg2ImgPipeline) and pipe.safety_checker is None
    base, refiner = (load_pipeline(str(f), **CPU) for f in sdxl_folders)
    assert isinstance(base, StableDiffusionXLImg2ImgPipeline) and isinstance(refiner, StableDiffusionXLImg2ImgPipeline)
    assert refiner.config.requires_aesthetics_score and not base.config.requires_aesthetics_score
    for folder, family in ((sd_folder, "sd"), (sdxl_folders[0], "sdxl"), (sdxl_folders[1], "sdxl")):
        editor = Editor.from_pretrained(str(folder), device="cpu")
        assert editor.adapter.family == family and editor.model_id == str(folder)
    refined = Editor.from_pretrained(str(sdxl_folders[1]), device="cpu").edit(photo(), num_inference_steps=2, seed=0)
    assert refined.metadata["refiner"] is True and refined.metadata["aesthetic_score"] == 6.0


def copy_with_index(src, dst, **changes):
    shutil.copytree(src, dst)
    index = json.loads((dst / "model_index.json").read_text())
    (dst / "model_index.json").write_text(json.dumps({**index, **changes}))
    return dst


@pytest.mark.parametrize("name", ["KandinskyV22Pipeline", "SomethingElse"])
def test_unsupported_family_lists_the_supported_ones(sd_folder, tmp_path, name):
    folder = copy_with_index(sd_folder, tmp_path / "other", _class_name=name)
    with pytest.raises(InputError, match=f"model family '{name}' is not supported") as error:
        load_pipeline(str(folder), **CPU)
    for supported in SUPPORTED_PIPELINES:
        assert supported in str(error.value)


def test_folder_without_or_with_broken_index(tmp_path):
    with pytest.raises(InputError, match="has no model_index.json"):
        load_pipeline(str(tmp_path), **CPU)
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read .*model_index.json"):
        load_pipeline(str(tmp_path), **CPU)


@pytest.mark.parametrize("model", ["./nope", "/nonexistent/model", "weights.safetensors", "~/missing.ckpt"])
def test_missing_paths(model):
    with pytest.raises(ModelNotFoundError, match="no such file or folder"):
        load_pipeline(model, **CPU)


def test_uncached_hub_id_offline_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError) as error:
        Editor.from_pretrained("someone/not-a-real-model-xyz", device="cpu", local_files_only=True)
    message = str(error.value)
    assert "'someone/not-a-real-model-xyz' is not available" in message
    assert "hf download someone/not-a-real-model-xyz" in message and "--model PATH" in message
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("model", ["", "   ", None, 3])
def test_invalid_model_argument(model):
    with pytest.raises(InputError, match="model: expected a hub id or a path"):
        load_pipeline(model, **CPU)


def test_pickle_files_are_refused_before_reading(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"this is not even a pickle")
    with pytest.raises(UnsafeCheckpointError, match="pickle.*--allow-unsafe-pickle"):
        load_pipeline(str(ckpt), **CPU)
    text = tmp_path / "model.txt"
    text.write_text("hello")
    with pytest.raises(InputError, match="neither a .safetensors checkpoint nor a diffusers folder"):
        load_pipeline(str(text), **CPU)


def test_folder_with_only_pickle_weights(sd_pipe, tmp_path):
    folder = tmp_path / "pickled"
    sd_pipe.save_pretrained(folder, safe_serialization=False)
    assert not list((folder / "unet").glob("*.safetensors"))  # (text encoders are always saved as safetensors)
    with pytest.raises(UnsafeCheckpointError, match="no .safetensors weights.*--allow-unsafe-pickle"):
        load_pipeline(str(folder), **CPU)
    pipe = load_pipeline(str(folder), allow_unsafe_pickle=True, **CPU)
    assert torch.equal(pipe.unet.conv_in.weight, sd_pipe.unet.conv_in.weight)


def test_single_file_detection_and_corrupt_files(tmp_path):
    sdxl, sd, bad = tmp_path / "xl.safetensors", tmp_path / "sd.safetensors", tmp_path / "bad.safetensors"
    save_file({"conditioner.embedders.1.model.x": torch.zeros(1)}, str(sdxl))
    save_file({"model.diffusion_model.x": torch.zeros(1)}, str(sd))
    assert single_file_class(sdxl) == "StableDiffusionXLImg2ImgPipeline"
    assert single_file_class(sd) == "StableDiffusionImg2ImgPipeline"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(InputError, match="is not a readable .safetensors file"):
        load_pipeline(str(bad), **CPU)
