"""LoRA, IP-Adapter and ControlNet in the studio: loaded once with `pixels app --lora/--ip-adapter/--controlnet`,
then each edit on the page sets the exemplars' condition weights, a prompt image and the control, and gets what
the Python API gives for the same arguments."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from conftest import photo

from pixels import Control, Editor, Exemplar, InputError
from pixels.app import context, painting
from pixels.app import handlers as h
from pixels.app.exemplars import Slot
from pixels.cli.extensions import check_extension_flags, load_extensions
from pixels.testing.tiny import build_sd, make_controlnet, write_image_encoder, write_ip_adapter, write_lora


def flags(root, lora, ip, encoder) -> argparse.Namespace:
    """What `pixels app --lora L:0.5 --ip-adapter DIR:NAME --image-encoder E --controlnet C` parses to."""
    from pixels.cli import build_parser

    return build_parser().parse_args(["app", "--model", str(root / "model"), "--lora", f"{lora}:0.5",
                                      "--ip-adapter", f"{ip.parent}:{ip.name}", "--image-encoder", str(encoder),
                                      "--controlnet", str(root / "controlnet")])


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """A tiny SD model saved with a LoRA, an IP-Adapter and a ControlNet beside it, loaded as `pixels app`
    loads them; the photos of an edit."""
    root = tmp_path_factory.mktemp("studio-extensions")
    pipe = build_sd(root / "tok")
    pipe.save_pretrained(root / "model", safe_serialization=True)
    lora, ip = write_lora(pipe, root / "lora"), write_ip_adapter(pipe.unet, root / "ip")
    encoder = write_image_encoder(root / "encoder")
    make_controlnet(pipe.unet).save_pretrained(root / "controlnet", safe_serialization=True)
    args = flags(root, lora, ip, encoder)
    check_extension_flags(args)
    editor = Editor.from_pretrained(args.model)
    load_extensions(args, editor)
    for name, seed in (("source", 1), ("exemplar", 5), ("prompt", 7)):
        photo(32, 32, seed=seed).save(root / f"{name}.png")
    return root, editor


@pytest.fixture
def ctx(extended, tmp_path):
    _, editor = extended
    app = context.create(editor, "tiny-sd", root=tmp_path / "app")
    yield app
    app.close()


def test_pixels_app_loads_the_extensions_it_is_given(extended, monkeypatch):
    from pixels.cli import main

    root, _ = extended
    started = {}
    monkeypatch.setattr("pixels.cli.app.launch", lambda *args, **options: started.update(options))
    lora = next((root / "lora").glob("*.safetensors"))
    ip = next((root / "ip").glob("*.safetensors"))
    assert main(["app", "--model", str(root / "model"), "--lora", f"{lora}:0.5", "--ip-adapter",
                 f"{ip.parent}:{ip.name}", "--image-encoder", str(root / "encoder"), "--controlnet",
                 str(root / "controlnet"), "--vae-tiling", "--max-steps", "40"]) == 0
    assert started["memory"].vae_tiling and started["refiner"] is None and started["max_steps"] == 40
    editor = Editor.from_pretrained(str(root / "model"))
    started["setup"](editor)  # what the studio runs once its model is loaded
    assert [lora["scale"] for lora in editor.loras] == [0.5] and editor.ip_adapter["weight_name"] == ip.name
    assert editor.controlnet_id == str(root / "controlnet")
    with pytest.raises(InputError, match="image encoder belongs to an --ip-adapter"):
        check_extension_flags(argparse.Namespace(image_encoder="enc", ip_adapter=None, loras=[]))


def test_the_page_offers_what_the_loaded_model_takes(ctx, tmp_path):
    from pixels.app.ui import build

    engine = ctx.engine
    assert engine.takes_conditions and engine.takes_prompt_images and engine.takes_control and engine.loras
    blocks = {b.elem_id: b for b in build(ctx).blocks.values() if getattr(b, "elem_id", None)}
    assert blocks["pixels-extensions"].visible and blocks["pixels-exemplar-1-condition"].visible
    assert [choice[1] for choice in blocks["pixels-control"].choices] == ["off", "canny", "image"]
    demo = context.create(Editor.from_pretrained("demo", device="cpu"), "demo", root=tmp_path / "demo")
    try:
        plain = {b.elem_id: b for b in build(demo).blocks.values() if getattr(b, "elem_id", None)}
        assert not plain["pixels-extensions"].visible and not plain["pixels-exemplar-1-condition"].visible
    finally:
        demo.close()


def test_a_studio_edit_with_every_extension_equals_the_api(extended, ctx):
    root, editor = extended
    st = ctx.sessions.open("browser")
    h.use_photo(ctx, st, str(root / "source.png"), name="source.png")
    paint = np.zeros((32, 32))
    paint[8:24, 8:24] = 1.0
    extensions = h.extension_kwargs(str(root / "prompt.png"), 0.6, "canny", None, 0.7, 0.0, 0.8)
    view = h.run_edit(ctx, st, None, {"map": painting.map_url(paint)}, 0,
                      [Slot(str(root / "exemplar.png"), condition=0.8)],
                      {"steps": 4, "guidance": 4.0, "seed": "3"}, None, extensions)
    result = st.history.frames[-1].result
    md = result.metadata
    assert md["exemplars"][0]["condition"] == 0.8 and md["prompt_images"][0]["weight"] == 0.6
    assert md["control"] == {"kind": "canny", "image": None, "scale": 0.7, "start": 0.0, "end": 0.8}
    assert md["loras"] == [{"lora": editor.loras[0]["lora"], "scale": 0.5, "name": editor.loras[0]["name"]}] and view.result.seed == 3
    where = result.strength_map
    api = editor.edit(str(root / "source.png"), [Exemplar(str(root / "exemplar.png"), where, condition=0.8)],
                      strength_map=where, num_inference_steps=4, guidance_scale=4.0, seed=3,
                      prompt_images=[(str(root / "prompt.png"), 0.6)], control=Control("canny", scale=0.7, end=0.8))
    assert np.array_equal(np.asarray(result.image), np.asarray(api.image))


def test_bad_extension_fields_are_refused_naming_the_field():
    with pytest.raises(InputError) as error:
        h.extension_kwargs(control="image")
    assert error.value.param == "control.image"
    with pytest.raises(InputError) as error:
        h.extension_kwargs(control="canny", scale=11)
    assert error.value.param == "control.scale"
    assert h.extension_kwargs() == {}
