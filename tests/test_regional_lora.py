"""Regional LoRA on tiny SD and SDXL models: a LoRA applied only inside a region, several in different regions at
once, at one model call per step; a white map equals diffusers' own global LoRA, scales equal to the edit's (or an
empty map) equal no region."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import box_map, photo
from PIL import Image

from pixels import Editor, Exemplar, InputError, Region
from pixels.testing.tiny import write_lora

FAST = dict(num_inference_steps=4, guidance_scale=4.0, strength=1.0)
EVERY_KIND = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "conv1", "conv2", "time_emb_proj")  # grid, text, none


def pixels(result) -> np.ndarray:
    return np.asarray(result.image).astype(np.int16)


def left_half(size: int = 32) -> np.ndarray:
    m = np.zeros((size, size))
    m[:, : size // 2] = 1.0
    return m


@pytest.fixture(params=["sd", "sdxl"])
def loaded(request, tiny_pipes, tmp_path):
    """An editor with two LoRAs loaded at scale 0 (for regions only): "style" on the attention projections and
    "every" on the convolutions, the projections and the time embedding as well."""
    pipe = tiny_pipes(request.param)
    style = write_lora(pipe, tmp_path / "style", seed=1)
    every = write_lora(pipe, tmp_path / "every", seed=2, targets=EVERY_KIND)
    editor = Editor.from_pipe(pipe)
    editor.load_lora(str(style.parent), 0.0)
    editor.load_lora(str(every.parent), 0.0)
    yield editor
    pipe.unload_lora_weights()


def diffusers_global(editor: Editor, weights: list[float], source, seed: int, **settings) -> np.ndarray:
    """Diffusers' img2img on the same components with the LoRAs at `weights` everywhere."""
    pipe = editor.adapter.pipe
    names = [lora["adapter"] for lora in editor.loras]
    pipe.set_adapters(names, adapter_weights=weights)
    try:
        out = pipe(image=source, generator=torch.Generator().manual_seed(seed), output_type="np", height=32,
                   width=32, **settings).images[0]
    finally:
        pipe.set_adapters(names, adapter_weights=[lora["scale"] for lora in editor.loras])
    return (out * 255).round().astype(np.int16)


def test_a_white_region_equals_diffusers_global_lora(loaded):
    source, white = photo(32, 32, seed=1), np.ones((32, 32))
    settings = dict(prompt="a fox", num_inference_steps=6, strength=0.7, guidance_scale=5.0)
    ours = loaded.edit(source, regions=[Region(white, loras={"style": 0.8, "every": -0.6})], seed=4, **settings)
    theirs = diffusers_global(loaded, [0.8, -0.6], source, 4, **settings)
    plain = diffusers_global(loaded, [0.0, 0.0], source, 4, **settings)
    assert np.abs(theirs - plain).max() > 8  # the LoRAs change the picture
    assert np.abs(pixels(ours) - theirs).max() <= 1
    # with a prompt of its own as well: its text and its LoRA, as the edit's prompt with the LoRA everywhere (SDXL's
    # pooled text embedding is the edit's, so there the edit has the same prompt)
    edit = {**settings, "prompt": "a lamp" if loaded.adapter.family == "sdxl" else "a fox"}
    text = loaded.edit(source, regions=[Region(white, "a lamp", loras={"style": 0.8, "every": -0.6})], seed=4, **edit)
    assert np.abs(pixels(text) - diffusers_global(loaded, [0.8, -0.6], source, 4, **{**settings,
                                                                                     "prompt": "a lamp"})).max() <= 1


def test_the_edit_s_own_scales_or_an_empty_map_are_no_region_and_calls_do_not_grow(loaded):
    source, m = photo(seed=2), np.maximum(box_map(), left_half())  # a region's map is edited too
    calls: list = []
    loaded.adapter.denoiser.register_forward_hook(lambda *args: calls.append(1))
    plain = loaded.edit(source, strength_map=m, seed=5, prompt="a fox", **FAST)
    plain_calls, calls[:] = len(calls), []
    same = loaded.edit(source, strength_map=m, seed=5, prompt="a fox",
                       regions=[Region(left_half(), loras={"style": 0.0, 1: 0.0})], **FAST)
    empty = loaded.edit(source, strength_map=m, seed=5, prompt="a fox",
                        regions=[Region(np.zeros((32, 32)), loras={"style": 1.0})], **FAST)
    assert np.array_equal(pixels(same), pixels(plain)) and np.array_equal(pixels(empty), pixels(plain))
    assert any("LoRA scales" in note and "applies nowhere" in note for note in empty.metadata["notes"])
    calls[:] = []
    two = loaded.edit(source, strength_map=m, seed=5, prompt="a fox", regions=[
        Region(left_half(), "a red fox", loras={"style": 1.0}), Region(1 - left_half(), loras={"every": 1.0})], **FAST)
    assert len(calls) == plain_calls and not np.array_equal(pixels(two), pixels(plain))


def test_outside_its_region_a_layer_s_output_is_bit_identical(loaded):
    """At the first model call every layer before the first LoRA layer sees the same input with and without the
    region, so the first LoRA layer's output is the no-region output outside the region, bit for bit."""
    unet, source = loaded.adapter.denoiser, photo(seed=3)
    name, layer = next((n, mod) for n, mod in unet.named_modules() if n.endswith("conv1") and hasattr(mod, "lora_A"))
    seen: list = []
    loaded.edit(source, seed=6, regions=[Region(left_half(), loras={"every": 1.0})], **FAST)  # hooks the layers
    handle = layer.register_forward_hook(lambda mod, args, out: seen.append(out.detach().clone()))  # after them
    try:
        loaded.edit(source, strength_map=left_half(), seed=6, prompt="a fox", **FAST)  # the region's map
        alone = seen[0]
        seen.clear()
        loaded.edit(source, seed=6, prompt="a fox", regions=[Region(left_half(), loras={"every": 1.0})], **FAST)
        ours = seen[0]
    finally:
        handle.remove()
    width = ours.shape[-1]
    outside, inside = (slice(None), slice(None), slice(None), slice(width // 2, None)), (..., slice(0, width // 2))
    assert torch.equal(ours[outside], alone[outside]), name
    assert not torch.allclose(ours[inside], alone[inside])


def test_two_loras_in_two_regions_keep_what_is_kept_and_repeat_with_the_seed(loaded):
    source = photo(seed=4)
    left, right = box_map(box=(2, 4, 14, 28)), box_map(box=(18, 4, 30, 28))
    regions = [Region(left, loras={"style": 1.2}), Region(right, loras={"every": 1.0})]
    first = loaded.edit(source, regions=regions, seed=7, **FAST)
    again = loaded.edit(source, regions=regions, seed=7, **FAST)
    assert np.array_equal(pixels(first), pixels(again))
    keep = np.maximum(left, right) == 0
    assert np.array_equal(np.asarray(first.image)[keep], np.asarray(source)[keep])
    # the right region's scale changed: its pixels change more than the left region's (the shared self-attention
    # carries some of it across)
    other = loaded.edit(source, seed=7, regions=[regions[0], Region(right, loras={"every": -1.0})], **FAST)
    change = np.abs(pixels(other) - pixels(first)).mean(-1)
    assert change[right > 0].mean() > 2 * change[left > 0].mean()
    assert first.texts[1].loras == (("every", 1.0),) and first.metadata["regions"][0]["loras"] == {"style": 1.2}


def test_an_exemplar_carries_loras_named_by_source_or_position(loaded, tmp_path):
    source, m = photo(seed=5), box_map()
    by_name = loaded.edit(source, [Exemplar(photo(seed=6), m, loras={"every": 0.9})], seed=8, **FAST)
    by_place = loaded.edit(source, [Exemplar(photo(seed=6), m, loras={1: 0.9})], seed=8, **FAST)
    by_source = loaded.edit(source, [Exemplar(photo(seed=6), m, loras={loaded.loras[1]["lora"]: 0.9})], seed=8,
                            **FAST)
    assert np.array_equal(pixels(by_name), pixels(by_place)) and np.array_equal(pixels(by_name), pixels(by_source))
    assert by_place.texts[0].loras == (("every", 0.9),)


@pytest.mark.parametrize("loras, message", [
    ({"nothing": 1.0}, r"^loras: no loaded LoRA 'nothing'; loaded: style \(.*\), every \(.*\)"),
    ({5: 1.0}, r"^loras: no loaded LoRA 5"),
    ({"style": 9.0}, r"^regions\[0\]\.loras\['style'\]: expected a number in \[-4, 4\]"),
    ({"style": "x"}, r"^regions\[0\]\.loras\['style'\]: expected a number"),
    ({"": 1.0}, r"^regions\[0\]\.loras: expected a LoRA's name"),
    (["style"], r"^regions\[0\]\.loras: expected a mapping"),
])
def test_bad_region_loras_are_refused_by_name(loaded, loras, message):
    with pytest.raises(InputError, match=message):
        loaded.edit(photo(), regions=[Region(left_half(), loras=loras)], seed=1, **FAST)


def test_a_family_that_cannot_mask_refuses_region_loras(tiny_pipes, tmp_path):
    pipe = tiny_pipes("sd3")
    editor = Editor.from_pipe(pipe)
    editor.load_lora(str(write_lora(pipe, tmp_path / "l").parent), 0.0)
    try:
        with pytest.raises(InputError, match=r"^loras: a region's own LoRA scales need LoRA layers that can be scaled"):
            editor.edit(photo(), regions=[Region(left_half(), loras={"l": 1.0})], seed=1, **FAST)
    finally:
        pipe.unload_lora_weights()


def test_lora_names_are_unique_and_can_be_given(tiny_pipes, tmp_path):
    pipe = tiny_pipes("sd")
    path = write_lora(pipe, tmp_path / "style")
    editor = Editor.from_pipe(pipe)
    try:
        assert editor.load_lora(str(path.parent), 0.0) == "style"
        assert editor.load_lora(str(path.parent), 0.0) == "style_2"
        assert editor.load_lora(str(path), 0.0, name="mine") == "mine"
        with pytest.raises(InputError, match="^lora.name: a LoRA named 'mine' is loaded already"):
            editor.load_lora(str(path), 0.0, name="mine")
        with pytest.raises(InputError, match=r"^loras: '.*' names 2 loaded LoRAs \(style, style_2\)"):
            editor.lora_named(str(path.parent))
    finally:
        pipe.unload_lora_weights()


# -- every front end: the command line, spec files, batch manifests, sessions -------------------------------------
@pytest.fixture(scope="module")
def cli_loras(tmp_path_factory, sd_pipe, sd_folder):
    from pixels import maps

    root = tmp_path_factory.mktemp("regional-lora-cli")
    style = write_lora(sd_pipe, root / "style", seed=1)
    every = write_lora(sd_pipe, root / "every", seed=2, targets=EVERY_KIND)
    photo(32, 32, seed=1).save(root / "room.png")
    maps.to_image(box_map(box=(2, 4, 14, 28))).save(root / "left.png")
    maps.to_image(box_map(box=(18, 4, 30, 28))).save(root / "right.png")
    return root, style, every


def test_the_command_line_spec_batch_and_session_equal_the_api(cli_loras, sd_folder, tmp_path, capsys):
    import json

    from conftest import run_cli

    from pixels import EditSession
    from pixels.outputs.writers import read_metadata

    root, style, every = cli_loras
    loras = ["--lora", f"{style}:0", "--lora", f"{every.parent}:0"]
    common = ["--model", sd_folder, "--steps", 4, "--guidance", 4, "--seed", 7, "--prompt", "a room", *loras]
    out = tmp_path / "cli.png"
    code, _, err = run_cli(["edit", root / "room.png", *common, "--region", root / "left.png", "--prompt-here",
                            "a red fox", "--lora-here", "style:0.9", "--region", root / "right.png", "--lora-here",
                            "every", "-o", out, "--save-session", tmp_path / "session"], capsys)
    assert code == 0, err
    md = read_metadata(out)
    assert [r.get("loras") for r in md["regions"]] == [{"style": 0.9}, {"every": 1.0}]
    assert md["regional_lora"] == 2 and [lora["name"] for lora in md["loras"]] == ["style", "every"]

    editor = Editor.from_pretrained(str(sd_folder))
    editor.load_lora(str(style.parent), 0.0, weight_name=style.name)  # as --lora FILE loads it
    editor.load_lora(str(every.parent), 0.0)
    api = editor.edit(root / "room.png", regions=[Region(root / "left.png", "a red fox", loras={"style": 0.9}),
                                                  Region(root / "right.png", loras={"every": 1.0})],
                      prompt="a room", num_inference_steps=4, guidance_scale=4.0, seed=7)
    assert np.array_equal(np.asarray(api.image), np.asarray(Image.open(out).convert("RGB")))
    session = EditSession.load(tmp_path / "session", editor)  # verify: every replayed result equals the saved one
    assert session.steps[-1].texts[1].loras == (("every", 1.0),)

    (tmp_path / "spec.yaml").write_text(
        "source: room.png\nedits:\n  - prompt: a room\n    regions:\n"
        "      - {map: left.png, prompt: a red fox, loras: {style: 0.9}}\n      - {map: right.png, loras: {every: 1}}\n")
    for name in ("room.png", "left.png", "right.png"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    code, _, err = run_cli(["edit", "--spec", tmp_path / "spec.yaml", *common, "-o", tmp_path / "spec.png"], capsys)
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "spec.png")), np.asarray(Image.open(out)))

    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"source": "room.png", "output": "row.png", "prompt": "a room", "seed": 7, "steps": 4,
                                "guidance": 4, "regions": [{"map": "left.png", "prompt": "a red fox",
                                                            "loras": {"style": 0.9}},
                                                           {"map": "right.png", "loras": {"every": 1}}]}) + "\n")
    code, _, err = run_cli(["batch", rows, "-o", tmp_path / "batch", "--model", sd_folder, *loras, "-q"], capsys)
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "batch" / "row.png")), np.asarray(Image.open(out)))


def test_the_command_line_refuses_a_lora_scale_without_a_region_or_a_loaded_lora(cli_loras, sd_folder, tmp_path,
                                                                                capsys):
    from conftest import run_cli

    root, style, _ = cli_loras
    common = ["edit", root / "room.png", "--model", sd_folder, "--steps", 2, "--seed", 1, "-o", tmp_path / "x.png"]
    with pytest.raises(SystemExit) as exit_info:
        run_cli([*common, "--lora-here", "style:0.5"], capsys)
    assert exit_info.value.code == 2 and "must follow the -e EXEMPLAR or --region MAP" in capsys.readouterr().err
    code, _, err = run_cli([*common, "--region", root / "left.png", "--lora-here", "style:0.5"], capsys)
    assert code == 2 and "--lora-here: no loaded LoRA 'style'; loaded: none" in err, err
    code, _, err = run_cli([*common, "--lora", f"{style}:0", "--region", root / "left.png", "--lora-here", "style:7"],
                           capsys)
    assert code == 2 and "regions[0].loras['style']: expected a number in [-4, 4], got 7.0" in err, err
    assert not (tmp_path / "x.png").exists()
