"""The ComfyUI node pack (integrations/comfyui) inside a real ComfyUI.

ComfyUI is found through COMFYUI_PATH (a ComfyUI source tree with its requirements installed). Without it the
module is skipped, unless PIXELS_REQUIRE_COMFYUI=1 (as CI sets it), which makes it fail instead. ComfyUI runs in
a child process (tests/comfyui_run.py) so that its global state stays out of this one: it builds tiny random
models from ComfyUI's own classes, runs the example workflow through ComfyUI's executor and the nodes through
ComfyUI's samplers, and dumps what it saw. The tests here compare that with pixels' own functions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixels.core.release import keep_mask, to_latent_map
from pixels.core.settings import EditSettings, Exemplar
from pixels.inputs import maps
from pixels.inputs.read import place_inputs, read_inputs

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "integrations" / "comfyui"
WORKFLOW = PACK / "workflows" / "pixels_exemplar_api.json"
COMFYUI = os.environ.get("COMFYUI_PATH")
REQUIRED = os.environ.get("PIXELS_REQUIRE_COMFYUI") == "1"
NEEDS = ("torchsde", "einops", "scipy", "av", "aiohttp", "alembic", "sqlalchemy", "sentencepiece", "yarl")
BUDGET_S = 600  # the child process, the workflow and every scenario included
BOXES = [(8, 8, 32, 32), (28, 24, 32, 28)]  # two exemplars on the 64x64 scene, overlapping


def unavailable(reason: str) -> None:
    """Skip, or fail where CI requires the ComfyUI tests to run."""
    if REQUIRED:
        pytest.fail(f"PIXELS_REQUIRE_COMFYUI=1 but {reason}")
    pytest.skip(reason)


def picture(size: tuple[int, int], seed: int) -> Image.Image:
    """A smooth, structured RGB test picture (gradients and a disc), reproducible."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(size)
    a, b, c = rng.uniform(0.5, 3.0, 3)
    rgb = np.stack([np.sin(a * x * 6) * 0.5 + 0.5, np.cos(b * y * 5) * 0.5 + 0.5, (x + y * c) % 1.0], -1)
    disc = (x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.05
    rgb[disc] = rng.uniform(0, 1, 3)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")


def scene_maps() -> dict[str, np.ndarray]:
    """Strength maps for the 64x64 scene, float32 as ComfyUI's MASK holds them."""
    gradient = maps.combine([maps.linear((64, 64), (0, 0), (64, 0)) * 0.9, maps.box((64, 64), (40, 40, 16, 16))])
    return {
        "gradient": gradient.astype(np.float32),  # gray everywhere but column edges: every step releases some
        "binary": maps.box((64, 64), (16, 8, 24, 32)).astype(np.float32),  # aligned to the VAE's 8-pixel grid
        "region": maps.ellipse((64, 64), (40, 36), (14, 10)).astype(np.float32),
    }


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """Run tests/comfyui_run.py once for the module; returns (job, report, dump)."""
    if not COMFYUI:
        unavailable("COMFYUI_PATH is not set (point it at a ComfyUI source tree)")
    if not (Path(COMFYUI) / "comfy" / "samplers.py").is_file():
        unavailable(f"COMFYUI_PATH={COMFYUI} is not a ComfyUI source tree")
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        unavailable(f"ComfyUI's requirements are not installed: {', '.join(missing)}")
    folder = tmp_path_factory.mktemp("comfyui")
    (folder / "input").mkdir()
    (folder / "output").mkdir()
    picture((512, 512), 1).save(folder / "input" / "pixels_source.png")
    picture((200, 120), 2).save(folder / "input" / "pixels_exemplar.png")
    scene, exemplar = picture((64, 64), 3), picture((40, 24), 4)
    scene.save(folder / "input" / "scene_source.png")
    exemplar.save(folder / "input" / "scene_exemplar.png")
    scene_map = scene_maps()
    np.savez(folder / "maps.npz", **scene_map)
    # pixels places the exemplars itself: the child encodes these canvases with the same VAE
    placed = place_inputs(read_inputs(scene, [Exemplar(exemplar, box=BOXES[0], fit="cover"),
                                              Exemplar(exemplar, box=BOXES[1], fit="contain"),
                                              Exemplar(exemplar, strength_map=scene_map["region"].astype(np.float64))]))
    canvases = []
    for k, canvas in enumerate(placed.exemplars):
        canvases.append(str(folder / f"canvas_{k}.png"))
        canvas.save(canvases[-1])
    job = {"comfyui": COMFYUI, "input_dir": str(folder / "input"), "output_dir": str(folder / "output"),
           "workflow": str(WORKFLOW), "source": "scene_source.png", "exemplar": "scene_exemplar.png",
           "maps": str(folder / "maps.npz"), "boxes": BOXES, "canvases": canvases,
           "dump": str(folder / "dump.npz"), "report": str(folder / "report.json")}
    (folder / "job.json").write_text(json.dumps(job))
    start = time.monotonic()
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "comfyui_run.py"), str(folder / "job.json")],
                         capture_output=True, text=True, timeout=BUDGET_S, cwd=folder)
    if run.returncode != 0:
        pytest.fail(f"the ComfyUI child process failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}")
    job["seconds"] = time.monotonic() - start
    job["placed"] = placed
    job["scene"], job["exemplar_picture"], job["scene_maps"] = scene, exemplar, scene_map
    with np.load(job["dump"]) as data:
        dump = {k: data[k] for k in data.files}
    return job, json.loads(Path(job["report"]).read_text()), dump


def test_the_pack_loads_as_a_custom_node_folder(comfy):
    _, report, _ = comfy
    expected = {"PixelsExemplar", "PixelsSurgery", "PixelsPasteBack", "PixelsSelect", "PixelsMapBox",
                "PixelsMapEllipse", "PixelsMapRadial", "PixelsMapLinear", "PixelsMapFeather", "PixelsMapCombine",
                "PixelsMapInvert", "PixelsRegionalLoRA"}
    assert expected <= set(report["nodes"])
    assert set(report["entrypoint_nodes"]) == {n for n in report["nodes"] if n != "PixelsTestTinyCheckpoint"}
    assert report["model_layers"] == []  # the pack loads none of pixels' model layers (nor diffusers)


def test_the_example_workflow_runs_in_comfyuis_executor_and_keeps_strength_0_pixels(comfy):
    job, report, _ = comfy
    result = report["workflow"]
    assert result["valid"], result
    assert result["success"], result["messages"]
    assert len(result["images"]) == 1
    saved = np.asarray(Image.open(Path(job["output_dir"]) / result["images"][0]).convert("RGB"))
    source_file = Path(job["input_dir"]) / "pixels_source.png"
    source = np.asarray(Image.open(source_file).convert("RGB"))
    assert saved.shape == source.shape

    # the strength map the workflow builds, made here with pixels' own tools and placement
    workflow = json.loads(WORKFLOW.read_text())
    radial = next(n["inputs"] for n in workflow.values() if n["class_type"] == "PixelsMapRadial")
    placement = next(n["inputs"] for n in workflow.values() if n["class_type"] == "PixelsExemplar")
    seam = maps.radial((512, 512), (radial["center_x"], radial["center_y"]), radial["inner"], radial["outer"])
    box = (placement["x"], placement["y"], placement["width"], placement["height"])
    exemplar = Image.open(Path(job["input_dir"]) / "pixels_exemplar.png")
    placed = place_inputs(read_inputs(Image.open(source_file), [Exemplar(exemplar, box=box, fit=placement["fit"])],
                                      strength_map=seam.astype(np.float32).astype(np.float64)))
    kept = placed.strength == 0
    assert 0.2 < kept.mean() < 0.95
    assert np.array_equal(saved[kept], source[kept])
    assert np.abs(saved[~kept].astype(int) - source[~kept]).max() > 20  # the edit did change the rest


def test_a_bad_input_in_the_workflow_is_comfyuis_node_error_naming_it(comfy):
    _, report, _ = comfy
    result = report["broken_workflow"]
    assert result["valid"] and not result["success"]
    errors = [data for event, data in result["messages"] if event == "execution_error"]
    assert len(errors) == 1 and errors[0]["node_type"] == "PixelsExemplar"
    assert "box: (5000, 5000, 160, 160) lies entirely outside the 512x512 source" in errors[0]["exception_message"]


def test_the_per_step_masks_are_pixels_release_schedule(comfy):
    job, report, dump = comfy
    keep = to_latent_map(1.0 - job["scene_maps"]["gradient"].astype(np.float64), (8, 8))
    distinct_total = 0
    for run in report["mask_runs"]:
        name, steps = run["name"], run["steps"]
        sigmas, calls, masks = dump[f"sigmas_{name}"], dump[f"call_sigmas_{name}"], dump[f"masks_{name}"]
        assert len(sigmas) == steps + 1 and len(calls) == steps  # one model call a step (first-order samplers)
        assert run["shapes"] == [[[1, 4, 8, 8], [1, 4, 8, 8]]]
        offset = 1 if run["release"] == "reference" else 0
        for call, (sigma, mask) in enumerate(zip(calls, masks)):
            step = int(np.flatnonzero(sigmas[:-1] == np.float32(sigma))[0])
            assert step == call
            expected = ~keep_mask(keep, min(step + offset, steps), steps)[0, 0]
            assert np.array_equal(mask, expected.numpy().astype(np.float32)), (name, step)
        distinct_total += len({m.tobytes() for m in masks})
        assert len({m.tobytes() for m in masks}) >= 3, name  # the map releases pixels over several steps
    assert distinct_total > len(report["mask_runs"]) * 3


def test_binary_map_without_exemplar_equals_comfyuis_differential_diffusion_inpaint(comfy):
    _, _, dump = comfy
    assert np.array_equal(dump["dd_pixels"], dump["dd_comfyui"])
    assert not np.allclose(dump["dd_pixels"], dump["dd_plain"], atol=1e-2)


def test_comfyuis_masked_conditioning_gives_regions_their_own_prompt_through_the_pixels_model(comfy):
    """Regional prompts in ComfyUI are ComfyUI's own masked conditioning: sampled through the PIXELS-patched model
    (whose kept pixels PIXELS Paste Back restores exactly), the left region's text moves the edited cells of the
    left half more than those of the right."""
    _, _, dump = comfy
    red, green = dump["regional_red"], dump["regional_green"]
    keep = to_latent_map(1.0 - dump["regional_strength"][0].astype(np.float64), (8, 8))[0, 0].numpy() >= 1.0
    change = np.abs(red - green)[0].mean(0)  # (8, 8) latent cells; the edited box spans columns 2-4
    columns = np.arange(8)[None, :].repeat(8, 0)
    inside_left, inside_right = ~keep & (columns < 4), ~keep & (columns >= 4)
    assert change[inside_left].mean() > change[inside_right].mean() > 0


def test_release_reference_follows_pixels_own_loop(comfy):
    _, _, dump = comfy
    ours, theirs, shifted = dump["loop_pixels"], dump["loop_comfyui_reference"], dump["loop_comfyui_current"]
    scale = np.abs(ours).max()
    close = np.abs(ours - theirs).max()
    assert close <= 1e-4 * scale, close
    assert np.abs(ours - shifted).max() > 100 * max(close, 1e-6 * scale)  # the other release differs


class _Encoded:
    """The slice of a pixels adapter that `make_surgery` uses, answering with the child's VAE latents."""

    def __init__(self, latents: dict[bytes, np.ndarray]) -> None:
        self.latents = latents
        self.device, self.dtype, self.vae_scale_factor = torch.device("cpu"), torch.float32, 8

    def encode_image(self, tensor: torch.Tensor, generator) -> torch.Tensor:
        array = ((tensor[0].permute(1, 2, 0) + 1) / 2 * 255).round().to(torch.uint8).numpy()
        return torch.from_numpy(self.latents[array.tobytes()])


def _pixels_graft(job, dump, mode: str, indices: list[int], strength: np.ndarray | None):
    """pixels' own surgery (`make_surgery`) on the child's latents: what the grafted latent must be."""
    from pixels.core.prepare import make_surgery

    placed, scene = job["placed"], np.asarray(job["scene"])
    canvases = [np.asarray(placed.exemplars[k]) for k in indices]
    exemplar_maps = [placed.exemplar_maps[k] for k in indices]
    latents = {scene.tobytes(): dump["source_latent"]}
    latents.update({c.tobytes(): dump[f"canvas_latent_{k}"] for k, c in zip(indices, canvases)})
    combined = maps.combine(exemplar_maps + ([strength] if strength is not None else []))
    keep = to_latent_map(1.0 - combined, (8, 8))
    surgery = make_surgery(_Encoded(latents), EditSettings(mode=mode), [scene, *canvases], exemplar_maps, keep,
                           torch.Generator().manual_seed(0), inpaint=False)
    return torch.where(surgery.graft_mask, surgery.graft, surgery.source).numpy(), combined


@pytest.mark.parametrize("mode", ["paper", "blend"])
def test_the_grafted_latent_is_pixels_graft_bit_for_bit(comfy, mode):
    job, _, dump = comfy
    gradient = job["scene_maps"]["gradient"].astype(np.float64)
    expected, combined = _pixels_graft(job, dump, mode, [0, 1], gradient)
    assert np.array_equal(dump[f"grafted_{mode}"], expected)
    assert np.array_equal(dump[f"combined_{mode}"][0], combined.astype(np.float32))
    assert np.array_equal(dump[f"noise_mask_{mode}"][0, 0], combined.astype(np.float32))
    changed = ~np.isclose(dump[f"grafted_{mode}"], dump["source_latent"]).all(axis=1)[0]
    assert changed.any() and not changed.all()  # grafted somewhere, not everywhere


def test_auto_placement_into_the_region_is_pixels_placement(comfy):
    job, _, dump = comfy
    expected, _ = _pixels_graft(job, dump, "paper", [2], None)
    assert np.array_equal(dump["grafted_auto"], expected)


@pytest.mark.parametrize(("case", "words"), [
    ("box_outside", ["box:", "(900, 900, 16, 16)", "outside the 64x64 source"]),
    ("exemplar_larger_auto", ["placement:", "128x96 exemplar on a 64x64 source", "region"]),
    ("region_empty", ["region:", "0 everywhere"]),
    ("source_not_multiple", ["source:", "64x60", "multiple of 8"]),
    ("strength_size", ["strength:", "64x40", "8x8 latent"]),
    ("strength_empty", ["strength:", "0 everywhere"]),
    ("strength_range", ["strength:", "[0, 1]", "max 2"]),
    ("nothing", ["strength:", "nothing to edit"]),
    ("paste_sizes", ["source:", "64x64", "64x32"]),
    ("radial", ["radial:", "inner=20.0, outer=10.0"]),
    ("combine_sizes", ["combine:", "same shape"]),
    ("select_points", ["points:", "'1,2,3'", "2 numbers"]),
    ("rlora_size", ["region:", "64x40", "8x8"]),
    ("rlora_strength", ["strength:", "9.0", "[-4, 4]"]),
    ("rlora_text_only", ["lora_name:", "text_only.safetensors", "no layer"]),
    ("rlora_replaced", ["model:", "input_blocks.1.1.transformer_blocks.0.attn2", "after it"]),
    ("rlora_family", ["model:", "Linear", "SD 1.x/2.x and SDXL UNets only"]),
])
def test_bad_inputs_give_clear_messages(comfy, case, words):
    _, report, _ = comfy
    message = report["errors"][case]
    assert message is not None and message.startswith("InputError: "), message
    for word in words:
        assert word in message, (word, message)



def test_the_shipped_editor_graph_is_the_example_workflow(comfy):
    _, report, _ = comfy
    shipped = json.loads((PACK / "workflows" / "pixels_exemplar.json").read_text())
    assert shipped == report["ui_graph"], ("regenerate it: COMFYUI_PATH=... python tests/comfyui_run.py --ui-graph"
                                           " integrations/comfyui/workflows/pixels_exemplar.json")
    prompt = json.loads(WORKFLOW.read_text())
    nodes = {node["id"]: node for node in shipped["nodes"]}
    assert {str(k) for k in nodes} == set(prompt)
    for link, origin, slot, target, slot_in, kind in shipped["links"]:
        assert link in nodes[origin]["outputs"][slot]["links"] and nodes[origin]["outputs"][slot]["type"] == kind
        socket = nodes[target]["inputs"][slot_in]
        assert socket["link"] == link and socket["type"] == kind
        assert prompt[str(target)]["inputs"][socket["name"]] == [str(origin), slot]
    wired = sum(isinstance(v, list) for node in prompt.values() for v in node["inputs"].values())
    assert len(shipped["links"]) == wired


def test_a_white_regional_lora_is_comfyuis_own_lora_loader(comfy):
    """PIXELS Regional LoRA over the whole frame (a rank-4 LoRA on every attention projection, cross-attention keys
    and values included, the feed-forwards, proj_in/out, the resblocks' convolutions and time embeddings) samples
    what ComfyUI's own LoRA loader samples at the same strength, within one 8-bit level of the decoded picture."""
    _, _, dump = comfy
    ours, theirs = dump["rlora_white_pixels"], dump["rlora_comfyui_pixels"]
    assert np.abs(np.round(ours * 255) - np.round(theirs * 255)).max() <= 1
    assert np.allclose(dump["rlora_white"], dump["rlora_comfyui"], atol=1e-4)
    assert not np.allclose(dump["rlora_white"], dump["rlora_plain"], atol=1e-2)  # the LoRA does change the edit


def test_a_black_regional_lora_changes_nothing_bit_for_bit(comfy):
    _, _, dump = comfy
    assert np.array_equal(dump["rlora_black"], dump["rlora_plain"])


def test_a_regional_lora_leaves_a_layers_output_outside_its_mask_bit_for_bit(comfy):
    """The first LoRA'd convolution of the first model call: outside the left half's latent columns its output is
    the model's own, bit for bit; inside, the LoRA's delta is added."""
    _, _, dump = comfy
    plain, left = dump["rlora_layer_plain"], dump["rlora_layer_left"]
    assert plain.shape == left.shape and plain.shape[-1] == 8
    assert np.array_equal(plain[..., 4:], left[..., 4:])
    assert (np.abs(plain[..., :4] - left[..., :4]) > 0).mean() > 0.9


def test_a_regional_lora_moves_its_region_and_two_chain_in_one_model_call(comfy):
    """A LoRA on the left half moves the left latent cells more than the right; with a second LoRA on the right,
    changing that LoRA moves the right half more than the left; the model calls per sampling stay the same. The
    tiny UNet's self-attention and group norms span its whole 8x8 latent, so the other half moves too."""
    _, report, dump = comfy
    columns = np.arange(8)
    left = np.abs(dump["rlora_left"] - dump["rlora_plain"])[0].mean(0)
    assert left[:, columns < 4].mean() > 1.3 * left[:, columns >= 4].mean() > 0  # measured 1.58
    changed = np.abs(dump["rlora_two_changed"] - dump["rlora_two"])[0].mean(0)
    assert changed[:, columns >= 4].mean() > 1.3 * changed[:, columns < 4].mean() > 0  # measured 1.46
    assert report["rlora_calls"]["regional"] == report["rlora_calls"]["plain"] > 0
