"""pixels.models.loading: devices, dtypes, diffusers folders, offline hub ids, pickle refusal, single-file detection.

Every failure must be an `InputError` subclass (the CLI maps those to exit code 2) with a message that
names the argument and says what to do.
"""

from __future__ import annotations

import json
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline
from safetensors.torch import save_file

import pixels
from pixels import Editor
from pixels.adapters import SUPPORTED_PIPELINES, adapter_class
from pixels.cli import main
from pixels.errors import InputError, ModelNotFoundError, PixelsError, UnsafeCheckpointError
from pixels.models.loading import load_pipeline, resolve_device, resolve_dtype, single_file_class

CPU = dict(device=torch.device("cpu"), dtype=torch.float32)
FAKE_HUB_ID = "someone/not-a-real-model-xyz"


def raises_input_error(kind, match, call, *args, exact=False, **kwargs):
    """Run `call` expecting `kind` (always an InputError, so the CLI exits 2); return the message.

    With exact=True the error must be exactly `kind`, not a subclass (e.g. InputError, not ModelNotFoundError).
    """
    assert issubclass(kind, InputError)
    with pytest.raises(kind, match=match) as caught:
        call(*args, **kwargs)
    assert isinstance(caught.value, InputError) and isinstance(caught.value, PixelsError)
    if exact:
        assert type(caught.value) is kind, type(caught.value)
    return str(caught.value)


def test_error_hierarchy():
    for kind in (ModelNotFoundError, UnsafeCheckpointError):
        assert issubclass(kind, InputError) and issubclass(kind, PixelsError) and issubclass(kind, ValueError)


# --- devices and dtypes ------------------------------------------------------------------------------------


def test_resolve_device_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("'auto' only resolves to the CPU on a machine without an accelerator")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "gpu", "xla:0"])
def test_resolve_device_unknown_name(name):
    message = raises_input_error(InputError, "^device: unknown device", resolve_device, name)
    assert repr(name) in message and "choose one of auto, cpu, cuda, mps" in message


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_resolve_device_cuda_without_gpu(name):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    message = raises_input_error(InputError, "^device: ", resolve_device, name)
    assert repr(name) in message and "no CUDA GPU" in message and "device='cpu'" in message


def test_resolve_dtype():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) is torch.float32
    assert resolve_dtype("AUTO", cpu) is torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) is torch.float16  # no GPU needed: just a device value
    expected = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
                "fp32": torch.float32, "float32": torch.float32, "FP16": torch.float16}
    assert {name: resolve_dtype(name, cpu) for name in expected} == expected
    assert resolve_dtype(torch.bfloat16, cpu) is torch.bfloat16


@pytest.mark.parametrize("name", ["int8", "fp8", ""])
def test_resolve_dtype_unknown(name):
    message = raises_input_error(InputError, "^dtype: unknown dtype", resolve_dtype, name, torch.device("cpu"))
    assert repr(name) in message and "choose one of auto, fp32, fp16, bf16" in message


# --- diffusers folders ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdxl_folders(tmp_path_factory, sdxl_pipe, refiner_pipe):
    root = tmp_path_factory.mktemp("loading_sdxl")
    sdxl_pipe.save_pretrained(root / "base", safe_serialization=True)
    refiner_pipe.save_pretrained(root / "refiner", safe_serialization=True)
    return root / "base", root / "refiner"


def test_sd_folder_loads_as_img2img_without_safety_checker(sd_folder, sd_pipe):
    pipe = load_pipeline(str(sd_folder), **CPU)
    assert type(pipe) is StableDiffusionImg2ImgPipeline
    assert pipe.safety_checker is None and pipe.feature_extractor is None
    assert pipe.device == torch.device("cpu") and pipe.unet.dtype == torch.float32
    assert torch.equal(pipe.unet.conv_in.weight, sd_pipe.unet.conv_in.weight)  # the saved weights, not fresh ones


def test_sd_folder_loads_with_requested_dtype(sd_folder):
    pipe = load_pipeline(sd_folder, device=torch.device("cpu"), dtype=torch.bfloat16)  # a Path works too
    assert pipe.unet.dtype == torch.bfloat16 and pipe.vae.dtype == torch.bfloat16


def test_sdxl_folders_load_as_sdxl_img2img(sdxl_folders, sdxl_pipe, refiner_pipe):
    base, refiner = (load_pipeline(str(folder), **CPU) for folder in sdxl_folders)
    assert type(base) is StableDiffusionXLImg2ImgPipeline and type(refiner) is StableDiffusionXLImg2ImgPipeline
    assert refiner.config.requires_aesthetics_score is True
    assert base.config.requires_aesthetics_score is False
    assert refiner.text_encoder is None and base.text_encoder is not None
    assert torch.equal(base.unet.conv_in.weight, sdxl_pipe.unet.conv_in.weight)
    assert torch.equal(refiner.unet.conv_in.weight, refiner_pipe.unet.conv_in.weight)


def test_editor_from_pretrained_on_folders(sd_folder, sdxl_folders):
    for folder, family in ((sd_folder, "sd"), (sdxl_folders[0], "sdxl"), (sdxl_folders[1], "sdxl")):
        editor = pixels.Editor.from_pretrained(str(folder), device="cpu")
        assert editor.adapter.family == family
        assert editor.model_id == str(folder)
        assert editor.adapter.pipe.unet.dtype == torch.float32  # 'auto' dtype on the CPU
    assert pixels.Editor.from_pretrained(str(sdxl_folders[1]), device="cpu").adapter.is_refiner is True
    assert pixels.Editor.from_pretrained(str(sdxl_folders[0]), device="cpu").adapter.is_refiner is False


def copy_with_index(src: Path, dst: Path, index: str | bytes) -> Path:
    """Copy a diffusers folder, replacing its model_index.json."""
    shutil.copytree(src, dst)
    (dst / "model_index.json").write_bytes(index.encode() if isinstance(index, str) else index)
    return dst


@pytest.mark.parametrize("name", ["StableCascadeDecoderPipeline", "SomethingElse", "StableDiffusionUpscalePipeline"])
def test_unsupported_family_lists_supported_pipelines(sd_folder, tmp_path, name):
    index = json.loads((sd_folder / "model_index.json").read_text())
    folder = copy_with_index(sd_folder, tmp_path / "other", json.dumps({**index, "_class_name": name}))
    message = raises_input_error(InputError, f"model family '{name}' is not supported", load_pipeline,
                                 str(folder), exact=True, **CPU)
    assert message.startswith(str(folder))  # names the model
    listed = message.split("supported pipelines: ")[1].split(", ")
    assert listed == sorted(SUPPORTED_PIPELINES)
    assert {"StableDiffusionImg2ImgPipeline", "StableDiffusionXLImg2ImgPipeline",
            "StableDiffusionPipeline", "StableDiffusionXLPipeline"} <= set(listed)
    with pytest.raises(InputError) as direct:
        adapter_class(name, str(folder))
    assert str(direct.value) == message  # the loader reports exactly what adapter_class says


def test_index_without_class_name_is_unsupported(sd_folder, tmp_path):
    index = json.dumps({"unet": ["diffusers", "UNet2DConditionModel"]})
    folder = copy_with_index(sd_folder, tmp_path / "nameless", index)
    message = raises_input_error(InputError, "model family '\\?' is not supported", load_pipeline, str(folder), **CPU)
    assert "StableDiffusionImg2ImgPipeline" in message


def test_known_family_names_detect_family(sd_folder, tmp_path):
    # model_index.json written by a text-to-image pipeline still loads, as the img2img variant
    index = json.loads((sd_folder / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionPipeline"
    folder = copy_with_index(sd_folder, tmp_path / "t2i", json.dumps(index))
    assert type(load_pipeline(str(folder), **CPU)) is StableDiffusionImg2ImgPipeline
    assert adapter_class("StableDiffusionPipeline").family == "sd"
    assert adapter_class("StableDiffusionXLPipeline").family == "sdxl"


def test_folder_without_model_index(tmp_path):
    (tmp_path / "unet").mkdir()
    message = raises_input_error(InputError, "has no model_index.json", load_pipeline, str(tmp_path), exact=True,
                                 **CPU)
    assert repr(str(tmp_path)) in message and "save_pretrained" in message and ".safetensors" in message


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe{}", b"[1, 2, 3]", b'"a string"', b"null"])
def test_corrupt_model_index(sd_folder, tmp_path, content):
    folder = copy_with_index(sd_folder, tmp_path / "broken", content)
    index = folder / "model_index.json"
    message = raises_input_error(InputError, "^model: cannot read ", load_pipeline, str(folder), exact=True, **CPU)
    assert repr(str(index)) in message


def test_folder_with_index_but_missing_components(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    }))
    message = raises_input_error(InputError, "^model: cannot load ", load_pipeline, str(tmp_path), exact=True, **CPU)
    assert repr(str(tmp_path)) in message and "\n" not in message  # one line of diffusers' reason, no traceback


# --- missing models and the hub --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["./nope", "/nonexistent/model", "weights.safetensors", "~/missing-xyz.ckpt",
                                   "../up/there", "models/sd.bin", "C:\\models\\sd"])
def test_missing_paths(model):
    message = raises_input_error(ModelNotFoundError, "no such file or folder", load_pipeline, model, **CPU)
    assert repr(model) in message


@pytest.mark.parametrize("local_files_only", [None, True])
def test_uncached_hub_id_is_quick_and_actionable(local_files_only):
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_OFFLINE once, at import: conftest sets it before anything imports the hub.
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    start = time.monotonic()
    message = raises_input_error(ModelNotFoundError, "is not available", pixels.Editor.from_pretrained,
                                 FAKE_HUB_ID, device="cpu", local_files_only=local_files_only)
    assert time.monotonic() - start < 10
    assert f"model {FAKE_HUB_ID!r} is not available" in message
    assert f"hf download {FAKE_HUB_ID}" in message and "a local diffusers folder" in message
    assert "Traceback" not in message


def test_uncached_hub_id_through_load_pipeline():
    start = time.monotonic()
    message = raises_input_error(ModelNotFoundError, f"hf download {FAKE_HUB_ID}", load_pipeline, FAKE_HUB_ID, **CPU)
    assert "a local diffusers folder" in message and time.monotonic() - start < 10


@pytest.mark.parametrize("model", ["", "   ", None, 3, ["a/b"]])
def test_invalid_model_argument(model):
    message = raises_input_error(InputError, "^model: expected a hub id or a path", load_pipeline, model, **CPU)
    assert repr(model) in message


# --- pickle refusal ------------------------------------------------------------------------------------------------


class _Trap:
    """Unpickling this creates a marker file: proof that a pickle was (or was not) loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("suffix", [".ckpt", ".bin", ".pt", ".pth", ".pkl", ".CKPT"])
def test_pickle_checkpoint_is_refused_without_reading(tmp_path, suffix):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Trap(marker))
    pickle.loads(payload)  # the trap works ...
    assert marker.exists()
    marker.unlink()
    ckpt = tmp_path / f"model{suffix}"
    ckpt.write_bytes(payload)
    message = raises_input_error(UnsafeCheckpointError, "allow_unsafe_pickle=True", load_pipeline, str(ckpt), **CPU)
    assert not marker.exists()  # ... and was never sprung
    assert repr(str(ckpt)) in message and "pickle" in message and ".safetensors" in message


def test_pickle_refusal_comes_before_any_parsing(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"this is not even a pickle \x00\x01")
    raises_input_error(UnsafeCheckpointError, "pickle checkpoint.*allow_unsafe_pickle=True", load_pipeline, str(ckpt),
                       **CPU)
    message = raises_input_error(UnsafeCheckpointError, "allow_unsafe_pickle=True", pixels.Editor.from_pretrained,
                                 str(ckpt), device="cpu")
    assert "arbitrary code" in message


@pytest.mark.parametrize("name", ["model.txt", "model.onnx", "README"])
def test_other_files_are_rejected(tmp_path, name):
    path = tmp_path / name
    path.write_text("hello")
    message = raises_input_error(InputError, "neither a .safetensors checkpoint nor a diffusers folder",
                                 load_pipeline, str(path), exact=True, **CPU)
    assert repr(str(path)) in message
    # allowing pickles does not make other files loadable
    raises_input_error(InputError, "neither a .safetensors", load_pipeline, str(path), allow_unsafe_pickle=True, **CPU)


@pytest.fixture(scope="module")
def pickled_unet_folder(tmp_path_factory, sd_folder, sd_pipe):
    """The tiny SD folder, with the unet weights only as a pickle `.bin` file."""
    folder = tmp_path_factory.mktemp("loading_pickled") / "tiny-sd-pickled"
    shutil.copytree(sd_folder, folder)
    shutil.rmtree(folder / "unet")
    sd_pipe.unet.save_pretrained(folder / "unet", safe_serialization=False)
    assert (folder / "unet" / "diffusion_pytorch_model.bin").is_file()
    assert not list((folder / "unet").glob("*.safetensors"))
    assert list((folder / "vae").glob("*.safetensors"))
    return folder


def test_folder_with_pickled_unet_is_refused(pickled_unet_folder):
    message = raises_input_error(UnsafeCheckpointError, "no .safetensors weights", load_pipeline,
                                 str(pickled_unet_folder), **CPU)
    assert "allow_unsafe_pickle=True" in message and repr(str(pickled_unet_folder)) in message


def test_folder_with_pickled_unet_loads_when_allowed(pickled_unet_folder, sd_pipe):
    pipe = load_pipeline(str(pickled_unet_folder), allow_unsafe_pickle=True, **CPU)
    assert type(pipe) is StableDiffusionImg2ImgPipeline and pipe.safety_checker is None
    for name, weight in sd_pipe.unet.state_dict().items():
        assert torch.equal(pipe.unet.state_dict()[name], weight), name
    editor = pixels.Editor.from_pretrained(str(pickled_unet_folder), device="cpu", allow_unsafe_pickle=True)
    assert editor.adapter.family == "sd"


# --- single-file checkpoints ------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"\x00\x01garbage" * 10, b"", b"{}", b"\xff" * 8 + b"{}"])
def test_corrupt_safetensors_file(tmp_path, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    message = raises_input_error(InputError, "not a readable .safetensors file", load_pipeline, str(bad), exact=True,
                                 **CPU)
    assert repr(str(bad)) in message
    raises_input_error(InputError, "not a readable .safetensors file", single_file_class, bad)


@pytest.mark.parametrize(("keys", "expected"), [
    (["conditioner.embedders.1.model.x"], "StableDiffusionXLImg2ImgPipeline"),
    (["conditioner.embedders.0.model.x", "model.diffusion_model.y"], "StableDiffusionXLImg2ImgPipeline"),
    (["model.diffusion_model.x"], "StableDiffusionImg2ImgPipeline"),
    (["model.diffusion_model.x", "cond_stage_model.transformer.y"], "StableDiffusionImg2ImgPipeline"),
    # the SD 1.x text encoder also sits under conditioner.embedders.0 in some exports, but as .transformer
    (["conditioner.embedders.0.transformer.x"], "StableDiffusionImg2ImgPipeline"),
])
def test_single_file_class_from_tensor_names(tmp_path, keys, expected):
    path = tmp_path / "checkpoint.safetensors"
    save_file({key: torch.zeros(2) for key in keys}, str(path))
    assert single_file_class(path) == expected
    assert adapter_class(expected).family == ("sdxl" if "XL" in expected else "sd")


def test_single_file_class_of_non_safetensors_defaults_to_sd(tmp_path):
    assert single_file_class(tmp_path / "whatever.ckpt") == "StableDiffusionImg2ImgPipeline"


def test_a_corrupt_safetensors_file_in_a_folder_is_called_corrupt(sd_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(sd_folder, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(InputError, match="may be truncated or corrupt") as info:
        load_pipeline(str(broken), device=torch.device("cpu"), dtype=torch.float32)
    assert "pickle" not in str(info.value)


@pytest.fixture(scope="module")
def single_file(tmp_path_factory, sd_pipe, sd_folder):
    """The tiny SD pipeline as one original-layout (LDM / A1111) .safetensors checkpoint."""
    from original_layout import original_state_dict
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("single") / "tiny-sd.safetensors"
    save_file(original_state_dict(sd_pipe), str(path))
    return path


def test_a_single_file_checkpoint_loads_end_to_end(single_file, sd_folder, sd_pipe, tmp_path, capsys):
    """Original layout in, the very same weights out: edits equal those of the pipeline it was written from."""
    editor = Editor.from_pretrained(str(single_file), device="cpu", config=str(sd_folder), local_files_only=True)
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(editor.adapter.pipe, name).state_dict(), getattr(sd_pipe, name).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), name
    source = photo(32, 32, seed=1)
    settings = dict(strength_map=np.ones((32, 32)), prompt="a fox", num_inference_steps=4, seed=2)
    assert np.array_equal(np.asarray(editor.edit(source, **settings).image),
                          np.asarray(Editor.from_pipe(sd_pipe).edit(source, **settings).image))
    source.save(tmp_path / "s.png")
    argv = ["edit", str(tmp_path / "s.png"), "--model", str(single_file), "--config", str(sd_folder), "--offline",
            "--steps", "2", "--seed", "1", "-o", str(tmp_path / "o.png"), "-q"]
    assert main(argv) == 0, capsys.readouterr().err
    # without the architecture's config, offline, the error says what to pass
    assert main(argv[:4] + argv[6:] + ["--overwrite"]) == 2
    assert "--config" in capsys.readouterr().err
