"""Kandinsky 2.2: prior conditioning, image prompts, learned-variance guidance, MoVQ latents, the inpaint UNet.

Every test runs on tiny random components (tests/kandinsky_models.py), offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import box_map, photo
from diffusers import KandinskyV22Img2ImgPipeline, KandinskyV22InpaintPipeline, KandinskyV22PriorPipeline
from diffusers.pipelines.kandinsky2_2.pipeline_kandinsky2_2_inpainting import prepare_mask
from PIL import Image

from pixels import Editor, Exemplar, InputError
from pixels.adapters.kandinsky import KandinskyV22Adapter, LearnedVarianceGuidance, combined_pipeline
from pixels.cli import main
from pixels.core.frame import to_tensor
from pixels.inputs.spec import load_spec
from pixels.models.loading import load_pipeline
from pixels.testing.tiny import build_kandinsky, make_decoder_scheduler

FAST = dict(num_inference_steps=4, guidance_scale=4.0)
CPU = dict(device=torch.device("cpu"), dtype=torch.float32)


@pytest.fixture(scope="module")
def kandinsky(tmp_path_factory):
    """Img2img combined pipeline; its DDPM scheduler uses the UNet's learned variance."""
    return build_kandinsky(tmp_path_factory.mktemp("kandinsky"))


@pytest.fixture(scope="module")
def kandinsky_inpaint(tmp_path_factory):
    return build_kandinsky(tmp_path_factory.mktemp("kandinsky_inpaint"), inpaint=True)


@pytest.fixture(scope="module")
def kandinsky_folder(tmp_path_factory, kandinsky):
    folder = tmp_path_factory.mktemp("kandinsky_saved") / "tiny-kandinsky"
    kandinsky.save_pretrained(folder, safe_serialization=True)
    return folder


def with_scheduler(pipe, kind: str):
    """`pipe`'s modules with another decoder scheduler (learned / fixed variance DDPM, or DDIM)."""
    return type(pipe)(**{**pipe.components, "scheduler": make_decoder_scheduler(kind)})


def image_embeds(cond) -> torch.Tensor:
    return cond.kwargs["added_cond_kwargs"]["image_embeds"]


def prior_seeded() -> torch.Generator:
    return torch.Generator().manual_seed(KandinskyV22Adapter.prior_seed)


def pixels_of(result) -> np.ndarray:
    return np.asarray(result.image)


# --- the PIXELS invariants ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ddim", "euler", "dpm++2m"])  # the model's own: test_families.py
def test_strength_zero_pixels_exact_and_edit_happens(kandinsky, name):
    source, m = photo(32, 32, seed=3), box_map(value=1.0)
    m[4:8, 4:28] = 0.5  # a gray band beside the graft
    result = Editor.from_pipe(kandinsky).edit(
        source, exemplars=[Exemplar(photo(32, 32, seed=8), strength_map=m)], prompt="a fox", seed=1, scheduler=name,
        **FAST,
    )
    out, src = pixels_of(result), np.asarray(source)
    assert np.array_equal(out[m == 0], src[m == 0])
    assert not np.array_equal(out[m == 1], src[m == 1])
    assert result.metadata["family"] == "kandinsky"


def test_any_image_size_is_padded_for_the_unet(kandinsky):
    """MoVQ halves and the UNet halves once more: sizes are padded to a multiple of 4, kept pixels stay exact."""
    editor = Editor.from_pipe(kandinsky)
    assert editor.adapter.size_multiple == 4 and editor.adapter.vae_scale_factor == 2
    source, m = photo(30, 22, seed=5), box_map(30, 22, box=(6, 4, 20, 18))
    result = editor.edit(source, strength_map=m, seed=2, **FAST)
    assert result.image.size == (30, 22) and result.metadata["diffused_size"] == [32, 24]
    assert np.array_equal(pixels_of(result)[m == 0], np.asarray(source)[m == 0])


def test_prompt_image_weights_change_the_result(kandinsky):
    editor = Editor.from_pipe(kandinsky)
    source, m, cue = photo(32, 32, seed=4), box_map(), photo(32, 32, seed=9)
    light, heavy = (editor.edit(source, strength_map=m, prompt="a cat", prompt_images=[(cue, w)], seed=5, **FAST)
                    for w in (0.2, 0.8))
    assert not np.array_equal(pixels_of(light), pixels_of(heavy))
    assert light.metadata["prompt_images"] == [{"image": "<Image>", "weight": 0.2}]
    assert light.metadata["prior_steps"] == 25 and light.metadata["prompt_weight"] == 1.0


# --- the same numbers as diffusers -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, name, guidance", [  # the default (learned, None, 5) is in test_families.py
    ("learned", None, 1.0),  # no guidance: one branch, its variance passed on
    ("fixed", None, 5.0),  # DDPM with a fixed variance: the variance channels are dropped
    ("learned", "ddim", 5.0),  # DDIM made from a learned-variance DDPM config
    ("ddim", None, 3.0),
])
def test_white_map_equals_diffusers_img2img(kandinsky, kind, name, guidance):
    pipe = with_scheduler(kandinsky, kind)
    editor = Editor.from_pipe(pipe)
    source = photo(32, 32, seed=1)
    settings = dict(num_inference_steps=6, strength=0.7, guidance_scale=guidance)
    ours = editor.edit(source, strength_map=np.ones((32, 32), np.float32), prompt="a red fox", seed=3,
                       scheduler=name, **settings)
    # The prior as the combined pipeline calls it, with the adapter's prior settings and seed.
    embeds, negative = pipe.prior_pipe("a red fox", generator=prior_seeded(), num_inference_steps=25,
                                       guidance_scale=4.0, return_dict=False)
    decoder = KandinskyV22Img2ImgPipeline(unet=pipe.unet, movq=pipe.movq, scheduler=editor.adapter.make_scheduler(name))
    decoder.set_progress_bar_config(disable=True)
    theirs = decoder(image=source, image_embeds=embeds, negative_image_embeds=negative, height=32, width=32,
                     generator=torch.Generator().manual_seed(3), output_type="np", **settings).images[0]
    diff = np.abs(pixels_of(ours).astype(int) - (theirs * 255).round().astype(int))
    assert diff.max() <= 1, diff.max()
    assert ours.metadata["model_calls"] == ours.metadata["steps_run"] == int(6 * 0.7)


@pytest.mark.parametrize("name", [None, "ddim", "euler", "dpm++2m"])
@pytest.mark.parametrize("strength", [1.0, 0.55, 0.3])
def test_timesteps_are_diffusers_kandinsky_truncation(kandinsky, name, strength):
    adapter = Editor.from_pipe(kandinsky).adapter
    ours = adapter.timesteps(adapter.make_scheduler(name), 10, strength, latent_size=(16, 16))
    decoder = KandinskyV22Img2ImgPipeline(unet=kandinsky.unet, movq=kandinsky.movq,
                                          scheduler=adapter.make_scheduler(name))
    decoder.scheduler.set_timesteps(10)
    theirs, count = decoder.get_timesteps(10, strength, "cpu")
    assert torch.equal(ours, theirs) and len(ours) == count


def test_learned_variance_reaches_only_schedulers_that_use_it(kandinsky):
    adapter = Editor.from_pipe(kandinsky).adapter
    output = torch.randn(2, 8, 4, 4)
    noise, variance = output.split(4, dim=1)
    guided = noise[:1] + 3.0 * (noise[1:] - noise[:1])
    ddpm = adapter.make_scheduler(None)  # DDPM, learned_range: guided noise and the conditional branch's variance
    assert torch.equal(adapter.guidance(3.0, ddpm).combine(output), torch.cat([guided, variance[1:]], dim=1))
    for name in ("ddim", "dpm++2m"):  # these would misread the variance channels: they never see them
        scheduler = adapter.make_scheduler(name)
        assert scheduler.config.variance_type is None
        assert torch.equal(adapter.guidance(3.0, scheduler).combine(output), guided)
    assert torch.equal(adapter.guidance(1.0, ddpm).combine(output[:1]), output[:1])
    assert LearnedVarianceGuidance(3.0, channels=4, keep_variance=False).enabled


# --- conditioning: the prior, image prompts, negative branch -----------------------------------------------------


def encode(adapter, prompt="", negative=None, images=(), scale=4.0):
    """(negative, positive) image embeddings the adapter conditions on."""
    negative_embeds, embeds = image_embeds(
        adapter.encode_prompt(prompt, negative, adapter.guidance(scale), (32, 32), list(images))
    ).chunk(2)
    return negative_embeds, embeds


@pytest.mark.parametrize("prompt, weights", [("a cat", [0.5]), ("a cat", [0.3, 1.2]), ("", [0.4, 0.6])])
def test_image_prompts_mix_as_the_priors_interpolate(kandinsky, prompt, weights):
    adapter = Editor.from_pipe(kandinsky).adapter
    images = [photo(40, 24, seed=20 + k) for k in range(len(weights))]
    negative, embeds = encode(adapter, prompt, images=zip(images, weights))
    items, all_weights = ([prompt] if prompt else []) + images, ([1.0] if prompt else []) + weights
    expected = kandinsky.prior_pipe.interpolate(items, all_weights, generator=prior_seeded())
    assert torch.allclose(embeds, expected.image_embeds, atol=1e-6)
    assert torch.allclose(negative, expected.negative_image_embeds, atol=1e-6)


def test_no_text_no_images_is_the_priors_empty_prompt(kandinsky):
    adapter = Editor.from_pipe(kandinsky).adapter
    negative, embeds = encode(adapter)
    expected, zero = kandinsky.prior_pipe("", generator=prior_seeded(), return_dict=False)
    assert torch.equal(embeds, expected) and torch.equal(negative, zero)
    assert torch.equal(zero, kandinsky.prior_pipe.get_zero_embed())  # the negative branch: a black image's embedding


def test_negative_prompt_as_the_combined_pipeline(kandinsky):
    adapter = Editor.from_pipe(kandinsky).adapter
    negative, embeds = encode(adapter, "a cat", "a dog")
    expected, expected_negative = kandinsky.prior_pipe("a cat", negative_prompt="a dog", generator=prior_seeded(),
                                                       return_dict=False)
    assert torch.equal(embeds, expected) and torch.equal(negative, expected_negative)
    cond = adapter.encode_prompt("a cat", "a dog", adapter.guidance(1.0), (32, 32))
    assert torch.equal(image_embeds(cond), expected)  # without guidance only the positive branch is run
    assert cond.settings["negative_image_embeds"] == "prior's unconditional branch (negative prompt)"


def test_the_edits_generator_drives_the_prior_when_passed(kandinsky):
    """The editor does not pass one today; if it does, the prior draws from it as the combined pipeline."""
    adapter = Editor.from_pipe(kandinsky).adapter
    cond = adapter.encode_prompt("a cat", None, adapter.guidance(1.0), (32, 32), (),
                                 generator=torch.Generator().manual_seed(7))
    expected = kandinsky.prior_pipe("a cat", generator=torch.Generator().manual_seed(7), return_dict=False)[0]
    assert torch.equal(image_embeds(cond), expected) and cond.settings["prior_seed"] == "edit generator"


def test_text_only_families_refuse_prompt_images(sd_pipe):
    with pytest.raises(InputError, match="^prompt_images: this sd model is conditioned on text only.*IP-Adapter"):
        Editor.from_pipe(sd_pipe).edit(photo(32, 32), strength_map=box_map(), prompt_images=[(photo(32, 32), 1.0)],
                                       seed=0, **FAST)


# --- the inpaint UNet --------------------------------------------------------------------------------------------


def test_inpaint_input_is_diffusers_layout(kandinsky_inpaint):
    adapter = Editor.from_pipe(kandinsky_inpaint).adapter
    assert adapter.inpaint
    torch.manual_seed(0)
    latents, source, blank = torch.randn(3, 2, 4, 12, 10).unbind(0)
    released = (torch.rand(2, 1, 12, 10) > 0.7).float()
    masked = torch.where(released > 0, blank, source)
    keep = prepare_mask(1 - released)  # diffusers: 1 = keep, grown around the area to inpaint
    expected = torch.cat([latents, source * keep, keep], dim=1)  # latents, masked image, mask
    assert torch.equal(adapter.inpaint_input(latents, released, masked), expected)


def test_inpaint_input_is_what_diffusers_inpaint_pipeline_feeds_its_unet(kandinsky_inpaint):
    adapter = Editor.from_pipe(kandinsky_inpaint).adapter
    source, mask = photo(32, 32, seed=6), box_map(box=(6, 10, 22, 26))  # 1 = inpaint, diffusers' convention
    pipe = KandinskyV22InpaintPipeline(unet=kandinsky_inpaint.unet, movq=kandinsky_inpaint.movq,
                                       scheduler=make_decoder_scheduler("ddim"))
    pipe.set_progress_bar_config(disable=True)
    seen = []
    handle = pipe.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["sample"].clone()), with_kwargs=True
    )
    try:
        embeds = torch.randn(1, 32, generator=torch.Generator().manual_seed(0))
        pipe(image=source, mask_image=mask, image_embeds=embeds, negative_image_embeds=embeds * 0, height=32,
             width=32, num_inference_steps=1, output_type="np")
    finally:
        handle.remove()
    given = seen[0]
    released = F.interpolate(torch.from_numpy(mask)[None, None], size=(16, 16), mode="nearest").expand(2, 1, 16, 16)
    latents = adapter.encode_image(to_tensor(source), None).expand(2, -1, -1, -1)
    masked = torch.where(released > 0, torch.full_like(latents, 9.0), latents)  # the blank's latents never show
    assert torch.allclose(adapter.inpaint_input(given[:, :4], released, masked), given, atol=1e-5)


def test_inpaint_keeps_strength_zero_pixels_and_edits(kandinsky_inpaint):
    editor = Editor.from_pipe(kandinsky_inpaint)
    source, m = photo(32, 32, seed=1), box_map(value=0.6)
    m[10:20, 10:20] = 1.0
    exemplar = Exemplar(photo(32, 32, seed=2), box_map(box=(12, 12, 18, 18)))
    result = editor.edit(source, strength_map=m, exemplars=[exemplar], prompt="a hat", seed=5, **FAST)
    out, src = pixels_of(result), np.asarray(source)
    assert np.array_equal(out[m == 0], src[m == 0])
    assert not np.array_equal(out[m > 0], src[m > 0])
    assert result.metadata["model_calls"] == result.metadata["steps_run"]


# --- loading and the command line --------------------------------------------------------------------------------


def test_saved_pipeline_loads_back_offline(kandinsky_folder):
    pipe = load_pipeline(str(kandinsky_folder), local_files_only=True, **CPU)
    assert type(pipe).__name__ == "KandinskyV22Img2ImgCombinedPipeline"
    editor = Editor.from_pretrained(str(kandinsky_folder), device="cpu", local_files_only=True)
    assert editor.adapter.family == "kandinsky" and editor.adapter.native_size == 32
    source, m = photo(32, 32, seed=3), box_map()
    result = editor.edit(source, strength_map=m, prompt="a cat", seed=1, **FAST)
    assert np.array_equal(pixels_of(result)[m == 0], np.asarray(source)[m == 0])


def test_a_decoder_alone_loads_with_the_prior_beside_it(kandinsky, kandinsky_folder, tmp_path, monkeypatch):
    """The hub's kandinsky-2-2-decoder holds the decoder only: loading it brings in `prior_repo`."""
    decoder = KandinskyV22Img2ImgPipeline(unet=kandinsky.unet, scheduler=kandinsky.scheduler, movq=kandinsky.movq)
    decoder.save_pretrained(tmp_path / "decoder", safe_serialization=True)
    KandinskyV22PriorPipeline(**kandinsky.prior_pipe.components).save_pretrained(tmp_path / "prior",
                                                                                 safe_serialization=True)
    monkeypatch.setattr(KandinskyV22Adapter, "prior_repo", str(tmp_path / "prior"))
    editor = Editor.from_pretrained(str(tmp_path / "decoder"), device="cpu", local_files_only=True)
    assert type(editor.adapter.pipe).__name__ == "KandinskyV22Img2ImgCombinedPipeline"
    source = photo(32, 32, seed=3)
    loaded = editor.edit(source, strength_map=box_map(), prompt="a cat", seed=1, **FAST)
    # the same weights saved as one combined pipeline give the same pixels
    combined = Editor.from_pretrained(str(kandinsky_folder), device="cpu", local_files_only=True)
    expected = combined.edit(source, strength_map=box_map(), prompt="a cat", seed=1, **FAST)
    assert np.array_equal(pixels_of(loaded), pixels_of(expected))


def test_a_missing_prior_names_the_prior_to_download(kandinsky, tmp_path, monkeypatch):
    decoder = KandinskyV22Img2ImgPipeline(unet=kandinsky.unet, scheduler=kandinsky.scheduler, movq=kandinsky.movq)
    decoder.save_pretrained(tmp_path / "decoder", safe_serialization=True)
    monkeypatch.setattr(KandinskyV22Adapter, "prior_repo", "someone/not-a-real-prior-xyz")
    with pytest.raises(InputError, match="hf download someone/not-a-real-prior-xyz"):
        load_pipeline(str(tmp_path / "decoder"), local_files_only=True, **CPU)


@pytest.mark.parametrize("pipe_name", ["kandinsky", "kandinsky_inpaint"])
def test_any_combined_pipeline_becomes_the_one_for_its_unet(request, pipe_name):
    from diffusers import KandinskyV22CombinedPipeline

    pipe = request.getfixturevalue(pipe_name)
    editor = Editor.from_pipe(KandinskyV22CombinedPipeline(**pipe.components))  # text-to-image combined
    assert type(editor.adapter.pipe) is type(pipe) and editor.adapter.pipe.unet is pipe.unet


def test_from_pipe_needs_the_prior(kandinsky):
    decoder = KandinskyV22Img2ImgPipeline(unet=kandinsky.unet, scheduler=kandinsky.scheduler, movq=kandinsky.movq)
    with pytest.raises(InputError, match="needs its prior"):
        Editor.from_pipe(decoder)
    combined = combined_pipeline(decoder, kandinsky.prior_pipe)
    assert Editor.from_pipe(combined).adapter.pipe.prior_prior is kandinsky.prior_prior


def test_edit_from_the_command_line(kandinsky_folder, tmp_path):
    source, where, cue, out = (tmp_path / n for n in ("source.png", "where.png", "cue.png", "out.png"))
    photo(36, 28, seed=1).save(source)
    Image.fromarray((box_map(36, 28, box=(4, 4, 20, 20)) * 255).astype(np.uint8)).save(where)
    photo(32, 32, seed=9).save(cue)
    code = main(["edit", str(source), "--model", str(kandinsky_folder), "--map", str(where), "--steps", "4",
                 "-o", str(out), "--seed", "0", "-q", "--prompt", "a cat", "--prompt-image", f"{cue}:0.5"])
    assert code == 0
    with Image.open(out) as image:
        info, written = dict(image.info), np.asarray(image.convert("RGB"))
    metadata = json.loads(info["pixels"])
    assert metadata["family"] == "kandinsky" and metadata["prompt_images"][0]["weight"] == 0.5
    editor = Editor.from_pretrained(str(kandinsky_folder), device="cpu", local_files_only=True)
    api = editor.edit(str(source), strength_map=str(where), prompt="a cat", seed=0,
                                           prompt_images=[(str(cue), 0.5)], num_inference_steps=4)
    assert np.array_equal(written, pixels_of(api))


def test_prompt_images_in_a_spec_file_and_a_batch_row_equal_the_flag(kandinsky_folder, tmp_path, monkeypatch):
    import yaml

    monkeypatch.chdir(tmp_path)
    photo(36, 28, seed=1).save("source.png")
    Image.fromarray((box_map(36, 28, box=(4, 4, 20, 20)) * 255).astype(np.uint8)).save("where.png")
    photo(32, 32, seed=9).save("cue.png")
    model = ["--model", str(kandinsky_folder), "-q"]
    assert main(["edit", "source.png", "--map", "where.png", "--steps", "4", "--seed", "0", "--prompt", "a cat",
                 "--prompt-image", "cue.png:0.5", "-o", "flag.png", *model]) == 0
    edit = {"map": "where.png", "steps": 4, "seed": 0, "prompt": "a cat",
            "prompt_images": [{"image": "cue.png", "weight": 0.5}]}
    Path("spec.yaml").write_text(yaml.safe_dump({"source": "source.png", "edits": [edit]}))
    assert main(["edit", "--spec", "spec.yaml", "-o", "spec.png", *model]) == 0
    Path("rows.jsonl").write_text(json.dumps({"source": "source.png", **edit, "output": "row.png"}) + "\n")
    assert main(["batch", "rows.jsonl", "-o", "batch", *model]) == 0
    expected = np.asarray(Image.open("flag.png").convert("RGB"))
    for written in ("spec.png", "batch/row.png"):
        assert np.array_equal(np.asarray(Image.open(written).convert("RGB")), expected), written
    assert json.loads(Image.open("batch/row.png").info["pixels"])["prompt_images"][0]["weight"] == 0.5
    Path("bad.yaml").write_text(yaml.safe_dump(
        {"source": "source.png", "edits": [{**edit, "prompt_images": [{"image": "cue.png", "weight": "half"}]}]}))
    with pytest.raises(InputError, match=r"edits\[0\]\.prompt_images\[0\]\.weight: expected number"):
        load_spec("bad.yaml")
