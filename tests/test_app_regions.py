"""Regions with text of their own in the studio, on a tiny SD model: prompt-only regions painted on "Region k" with
their prompt fields, and each exemplar tab's own prompt; the page's edit equals the Python API's."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import photo

from pixels import Editor, Exemplar, InputError, Region
from pixels.app import canvas as cv
from pixels.app import context
from pixels.app import handlers as h
from pixels.app.exemplars import Slot

SETTINGS = {"steps": 4, "guidance": 4.0, "seed": "3", "strength": 1.0, "prompt": "a room"}


@pytest.fixture
def ctx(sd_pipe, tmp_path):
    app = context.create(Editor.from_pipe(sd_pipe), "tiny-sd", root=tmp_path / "app")
    yield app
    app.close()


@pytest.fixture
def st(ctx, tmp_path):
    photo(32, 32, seed=1).save(tmp_path / "room.png")
    session = ctx.sessions.open("browser")
    h.use_photo(ctx, session, str(tmp_path / "room.png"), name="room.png")
    return session


def paint(st, target: str, box: tuple[int, int, int, int]) -> np.ndarray:
    cv.switch_target(st, None, target)
    cv.apply_shape(st, None, "box", box, 100, "replace")
    return st.bases[target].copy()


def test_two_painted_regions_with_their_own_prompts_edit_as_the_api_does(ctx, st, tmp_path):
    left, right = paint(st, "region 1", (0, 0, 16, 32)), paint(st, "region 2", (16, 0, 16, 32))
    calls: list = []
    ctx.engine.editor.adapter.denoiser.register_forward_hook(lambda *args: calls.append(1))
    h.run_edit(ctx, st, None, None, 0, [], SETTINGS, texts=[("a red fox", ""), ("brass lamp", "dark"), ("", "")])
    result = st.history.frames[-1].result
    md = result.metadata
    assert md["regional_text"] == 2 and [(r["prompt"], r.get("negative_prompt")) for r in md["regions"]] == \
        [("a red fox", None), ("brass lamp", "dark")]
    assert len(calls) == md["model_calls"]
    api = ctx.engine.editor.edit(tmp_path / "room.png", num_inference_steps=4, guidance_scale=4.0, seed=3,
                                 strength=1.0, prompt="a room",
                                 regions=[Region(left, "a red fox"), Region(right, "brass lamp", "dark")])
    np.testing.assert_array_equal(np.asarray(result.image), np.asarray(api.image))


def test_an_exemplar_tab_s_own_prompt_reaches_its_region(ctx, st, tmp_path):
    photo(32, 32, seed=5).save(tmp_path / "fox.png")
    where = paint(st, "strength", (8, 8, 16, 16))
    h.run_edit(ctx, st, None, None, 0, [Slot(str(tmp_path / "fox.png"), prompt=" a red fox ", negative="blur")],
               SETTINGS)
    result = st.history.frames[-1].result
    assert result.metadata["exemplars"][0]["prompt"] == "a red fox"
    assert result.metadata["exemplars"][0]["negative_prompt"] == "blur"
    api = ctx.engine.editor.edit(tmp_path / "room.png", [Exemplar(tmp_path / "fox.png", where, prompt="a red fox",
                                                                  negative_prompt="blur")],
                                 num_inference_steps=4, guidance_scale=4.0, seed=3, strength=1.0, prompt="a room")
    np.testing.assert_array_equal(np.asarray(result.image), np.asarray(api.image))


def test_a_region_needs_both_its_map_and_its_text(ctx, st):
    with pytest.raises(InputError, match=r"^region 1: it has a prompt but nothing is painted on 'Region 1'"):
        h.run_edit(ctx, st, None, None, 0, [], SETTINGS, texts=[("a fox", ""), ("", ""), ("", "")])
    paint(st, "region 2", (0, 0, 8, 8))
    with pytest.raises(InputError, match=r"^region 2: its map is painted but it has no prompt"):
        h.run_edit(ctx, st, None, None, 0, [], SETTINGS, texts=[("", ""), ("", ""), ("", "")])
    assert len(st.history.frames) == 1  # nothing was run


def test_the_page_offers_regions_where_the_model_takes_them(ctx, tmp_path):
    from pixels.app.ui import build

    def blocks_of(app):
        return {b.elem_id: b for b in build(app).blocks.values() if getattr(b, "elem_id", None)}

    page = blocks_of(ctx)
    assert page["pixels-regions"].visible and "pixels-region-3-negative" in page
    assert "region 1" in [value for _, value in page["pixels-target"].choices]
    demo = context.create(Editor.from_pretrained("demo", device="cpu"), "demo", root=tmp_path / "demo")
    try:  # an unconditional pixel-space model: no prompt, so no region's either
        plain = blocks_of(demo)
        assert not plain["pixels-regions"].visible
        assert "region 1" not in [value for _, value in plain["pixels-target"].choices]
    finally:
        demo.close()


def test_the_page_s_run_button_hands_the_region_fields_to_the_edit(ctx, st):
    """The Run event's inputs, in the page's order, reach `run_edit` as the regions' texts."""
    from pixels.app.ui import build

    blocks = build(ctx)
    left = paint(st, "region 1", (0, 0, 16, 32))
    run = next(f for f in blocks.fns.values() if getattr(f.fn, "__name__", "") == "studio_edit")
    values = []
    for component in run.inputs:
        elem = getattr(component, "elem_id", None)
        if elem == "pixels-region-1-prompt":
            values.append("a red fox")
        elif elem in SETTINGS_IDS:
            values.append(SETTINGS_IDS[elem])
        elif isinstance(component.value, dict) or component.value is None and elem is None:
            values.append(None)
        else:
            values.append(component.value)
    values[0], values[1] = st, None  # the session state and the run id
    run.fn(lambda *progress, **shown: None, *values)  # Gradio passes its progress tracker first
    md = st.history.frames[-1].result.metadata
    assert md["regions"][0]["prompt"] == "a red fox" and md["regional_text"] == 1
    np.testing.assert_array_equal(st.history.frames[-1].result.strength_map, left)


SETTINGS_IDS = {"pixels-steps": 4, "pixels-seed": "3", "pixels-strength": 1.0, "pixels-guidance": 4.0}


def test_a_saved_session_brings_the_regions_back_onto_the_page(ctx, st):
    left = paint(st, "region 1", (0, 0, 16, 32))
    h.run_edit(ctx, st, None, None, 0, [], SETTINGS, texts=[("a red fox", "blur"), ("", ""), ("", "")])
    path = h.save_session(st)
    other = ctx.sessions.open("another browser")
    shown = h.load_session(ctx, other, str(path))
    assert shown.regions == [("a red fox", "blur", ""), ("", "", ""), ("", "", "")]
    np.testing.assert_array_equal(other.bases["region 1"], left)
    h.run_edit(ctx, other, None, None, 0, [], SETTINGS, texts=shown.regions)  # the page runs with them again
    again = other.history.frames[-1].result
    assert again.metadata["regions"][0]["prompt"] == "a red fox" and again.metadata["regions"][0]["negative_prompt"] \
        == "blur"
    np.testing.assert_array_equal(again.texts[0][2], left)


# -- regional LoRA in the studio: each region's and each exemplar tab's "LoRAs here" field ----------------------
@pytest.fixture
def lora_ctx(sd_pipe, tmp_path):
    from pixels.testing.tiny import write_lora

    style = write_lora(sd_pipe, tmp_path / "style", seed=1)
    every = write_lora(sd_pipe, tmp_path / "every", seed=2, targets=("conv1", "conv2", "to_k"))
    editor = Editor.from_pipe(sd_pipe)
    editor.load_lora(str(style.parent), 0.0)
    editor.load_lora(str(every.parent), 0.0)
    app = context.create(editor, "tiny-sd", root=tmp_path / "lora-app")
    photo(32, 32, seed=1).save(tmp_path / "room.png")
    yield app, app.sessions.open("browser")
    app.close()
    sd_pipe.unload_lora_weights()


def test_region_and_exemplar_lora_fields_edit_as_the_api_does(lora_ctx, tmp_path):
    ctx, st = lora_ctx
    h.use_photo(ctx, st, str(tmp_path / "room.png"), name="room.png")
    photo(32, 32, seed=5).save(tmp_path / "fox.png")
    left, right = paint(st, "region 1", (0, 0, 12, 32)), paint(st, "region 2", (20, 0, 12, 32))
    where = paint(st, "strength", (12, 8, 8, 16))
    h.run_edit(ctx, st, None, None, 0, [Slot(str(tmp_path / "fox.png"), loras="every:-0.5")], SETTINGS,
               texts=[("a red fox", "", "style:0.9"), ("", "", " every "), ("", "", "")])
    result = st.history.frames[-1].result
    md = result.metadata
    assert [r.get("loras") for r in md["regions"]] == [{"style": 0.9}, {"every": 1.0}]
    assert md["exemplars"][0]["loras"] == {"every": -0.5} and md["regional_lora"] == 2
    api = ctx.engine.editor.edit(tmp_path / "room.png", [Exemplar(tmp_path / "fox.png", where,
                                                                  loras={"every": -0.5})],
                                 regions=[Region(left, "a red fox", loras={"style": 0.9}),
                                          Region(right, loras={"every": 1.0})],
                                 num_inference_steps=4, guidance_scale=4.0, seed=3, strength=1.0, prompt="a room")
    np.testing.assert_array_equal(np.asarray(result.image), np.asarray(api.image))

    path = h.save_session(st)  # a saved session brings the scales back onto the page
    other = ctx.sessions.open("another browser")
    shown = h.load_session(ctx, other, str(path))
    assert ("", "", "every:1") in shown.regions and ("a red fox", "", "style:0.9") in shown.regions


def test_bad_lora_fields_are_refused_by_name(lora_ctx, tmp_path):
    ctx, st = lora_ctx
    h.use_photo(ctx, st, str(tmp_path / "room.png"), name="room.png")
    with pytest.raises(InputError, match=r"^region 1: it has a prompt or LoRA scales but nothing is painted"):
        h.run_edit(ctx, st, None, None, 0, [], SETTINGS, texts=[("", "", "style:0.5")])
    paint(st, "region 1", (0, 0, 8, 8))
    with pytest.raises(InputError, match=r"^loras: no loaded LoRA 'nope'; loaded: style"):
        h.run_edit(ctx, st, None, None, 0, [], SETTINGS, texts=[("", "", "nope:0.5")])
    with pytest.raises(InputError, match=r"^region 1\.loras: LoRA 'style' is scaled twice"):
        h.run_edit(ctx, st, None, None, 0, [], SETTINGS, texts=[("", "", "style:0.5, style")])
    with pytest.raises(InputError, match=r"^regions\[0\]\.loras\['style'\]: expected a number in \[-4, 4\]"):
        h.run_edit(ctx, st, None, None, 0, [], SETTINGS, texts=[("", "", "style:9")])
    assert len(st.history.frames) == 1  # nothing was run


def test_the_page_shows_lora_fields_only_with_loras_loaded(ctx, lora_ctx):
    from pixels.app.ui import build

    def ids(app):
        return {b.elem_id: b for b in build(app).blocks.values() if getattr(b, "elem_id", None)}

    with_loras, without = ids(lora_ctx[0]), ids(ctx)
    assert with_loras["pixels-region-2-loras"].visible and with_loras["pixels-exemplar-1-loras"].visible
    assert not without["pixels-region-2-loras"].visible and not without["pixels-exemplar-1-loras"].visible
