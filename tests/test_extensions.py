"""Exemplars that keep their identity: IP-Adapter image prompts masked to each exemplar's region, LoRAs and
ControlNet, on the one loop, with tiny weights written by the tests (pixels.testing.tiny)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import box_map, photo
from PIL import Image

from pixels import Control, Editor, Exemplar, InputError
from pixels.cli import main
from pixels.errors import UnsafeCheckpointError
from pixels.testing.tiny import build_sd, build_sdxl, make_controlnet, write_image_encoder, write_ip_adapter, write_lora

FAST = dict(num_inference_steps=4, guidance_scale=4.0)


def pixels_of(result) -> np.ndarray:
    return np.asarray(result.image).astype(int)


def calls_of(editor: Editor):
    calls: list = []
    return calls, editor.adapter.denoiser.register_forward_hook(lambda *args: calls.append(1))


# -- LoRA -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora_setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora")
    pipe = build_sd(folder / "tok")
    return pipe, write_lora(pipe, folder / "weights")


@pytest.mark.parametrize("family", ["sd", "sdxl", "sd3", "flux-dev"])
def test_a_lora_changes_the_edit_at_its_scale_and_nothing_at_scale_0(tiny_pipes, tmp_path, family):
    pipe = tiny_pipes(family)
    lora = write_lora(pipe, tmp_path / "lora")
    source, m = photo(32, 32, seed=1), box_map()
    plain = Editor.from_pipe(pipe).edit(source, strength_map=m, seed=3, **FAST)
    zero = Editor.from_pipe(pipe)
    zero.load_lora(str(lora.parent), 0.0)
    try:
        assert np.array_equal(pixels_of(zero.edit(source, strength_map=m, seed=3, **FAST)), pixels_of(plain))
        zero.load_lora(str(lora.parent), 0.8)  # a second one, weighted: the scales add up
        result = zero.edit(source, strength_map=m, seed=3, **FAST)
        assert not np.array_equal(pixels_of(result), pixels_of(plain))
        keep = m == 0
        assert np.array_equal(np.asarray(result.image)[keep], np.asarray(source)[keep])
        assert result.metadata["loras"] == [{"lora": str(lora.parent), "scale": 0.0, "name": "lora"},
                                            {"lora": str(lora.parent), "scale": 0.8, "name": "lora_2"}]
        # a white map: diffusers' img2img on these components, the LoRAs loaded in them
        settings = dict(prompt="a fox", num_inference_steps=6, strength=0.7, guidance_scale=5.0)
        ours = zero.edit(source, strength_map=np.ones((32, 32)), seed=4, **settings)
        theirs = pipe(image=source, generator=torch.Generator().manual_seed(4), output_type="np", height=32, width=32,
                      **settings).images[0]
        assert np.abs(pixels_of(ours) - (theirs * 255).round().astype(int)).max() <= 1
    finally:
        pipe.unload_lora_weights()


def test_lora_refusals(lora_setup, tmp_path):
    pipe, lora = lora_setup
    editor = Editor.from_pipe(pipe)
    with pytest.raises(InputError, match="^lora.scale: expected a number in"):
        editor.load_lora(str(lora.parent), float("nan"))
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        editor.load_lora(str(lora.parent), weight_name="pytorch_lora_weights.bin")
    with pytest.raises(InputError, match="^lora: LoRA .*is not available"):
        editor.load_lora(str(tmp_path / "nothing-here"))
    assert editor.loras == []


# -- ControlNet ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def control_setup(tmp_path_factory):
    pipe = build_sd(tmp_path_factory.mktemp("control") / "tok")
    return pipe, make_controlnet(pipe.unet)


def test_control_scale_0_is_the_edit_without_it_and_a_white_map_equals_diffusers(control_setup):
    from diffusers import StableDiffusionControlNetImg2ImgPipeline

    pipe, controlnet = control_setup
    source = photo(32, 32, seed=2)
    plain = Editor.from_pipe(pipe)
    controlled = Editor.from_pipe(pipe)
    controlled.load_controlnet(controlnet)
    m = box_map()
    base = plain.edit(source, strength_map=m, seed=1, **FAST)
    assert np.array_equal(pixels_of(controlled.edit(source, strength_map=m, seed=1, control=Control(scale=0.0),
                                                    **FAST)), pixels_of(base))
    steered = controlled.edit(source, strength_map=m, seed=1, control=Control("canny", scale=1.0), **FAST)
    assert not np.array_equal(pixels_of(steered), pixels_of(base))
    keep = m == 0
    assert np.array_equal(np.asarray(steered.image)[keep], np.asarray(source)[keep])
    assert steered.metadata["control"]["kind"] == "canny" and steered.metadata["controlnet"] == "ControlNetModel"
    # a white map and a given control image: diffusers' ControlNet img2img on the same components
    edges = Image.fromarray((np.indices((32, 32)).sum(0) % 8 < 2).astype(np.uint8) * 255).convert("RGB")
    settings = dict(prompt="a fox", num_inference_steps=6, strength=0.7, guidance_scale=5.0)
    ours = controlled.edit(source, strength_map=np.ones((32, 32)), seed=4,
                           control=Control("image", edges, scale=0.8, start=0.2, end=0.9), **settings)
    reference = StableDiffusionControlNetImg2ImgPipeline(**{**pipe.components, "controlnet": controlnet})
    reference.set_progress_bar_config(disable=True)
    theirs = reference(image=source, control_image=edges, controlnet_conditioning_scale=0.8,
                       control_guidance_start=0.2, control_guidance_end=0.9, height=32, width=32,
                       generator=torch.Generator().manual_seed(4), output_type="np", **settings).images[0]
    assert np.abs(pixels_of(ours) - (theirs * 255).round().astype(int)).max() <= 1


def test_controlnet_for_sdxl_and_refusals(tmp_path, control_setup, pixel_pipe):
    from diffusers import StableDiffusionXLControlNetImg2ImgPipeline

    pipe = build_sdxl(tmp_path / "tok")
    controlnet = make_controlnet(pipe.unet)
    editor = Editor.from_pipe(pipe)
    editor.load_controlnet(controlnet)
    source = photo(32, 32, seed=2)
    settings = dict(prompt="a fox", num_inference_steps=6, strength=0.7, guidance_scale=5.0)
    ours = editor.edit(source, strength_map=np.ones((32, 32)), seed=4, control=Control("canny", scale=0.7), **settings)
    reference = StableDiffusionXLControlNetImg2ImgPipeline(**{**pipe.components, "controlnet": controlnet})
    reference.set_progress_bar_config(disable=True)
    import cv2

    edges = Image.fromarray(np.stack([cv2.Canny(np.asarray(source.convert("L")), 100, 200)] * 3, -1))
    theirs = reference(image=source, control_image=edges, controlnet_conditioning_scale=0.7, height=32, width=32,
                       generator=torch.Generator().manual_seed(4), output_type="np", **settings).images[0]
    assert np.abs(pixels_of(ours) - (theirs * 255).round().astype(int)).max() <= 1
    with pytest.raises(InputError, match="^controlnet: ControlNet is supported for SD and SDXL models"):
        Editor.from_pipe(pixel_pipe).load_controlnet(controlnet)
    with pytest.raises(InputError, match="^control: this sd model has no ControlNet"):
        Editor.from_pipe(control_setup[0]).edit(source, strength_map=box_map(), control=Control(), seed=1, **FAST)
    with pytest.raises(InputError, match="^control.start"):
        Control(start=0.8, end=0.5)


# -- IP-Adapter -----------------------------------------------------------------------------------------------
CORNER = Exemplar(photo(32, 32, seed=5), box_map(box=(0, 0, 8, 8)), condition=0.0)

@pytest.fixture(scope="module")
def ip_setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ip")
    pipe = build_sd(folder / "tok")
    plain = Editor.from_pipe(pipe)
    source = photo(32, 32, seed=1)
    before = {  # before any IP-Adapter is loaded: without an exemplar, and with one that prompts nothing
        "plain": plain.edit(source, strength_map=box_map(), seed=2, **FAST),
        "exemplar": plain.edit(source, strength_map=box_map(), seed=2, exemplars=[CORNER], **FAST),
    }
    weights = write_ip_adapter(pipe.unet, folder / "ip")
    encoder = write_image_encoder(folder / "encoder")
    editor = Editor.from_pipe(pipe)
    editor.load_ip_adapter(str(weights.parent), weights.name, image_encoder=str(encoder))
    return pipe, editor, source, before


def test_condition_0_is_the_edit_without_an_ip_adapter(ip_setup):
    pipe, editor, source, before = ip_setup
    alone = editor.edit(source, strength_map=box_map(), seed=2, **FAST)
    zero = editor.edit(source, strength_map=box_map(), seed=2, exemplars=[CORNER], **FAST)
    assert np.array_equal(pixels_of(alone), pixels_of(before["plain"]))
    assert np.array_equal(pixels_of(zero), pixels_of(before["exemplar"]))
    conditioned = editor.edit(source, strength_map=box_map(), seed=2,
                              exemplars=[Exemplar(CORNER.image, CORNER.strength_map, condition=0.9)], **FAST)
    assert not np.array_equal(pixels_of(conditioned), pixels_of(zero))  # the same graft, now also prompting
    assert conditioned.metadata["exemplars"][0]["condition"] == 0.9 and conditioned.metadata["ip_adapter"]


def test_the_image_prompt_acts_only_inside_its_exemplars_region(ip_setup):
    """The first cross-attention layer's output in the first model call (the same input on both sides) is,
    outside the exemplar's region, the output without the image prompt, bit for bit; inside it differs. (The
    region is resized to each layer's grid as diffusers does, bicubically: the comparison keeps a column of
    that grid clear of the region's edge. Later layers and calls mix positions through convolutions.)"""
    pipe, editor, source, _ = ip_setup
    region = box_map(box=(16, 0, 32, 32))  # the right half
    outputs: dict[str, list] = {"with": [], "without": []}

    def record(key):
        return lambda module, args, out: outputs[key].append(out.detach().clone())

    layer = next(m for name, m in pipe.unet.named_modules() if name.endswith("attn2"))
    for key, weight in (("with", 1.0), ("without", 0.0)):
        handle = layer.register_forward_hook(record(key))
        try:
            editor.edit(source, strength_map=box_map(), seed=2, skip_steps="never",
                        exemplars=[Exemplar(photo(32, 32, seed=5), region, condition=weight)], **FAST)
        finally:
            handle.remove()
    a, b = outputs["with"][0], outputs["without"][0]
    side = int(a.shape[1] ** 0.5)  # tokens of a square latent grid
    a, b = a.reshape(a.shape[0], side, side, -1), b.reshape(b.shape[0], side, side, -1)
    assert torch.equal(a[:, :, : side // 2 - 1], b[:, :, : side // 2 - 1])  # the left half: bit for bit
    assert not torch.equal(a[:, :, side // 2:], b[:, :, side // 2:])


def test_conditioned_exemplars_share_the_model_calls_and_a_white_map_equals_diffusers(ip_setup):
    pipe, editor, source, _ = ip_setup
    counts = []
    for n in (0, 1, 3):
        exemplars = [Exemplar(photo(32, 32, seed=10 + k), box_map(box=(4 * k, 0, 4 * k + 12, 32)), condition=0.7)
                     for k in range(n)]
        calls, handle = calls_of(editor)
        try:
            editor.edit(source, exemplars=exemplars, strength_map=box_map(value=0.5), seed=0, skip_steps="never",
                        **FAST)
        finally:
            handle.remove()
        counts.append(len(calls))
    assert counts == [counts[0]] * 3
    picture = photo(32, 32, seed=7)
    settings = dict(prompt="a fox", num_inference_steps=6, strength=0.7, guidance_scale=5.0)
    ours = editor.edit(source, strength_map=np.ones((32, 32)), seed=4, prompt_images=[(picture, 0.6)], **settings)
    pipe.set_ip_adapter_scale(0.6)
    theirs = pipe(image=source, ip_adapter_image=picture, generator=torch.Generator().manual_seed(4),
                  output_type="np", **settings).images[0]
    assert np.abs(pixels_of(ours) - (theirs * 255).round().astype(int)).max() <= 1


def test_ip_adapter_refusals(ip_setup, tmp_path, tiny_pipes):
    pipe, editor, source, _ = ip_setup
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        Editor.from_pipe(tiny_pipes("sd")).load_ip_adapter("h94/IP-Adapter", "ip-adapter_sd15.bin")
    with pytest.raises(InputError, match="^ip_adapter: An IP-Adapter is supported for SD and SDXL models"):
        Editor.from_pipe(tiny_pipes("flux-dev")).load_ip_adapter(str(tmp_path), "x.safetensors")
    with pytest.raises(InputError, match="^exemplars: an exemplar's condition needs an IP-Adapter"):
        Editor.from_pipe(tiny_pipes("sd3")).edit(photo(32, 32), strength_map=box_map(), seed=1,
                                                 exemplars=[Exemplar(photo(32, 32), box_map(), condition=0.5)], **FAST)
    with pytest.raises(InputError, match=r"^exemplars\[0\].condition: expected a weight in \[0, 5\]"):
        editor.edit(source, exemplars=[Exemplar(photo(32, 32), box_map(), condition=-1)], seed=1, **FAST)


# -- the command line and saved sessions ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_setup(tmp_path_factory):
    """A saved SD model with a LoRA, an IP-Adapter (weights and image encoder) and a ControlNet beside it, and
    the input files of an edit."""
    root = tmp_path_factory.mktemp("cli-extensions")
    pipe = build_sd(root / "tok")
    pipe.save_pretrained(root / "model", safe_serialization=True)
    lora = write_lora(pipe, root / "lora")
    ip = write_ip_adapter(pipe.unet, root / "ip")
    encoder = write_image_encoder(root / "encoder")
    make_controlnet(pipe.unet).save_pretrained(root / "controlnet", safe_serialization=True)
    photo(32, 32, seed=1).save(root / "source.png")
    photo(32, 32, seed=5).save(root / "exemplar.png")
    Image.fromarray((box_map(box=(8, 8, 24, 24)) * 255).astype(np.uint8)).save(root / "region.png")
    Image.fromarray((np.indices((32, 32)).sum(0) % 6 < 2).astype(np.uint8) * 255).save(root / "edges.png")
    return root, lora, ip, encoder


def extension_args(root, lora, ip, encoder, out, *extra):
    return ["edit", root / "source.png", "--model", root / "model", "--steps", 4, "--guidance", 4, "--seed", 3,
            "-o", out, "-e", root / "exemplar.png", "-m", root / "region.png", "--condition", 0.8,
            "--lora", f"{lora}:0.5", "--ip-adapter", f"{ip.parent}:{ip.name}", "--image-encoder", encoder,
            "--controlnet", root / "controlnet", "--control", "canny:0.7", "--control-end", 0.8, *extra]


def loaded_editor(root, lora, ip, encoder) -> Editor:
    from diffusers import ControlNetModel

    editor = Editor.from_pretrained(str(root / "model"))
    editor.load_lora(str(lora.parent), 0.5, weight_name=lora.name)
    editor.load_ip_adapter(str(ip.parent), ip.name, image_encoder=str(encoder))
    editor.load_controlnet(str(root / "controlnet"))
    assert isinstance(editor.adapter.controlnet, ControlNetModel)
    return editor


def test_the_command_line_loads_every_extension_and_equals_the_api(cli_setup, tmp_path, capsys):
    from pixels.outputs.writers import read_metadata
    from pixels.session import EditSession

    root, lora, ip, encoder = cli_setup
    out = tmp_path / "out.png"
    code = main([str(a) for a in extension_args(root, lora, ip, encoder, out, "--save-session", tmp_path / "s")])
    _, err = capsys.readouterr()
    assert code == 0, err
    metadata = read_metadata(out)
    assert metadata["loras"] == [{"lora": str(lora.parent), "scale": 0.5, "name": lora.parent.name}]
    assert metadata["ip_adapter"]["weight_name"] == ip.name and metadata["exemplars"][0]["condition"] == 0.8
    assert metadata["control"] == {"kind": "canny", "image": None, "scale": 0.7, "start": 0.0, "end": 0.8}
    editor = loaded_editor(root, lora, ip, encoder)
    api = editor.edit(Image.open(root / "source.png"), num_inference_steps=4, guidance_scale=4.0, seed=3,
                      exemplars=[Exemplar(str(root / "exemplar.png"), str(root / "region.png"), condition=0.8)],
                      control=Control("canny", scale=0.7, end=0.8))
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), np.asarray(api.image))
    # the saved session replays bit for bit with the same extensions, and refuses an editor without them
    session = EditSession.load(tmp_path / "s", editor)
    assert np.array_equal(np.asarray(session.current), np.asarray(api.image))
    with pytest.raises(InputError, match="^extensions: the session was edited with LoRAs"):
        EditSession.load(tmp_path / "s", Editor.from_pretrained(str(root / "model")))


def test_a_control_image_is_saved_with_the_session_and_replays(cli_setup, tmp_path, capsys):
    from pixels.session import EditSession

    root, lora, ip, encoder = cli_setup
    out = tmp_path / "out.png"
    args = extension_args(root, lora, ip, encoder, out, "--save-session", tmp_path / "s")
    edges = tmp_path / "edges.png"
    edges.write_bytes((root / "edges.png").read_bytes())
    args[args.index("canny:0.7")] = f"image:{edges}:0.6"
    code = main([str(a) for a in args])
    assert code == 0, capsys.readouterr()[1]
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    step = manifest["steps"][0]
    assert step["control"] == {"kind": "image", "scale": 0.6, "start": 0.0, "end": 0.8,
                               "image": "step-01/control.png"}
    conditioned = step["exemplars"][0]
    assert conditioned["condition"] == 0.8 and (tmp_path / "s" / conditioned["condition_image"]).is_file()
    edges.unlink()  # the session holds its own copy
    session = EditSession.load(tmp_path / "s", loaded_editor(root, lora, ip, encoder))
    assert np.array_equal(np.asarray(session.current), np.asarray(Image.open(out).convert("RGB")))


@pytest.mark.parametrize("change, message", [
    (("--controlnet", None), "--control: give --controlnet"),
    (("--control", None), "--controlnet: no edit has a --control"),
    (("--ip-adapter", None), "exemplars: an exemplar with a condition weight needs --ip-adapter"),
    (("--lora", "style:strong"), "--lora: 'style:strong': expected ID|PATH[:SCALE]"),
    (("--control", "blur"), "--control: unknown kind 'blur'"),
    (("--control", "canny:much"), "--control: 'canny:much': expected canny[:SCALE]"),
    (("--control", "image:missing.png"), "--control.image"),
    (("--control-end", 1.5), "--control.end: expected a number in [0, 1]"),
    (("--refiner", "elsewhere"), "--refiner: ControlNet guidance and exemplar conditions act on the base model"),
])
def test_extension_flags_are_checked_before_loading(cli_setup, tmp_path, capsys, monkeypatch, change, message):
    root, lora, ip, encoder = cli_setup
    monkeypatch.setattr(Editor, "from_pretrained", lambda *a, **k: pytest.fail("loaded a model"))
    args = [str(a) for a in extension_args(root, lora, ip, encoder, tmp_path / "out.png")]
    flag, value = change
    if flag in args:
        at = args.index(flag)
        args[at: at + 2] = [] if value is None else [flag, str(value)]
        for dependent in {"--ip-adapter": ["--image-encoder"], "--control": ["--control-end"]}.get(flag, []):
            at = args.index(dependent)
            del args[at: at + 2]
    else:
        args += [flag, str(value)]
    code = main(args)
    _, err = capsys.readouterr()
    assert code == 2 and message in err, err
    assert not (tmp_path / "out.png").exists()


def test_a_spec_gives_conditions_and_control(cli_setup, tmp_path):
    from pixels.inputs.spec import parse_spec

    root = cli_setup[0]
    spec = parse_spec({"edits": [{"exemplars": [{"image": "exemplar.png", "condition": 0.4}],
                                  "control": {"kind": "image", "image": "edges.png", "scale": 0.5, "end": 0.7}}]},
                      root)
    edit = spec.edits[0]
    assert edit.exemplars[0].condition == 0.4
    assert edit.settings["control"] == Control("image", str(root / "edges.png"), 0.5, 0.0, 0.7)
    assert str(root / "edges.png") in spec.paths()
    for bad, where in [({"control": {"kind": "canny", "scale": "big"}}, r"edits\[0\]\.control\.scale"),
                       ({"control": {"kind": "canny", "start": 0.9, "end": 0.2}}, r"edits\[0\]\.control\.start"),
                       ({"control": "canny"}, r"edits\[0\]\.control: expected a mapping"),
                       ({"control": {"kind": "canny", "blur": 1}}, r"edits\[0\]\.control: unknown key 'blur'"),
                       ({"exemplars": [{"image": "a.png", "condition": "yes"}]},
                        r"edits\[0\]\.exemplars\[0\]\.condition: expected number")]:
        with pytest.raises(InputError, match=f"^{where}"):
            parse_spec({"edits": [bad]}, root)


# -- all three together, with crop, step skipping, blend mode and batches ----------------------------------------
@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    folder = tmp_path_factory.mktemp("everything")
    pipe = build_sd(folder / "tok")
    lora = write_lora(pipe, folder / "lora")
    weights = write_ip_adapter(pipe.unet, folder / "ip")
    controlnet = make_controlnet(pipe.unet)  # shaped like the UNet before the IP-Adapter changes its layers
    editor = Editor.from_pipe(pipe)
    editor.load_lora(str(lora.parent), 0.7)
    editor.load_ip_adapter(str(weights.parent), weights.name, image_encoder=str(write_image_encoder(folder / "enc")))
    editor.load_controlnet(controlnet)
    yield editor
    pipe.unload_lora_weights()


@pytest.mark.parametrize("settings", [
    dict(crop="auto", crop_margin=4),
    dict(crop=(4, 2, 24, 28), crop_resize=32),
    dict(mode="blend"),
    dict(skip_steps="auto", strength=0.6),
], ids=["crop-auto", "crop-resized", "blend", "skip"])
def test_all_three_keep_strength_0_pixels_exact(everything, settings):
    source = photo(40, 36, seed=3)
    region = box_map(40, 36, box=(10, 8, 26, 24), value=0.8)
    exemplar = Exemplar(photo(20, 20, seed=4), region, condition=0.7)
    result = everything.edit(source, exemplars=[exemplar], seed=5, control=Control("canny", scale=0.8, end=0.7),
                             **{**FAST, **settings})
    keep = region == 0
    assert np.array_equal(np.asarray(result.image)[keep], np.asarray(source)[keep])
    assert not np.array_equal(np.asarray(result.image)[~keep], np.asarray(source)[~keep])
    assert result.control_image.size == source.size and result.condition_images[0].size == (20, 20)
    metadata = result.metadata
    assert metadata["loras"][0]["scale"] == 0.7 and metadata["ip_adapter"] and metadata["control"]["scale"] == 0.8
    if "crop" in settings:
        assert metadata["crop_box"] is not None


def test_controlled_and_conditioned_edits_in_a_batch_equal_the_edits_alone(everything):
    source = photo(32, 32, seed=3)
    requests = [dict(source=source, seed=k, exemplars=[Exemplar(photo(32, 32, seed=9 + k), box_map(), condition=0.5)],
                     control=Control("canny", scale=0.5 + 0.2 * k), **FAST) for k in range(2)]
    requests.append(dict(source=source, seed=7, strength_map=box_map(), **FAST))
    together = everything.edit_batch(requests)
    for request, batched in zip(requests, together):
        alone = everything.edit(**request)
        assert np.array_equal(pixels_of(alone), pixels_of(batched))
