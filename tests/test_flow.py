"""Flow-matching families (SD3 / SD3.5, Flux.1 dev and schnell) on tiny random pipelines, offline.

The same invariants as the UNet families: strength-0 pixels exact, pins at the noised source of
each step, determinism, cost independent of the number of exemplars, exact step skipping, and a
white-map edit equal to diffusers' own img2img pipeline.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import box_map, photo
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from pixels import Editor, Exemplar, InputError
from pixels.adapters import FluxAdapter, StableDiffusion3Adapter, adapter_for
from pixels.cli import main
from pixels.core.release import keep_mask, to_latent_map
from pixels.testing.tiny import build

FLOW_MODELS = ["sd3", "sd3-t5", "flux-dev", "flux-schnell"]
FAST = dict(num_inference_steps=4, guidance_scale=4.0)


@pytest.fixture(scope="session")
def flow_pipes(tiny_pipes):
    return tiny_pipes


@pytest.fixture(params=FLOW_MODELS)
def flow_pipe(request, flow_pipes):
    return flow_pipes(request.param)


def record_calls(editor: Editor) -> tuple[list[dict], torch.utils.hooks.RemovableHandle]:
    """Every keyword argument the transformer is called with, in order (a forward pre-hook)."""
    calls: list[dict] = []

    def hook(module, args, kwargs):
        calls.append({k: v.clone() if torch.is_tensor(v) else v for k, v in kwargs.items()})

    return calls, editor.adapter.denoiser.register_forward_pre_hook(hook, with_kwargs=True)


def unpacked(editor: Editor, hidden_states: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The transformer's input as (B, C, h, w) latents (Flux packs them into 2x2-patch tokens)."""
    if not isinstance(editor.adapter, FluxAdapter):
        return hidden_states
    f = editor.adapter.vae_scale_factor
    return editor.adapter.pipe._unpack_latents(hidden_states, size[0] * f, size[1] * f, f)


# -- adapters and arguments ---------------------------------------------------------------------
def test_adapter_is_chosen_by_pipeline_class(flow_pipe):
    adapter = adapter_for(flow_pipe)
    expected = FluxAdapter if type(flow_pipe).__name__.startswith("Flux") else StableDiffusion3Adapter
    assert type(adapter) is expected and adapter.denoiser is flow_pipe.transformer and not adapter.inpaint
    assert adapter.vae_scale_factor == 2 and adapter.latent_channels == 4
    # Flux packs 2x2 latent cells into a token: its frames must give even latent sides.
    assert adapter.size_multiple == (4 if expected is FluxAdapter else 2)
    assert adapter.native_size == (256 if expected is FluxAdapter else 64)


@pytest.mark.parametrize("name", ["ddim", "euler-a", "dpm++2m", "DPMPP-2M"])
def test_noise_prediction_schedulers_are_refused(flow_pipe, name):
    with pytest.raises(InputError, match=r"^scheduler: .*choose one of default, euler"):
        Editor.from_pipe(flow_pipe).edit(photo(), strength_map=box_map(), scheduler=name, seed=0, **FAST)


def test_euler_is_a_fresh_flow_matching_scheduler_on_the_models_config(flow_pipes):
    own = flow_pipes("flux-dev").scheduler
    adapter = Editor.from_pipe(flow_pipes("flux-dev")).adapter
    for name in (None, "default", "euler", "Euler"):
        scheduler = adapter.make_scheduler(name)
        assert type(scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
        assert scheduler is not own and scheduler.config == own.config


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("sd3", dict(prompt_images=[(photo(), 1.0)]), "prompt_images: this sd3 model is conditioned on text only"),
        ("flux-dev", dict(prompt_images=[(photo(), 1.0)]), "prompt_images: this flux model"),
        ("sd3", dict(denoising_start=0.5), "denoising_start: not supported for flow-matching models"),
        ("flux-schnell", dict(negative_prompt="blurry"), "negative_prompt: Flux models are guidance-distilled"),
    ],
)
def test_unsupported_arguments_are_refused(flow_pipes, name, kwargs, match):
    with pytest.raises(InputError, match=match):
        Editor.from_pipe(flow_pipes(name)).edit(photo(), strength_map=box_map(), seed=0, **{**FAST, **kwargs})


def test_refiner_hand_off_is_refused(flow_pipes):
    with pytest.raises(InputError, match="refiner: sd3 models run the whole schedule alone"):
        Editor.from_pipe(flow_pipes("sd3"), refiner=flow_pipes("sd3-t5"))
    adapter = Editor.from_pipe(flow_pipes("sd3")).adapter
    with pytest.raises(InputError, match="denoising_end: flow-matching models"):
        adapter.timesteps(adapter.make_scheduler(None), 6, 1.0, latent_size=(16, 16), denoising_end=0.5)


def test_check_refuses_pipelines_it_cannot_drive(flow_pipes):
    pipe = flow_pipes("flux-schnell")
    with pytest.raises(InputError, match="needs both a transformer and a vae"):
        FluxAdapter.check(type("FluxPipeline", (), {"transformer": pipe.transformer, "vae": None})())
    with pytest.raises(InputError, match="takes 16 input channels but the VAE's 4 latent channels make 4"):
        StableDiffusion3Adapter.check(pipe)


# -- invariants -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sd3", "flux-dev"])
def test_odd_sizes_keep_every_border_pixel(flow_pipes, name):
    """Frames are padded to the size multiple (4 for the tiny Flux: even latent sides) and cropped back."""
    source = photo(33, 27, seed=5)
    m = np.zeros((27, 33), np.float32)
    m[:, -5:] = 1.0
    result = Editor.from_pipe(flow_pipes(name)).edit(source, strength_map=m, seed=0, **FAST)
    out, src = np.asarray(result.image), np.asarray(source)
    assert result.image.size == (33, 27) and result.metadata["diffused_size"] == [36 if "flux" in name else 34, 28]
    assert np.array_equal(out[:, :-5], src[:, :-5]) and not np.array_equal(out[:, -1], src[:, -1])


def gray_map() -> np.ndarray:
    """Strength 0, 0.3, 0.6 and 1 regions: pixels released at different steps."""
    m = np.zeros((32, 32), np.float32)
    m[4:28, 4:28], m[8:24, 8:24], m[12:20, 12:20] = 0.3, 0.6, 1.0
    return m


@pytest.mark.parametrize("skip_steps", ["never", "auto"])
def test_pinned_latents_are_the_noised_source_of_each_step(flow_pipe, skip_steps):
    """The paper rule on flow models: at step i every pixel with keep > i/K enters the transformer as
    (1 - sigma_i) z_S + sigma_i n_S, sigma_i being the sigma of that very step (also after skipped steps)."""
    editor = Editor.from_pipe(flow_pipe)
    adapter, source, seed = editor.adapter, photo(32, 32, seed=4), 6
    steps, strength, m = 8, 0.75, gray_map() * 0.6  # keep >= 0.4: all pinned up to step 2 of 6, auto skips 2
    calls, handle = record_calls(editor)
    try:
        result = editor.edit(source, strength_map=m, seed=seed, num_inference_steps=steps, strength=strength,
                             guidance_scale=3.0, skip_steps=skip_steps)
    finally:
        handle.remove()
    # The source latents and noise, drawn as the editor draws them: VAE sample, then noise, one generator.
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.from_numpy(np.asarray(source, np.float32) / 255.0).permute(2, 0, 1)[None] * 2.0 - 1.0
    clean = adapter.encode_image(pixels, generator)
    noise = randn_tensor(clean.shape, generator=generator, dtype=clean.dtype)
    scheduler = adapter.make_scheduler(None)
    timesteps = adapter.timesteps(scheduler, steps, strength, latent_size=(16, 16))
    k, begin = len(timesteps), scheduler.begin_index
    assert k == 6 and begin == 2  # int(8 - 8 * 0.75) = 2 steps cut, as diffusers' SD3/Flux get_timesteps
    keep = to_latent_map(1.0 - m, (16, 16))
    first = k - len(calls)
    assert result.metadata["skipped_steps"] == first == (2 if skip_steps == "auto" else 0)
    for i, call in zip(range(first, k), calls):
        sigma = scheduler.sigmas[begin + i]
        expected = (1.0 - sigma) * clean + sigma * noise
        seen = unpacked(editor, call["hidden_states"], (16, 16))
        pinned = keep_mask(keep, i, k).expand_as(expected)
        assert pinned.any()
        for latents in seen:  # both halves of a guided batch
            assert torch.equal(latents[None][pinned], expected[pinned]), i
        flux = isinstance(adapter, FluxAdapter)
        assert torch.equal(call["timestep"], timesteps[i].expand(len(seen)) / (1000 if flux else 1))


def test_step_skipping_is_exact_for_flow_matching_euler(flow_pipe):
    """FlowMatchEuler is first order: skipping the calls made while every pixel is pinned changes nothing."""
    editor = Editor.from_pipe(flow_pipe)
    source, exemplar, m = photo(32, 32, seed=2), photo(32, 32, seed=9), box_map(value=0.3)
    runs = {}
    for skip in ("auto", "never"):
        calls, handle = record_calls(editor)
        try:
            runs[skip] = editor.edit(source, exemplars=[Exemplar(exemplar, strength_map=m)], seed=3, skip_steps=skip,
                                     num_inference_steps=10, guidance_scale=4.0)
        finally:
            handle.remove()
        assert runs[skip].metadata["model_calls"] == len(calls)
    assert np.array_equal(np.asarray(runs["auto"].image), np.asarray(runs["never"].image))
    # keep 0.7 is pinned while 0.7 > i/10, i.e. up to step 6: only the calls from step 6 on matter
    assert runs["auto"].metadata["model_calls"] == 4 < runs["never"].metadata["model_calls"] == 10


def test_guidance_reaches_the_model_as_each_family_takes_it(flow_pipes):
    """SD3: classifier-free guidance, a [negative, positive] batch of two; Flux dev: one branch with the
    scale as an embedding; Flux schnell: one branch, no guidance input."""
    expected = {"sd3": (2, None), "flux-dev": (1, torch.tensor([3.5])), "flux-schnell": (1, None)}
    for name, (batch, scale) in expected.items():
        editor = Editor.from_pipe(flow_pipes(name))
        calls, handle = record_calls(editor)
        try:
            result = editor.edit(photo(), strength_map=box_map(), prompt="a fox", seed=0, num_inference_steps=2,
                                 guidance_scale=3.5)
        finally:
            handle.remove()
        assert {len(call["hidden_states"]) for call in calls} == {batch}
        assert all(torch.equal(call["pooled_projections"][0], call["pooled_projections"][-1]) for call in calls) \
            is (batch == 1)  # the negative branch comes first under guidance
        for call in calls:
            assert (call.get("guidance") is None) if scale is None else torch.equal(call["guidance"], scale)
        assert result.metadata.get("distilled_guidance") == (3.5 if name == "flux-dev" else None)


# -- the same as diffusers ----------------------------------------------------------------------
# -- the command line ---------------------------------------------------------------------------
def text_to_image(pipe):
    """The text-to-image pipeline on the same modules (what hub folders declare)."""
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    cls = FluxPipeline if type(pipe).__name__.startswith("Flux") else StableDiffusion3Pipeline
    return cls(**{k: v for k, v in pipe.components.items() if k in cls._get_signature_keys(cls)[0]})


@pytest.mark.parametrize("name", ["sd3", "sd3-t5", "flux-dev"])
def test_cli_edit_on_saved_pipelines(flow_pipes, tmp_path, name, capsys):
    """`pixels edit` on text-to-image folders as save_pretrained writes them (the hub layout), T5 tokenizer included."""
    folder = tmp_path / name
    text_to_image(flow_pipes(name)).save_pretrained(folder, safe_serialization=True)
    source, where, out = tmp_path / "source.png", tmp_path / "map.png", tmp_path / "out.png"
    photo(40, 30, seed=1).save(source)
    Image.fromarray((box_map(40, 30, box=(4, 4, 20, 20)) * 255).astype(np.uint8)).save(where)
    argv = ["edit", source, "--model", folder, "--map", where, "--steps", "4", "-o", out, "--seed", "0", "-q",
            "--prompt", "a fox", "--guidance", "3.5"]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    with Image.open(out) as image:
        assert image.size == (40, 30)
        metadata = json.loads(image.info["pixels"])
        result, src = np.asarray(image.convert("RGB")), np.asarray(Image.open(source))
    assert metadata["family"] == name.split("-")[0] and metadata["model_calls"] == 4
    # a folder saved without T5 loads back without it (diffusers needs text_encoder_3=None spelled out)
    assert metadata.get("t5_encoder") == {"sd3": False, "sd3-t5": True}.get(name)
    keep = box_map(40, 30, box=(4, 4, 20, 20)) == 0
    assert np.array_equal(result[keep], src[keep]) and not np.array_equal(result[~keep], src[~keep])


def test_gpu_auto_precision_follows_the_family(tmp_path):
    """dtype None (what "auto" means on a GPU) loads flow models in bf16 and the others in fp16."""
    import torch
    from conftest import build_sd

    from pixels.models.loading import load_pipeline

    flux, sd = tmp_path / "flux", tmp_path / "sd"
    build("flux-schnell", tmp_path / "f").save_pretrained(flux, safe_serialization=True)
    build_sd(tmp_path / "s").save_pretrained(sd, safe_serialization=True)
    cpu = torch.device("cpu")
    assert load_pipeline(str(flux), device=cpu, dtype=None).transformer.dtype == torch.bfloat16
    assert load_pipeline(str(sd), device=cpu, dtype=None).unet.dtype == torch.float16
    assert load_pipeline(str(flux), device=cpu, dtype=torch.float32).transformer.dtype == torch.float32
