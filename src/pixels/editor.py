"""`Editor`: load a model once, then make PIXELS edits with it."""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from . import __version__
from .adapters import Adapter, adapter_class, adapter_for
from .errors import InputError
from .images import ImageLike, load_image, load_map, to_pil, to_tensor
from .loading import load_pipeline, resolve_device, resolve_dtype
from .loop import Surgery, blend_into_source, combine_grafts, denoise, step_kwargs
from .placement import FITS, check_box, place, region_box
from .schedule import img2img_timesteps, to_latent_map
from .schedulers import make_scheduler, scheduler_name

MODES = ("paper", "blend")
PRESERVE = ("exact", "none")


@dataclass(frozen=True)
class Exemplar:
    """A reference image and where it goes: its strength map (white = graft and edit, black = keep).

    Placement: with `box` the exemplar is fitted into that box; without one, an exemplar of the
    source's size is taken as already aligned (the reference behaviour), and one of another size is
    fitted into the bounding box of its map's edited area. The canvas around it is the source.
    """

    image: ImageLike  # PIL image, numpy array or path
    strength_map: ImageLike | None = None  # None: its alpha channel, or else its placed box, is its region
    box: tuple[int, int, int, int] | None = None  # (x, y, w, h) in source pixels
    fit: str = "cover"  # cover: fill the box, cropping; contain: all of it inside; stretch: to the box


@dataclass(frozen=True)
class EditSettings:
    """Every setting of one edit, validated; recorded in the result's metadata."""

    prompt: str = ""  # guides the released pixels; the reference runs use an empty prompt
    negative_prompt: str = ""  # the unconditional branch of classifier-free guidance
    num_inference_steps: int = 50  # length of the full schedule, before truncation by strength
    strength: float = 1.0  # img2img strength: the last int(steps * strength) steps run
    denoising_start: float | None = None  # SDXL-refiner style start in (0, 1); replaces strength
    guidance_scale: float = 7.5  # classifier-free guidance; <= 1 turns it off (one branch)
    scheduler: str | None = None  # None: the model's own; or ddim, euler, euler-a, dpm++2m
    mode: str = "paper"  # "paper": the reference rule; "blend": gray pixels also mix in the exemplar
    invert_map: bool = False  # True: maps use the reference convention, white = keep
    preserve: str = "exact"  # "exact": strength-0 pixels pasted back from the source; "none"
    eta: float = 0.0  # DDIM eta (0 = deterministic DDIM)

    def validate(self) -> None:
        def number(name: str, value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise InputError(f"{name}: expected a number, got {value!r}")
            return float(value)

        if isinstance(self.num_inference_steps, bool) or not isinstance(self.num_inference_steps, int) \
                or self.num_inference_steps < 1:
            raise InputError(f"num_inference_steps: expected an integer >= 1, got {self.num_inference_steps!r}")
        if not 0.0 < number("strength", self.strength) <= 1.0:
            raise InputError(f"strength: must lie in (0, 1], got {self.strength!r}")
        if self.denoising_start is not None and not 0.0 < number("denoising_start", self.denoising_start) < 1.0:
            raise InputError(f"denoising_start: must lie in (0, 1), got {self.denoising_start!r}")
        number("guidance_scale", self.guidance_scale)
        if not 0.0 <= number("eta", self.eta) <= 1.0:
            raise InputError(f"eta: must lie in [0, 1], got {self.eta!r}")
        for name in ("prompt", "negative_prompt"):
            if not isinstance(getattr(self, name), str):
                raise InputError(f"{name}: expected a string, got {getattr(self, name)!r}")
        if self.mode not in MODES:
            raise InputError(f"mode: unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.preserve not in PRESERVE:
            raise InputError(f"preserve: unknown value {self.preserve!r}; choose one of {', '.join(PRESERVE)}")
        scheduler_name(self.scheduler)


@dataclass
class EditResult:
    image: Image.Image  # same size as the source
    metadata: dict[str, Any]  # every setting used, the model, the seed, and notes on conversions
    strength_map: np.ndarray = field(repr=False)  # (H, W) combined strength actually applied
    exemplars: list[Image.Image] = field(default_factory=list, repr=False)  # as placed on the source canvas
    exemplar_maps: list[np.ndarray] = field(default_factory=list, repr=False)  # their (H, W) strength maps


@dataclass
class _Inputs:
    source: Image.Image
    exemplars: list[Image.Image]
    exemplar_maps: list[np.ndarray]  # strength, (H, W) float64 each
    strength: np.ndarray  # combined strength, (H, W) float64
    labels: dict[str, Any]
    notes: list[str]


def _label(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        return str(value)
    return f"<{type(value).__name__}>"


def prepare_inputs(
    source: ImageLike,
    exemplars: Sequence[Exemplar] = (),
    strength_map: ImageLike | None = None,
    invert_map: bool = False,
) -> _Inputs:
    """Load and check every image and map (no model needed): all input errors surface here."""
    image, _ = load_image(source, name="source")
    size = image.size
    notes: list[str] = []
    if isinstance(exemplars, Exemplar) or not isinstance(exemplars, Sequence):
        raise InputError(f"exemplars: expected a list of Exemplar, got {type(exemplars).__name__}")
    images, maps, boxes = [], [], []
    for k, exemplar in enumerate(exemplars):
        name = f"exemplars[{k}]"
        if not isinstance(exemplar, Exemplar):
            raise InputError(f"{name}: expected an Exemplar, got {type(exemplar).__name__}")
        picture, alpha = load_image(exemplar.image, name=name)
        if exemplar.fit not in FITS:
            raise InputError(f"{name}.fit: unknown fit {exemplar.fit!r}; choose one of {', '.join(FITS)}")
        m = None
        if exemplar.strength_map is not None:
            m, map_notes = load_map(exemplar.strength_map, name=f"{name}.strength_map", size=size, invert=invert_map)
            notes += map_notes
        box = None if exemplar.box is None else check_box(exemplar.box, f"{name}.box", size)
        if box is None and picture.size != size and m is not None:
            box = region_box(m)
            if box is not None:
                notes.append(f"{name}: {picture.size[0]}x{picture.size[1]} fitted ({exemplar.fit}) into its map's"
                             f" edited area, box {box}")
        if box is not None:
            picture, coverage = place(image, picture, alpha, box, exemplar.fit)
        else:
            coverage = alpha
            if picture.size != size:
                notes.append(f"{name}: resized from {picture.size[0]}x{picture.size[1]} to {size[0]}x{size[1]}")
                picture = picture.resize(size, Image.LANCZOS)
                if alpha is not None:
                    coverage = np.asarray(Image.fromarray(alpha.astype(np.float32), "F").resize(size), np.float64)
        if m is None:
            if coverage is None:
                raise InputError(
                    f"{name}: no strength_map, no alpha channel and no box: say where the exemplar goes"
                )
            m, _ = load_map((np.clip(coverage, 0, 1) * 255).round().astype(np.uint8), name=f"{name} region", size=size)
            what = "its alpha channel" if exemplar.box is None else "the area it covers in its box"
            notes.append(f"{name}: no strength_map given, {what} is its region")
        images.append(picture)
        maps.append(m)
        boxes.append(box)
    strengths = list(maps)
    if strength_map is not None:
        m, map_notes = load_map(strength_map, name="strength_map", size=size, invert=invert_map)
        notes += map_notes
        strengths.append(m)
    if strengths:
        combined = np.maximum.reduce(strengths) if len(strengths) > 1 else strengths[0]
    else:
        combined = np.ones((size[1], size[0]))  # no map at all: a plain full-frame edit
    labels = {
        "source": _label(source),
        "exemplars": [
            {"image": _label(e.image), "strength_map": _label(e.strength_map), "box": box, "fit": e.fit}
            for e, box in zip(exemplars, boxes)  # box: where it was placed (None: aligned with the source)
        ],
        "strength_map": _label(strength_map),
    }
    return _Inputs(image, images, maps, combined.astype(np.float64), labels, notes)


def _pad(array: np.ndarray, multiple: int) -> np.ndarray:
    """Edge-pad (H, W, ...) at the bottom and right up to a multiple: no border pixel is cropped away."""
    h, w = array.shape[:2]
    pad = ((0, -h % multiple), (0, -w % multiple)) + ((0, 0),) * (array.ndim - 2)
    return np.pad(array, pad, mode="edge")


class Editor:
    """A loaded diffusion model ready for PIXELS edits."""

    def __init__(self, adapter: Adapter, model_id: str | None = None) -> None:
        self.adapter = adapter
        self.model_id = model_id or getattr(adapter.pipe, "name_or_path", None) or type(adapter.pipe).__name__

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        *,
        allow_unsafe_pickle: bool = False,
        local_files_only: bool | None = None,
        config: str | None = None,
    ) -> Editor:
        """Load from a hub id, a local diffusers folder or a single .safetensors checkpoint."""
        dev = resolve_device(device)
        pipe = load_pipeline(
            model, device=dev, dtype=resolve_dtype(dtype, dev), allow_unsafe_pickle=allow_unsafe_pickle,
            local_files_only=local_files_only, config=config,
        )
        return cls(adapter_for(pipe), model_id=str(model))

    @classmethod
    def from_pipe(cls, pipe) -> Editor:
        """Reuse the components of an already loaded diffusers pipeline (no copy, no reload)."""
        family = adapter_class(type(pipe).__name__, getattr(pipe, "name_or_path", None) or type(pipe).__name__)
        return cls(adapter_for(family.prepare(pipe)))

    def edit(
        self,
        source: ImageLike,
        exemplars: Sequence[Exemplar] = (),
        strength_map: ImageLike | None = None,
        prompt: str = "",
        negative_prompt: str = "",
        num_inference_steps: int = 50,
        strength: float = 1.0,
        denoising_start: float | None = None,
        guidance_scale: float = 7.5,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        mode: str = "paper",
        invert_map: bool = False,
        preserve: str = "exact",
        scheduler: str | None = None,
        eta: float = 0.0,
        on_step: Callable[[int, int], None] | None = None,
    ) -> EditResult:
        """Edit `source`: each exemplar is grafted where its map is 1 and every pixel is released by its
        strength (white = full edit, black = kept bit-exact). The README explains the rule and the modes."""
        # 1. Check inputs
        settings = EditSettings(
            prompt=prompt, negative_prompt=negative_prompt, num_inference_steps=num_inference_steps,
            strength=strength, denoising_start=denoising_start, guidance_scale=guidance_scale,
            scheduler=scheduler, mode=mode, invert_map=invert_map, preserve=preserve, eta=eta,
        )
        settings.validate()
        if generator is not None and seed is not None:
            raise InputError("seed: pass either seed or generator, not both")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64):
            raise InputError(f"seed: expected an integer in [0, 2**64), got {seed!r}")
        if generator is None:
            seed = secrets.randbits(32) if seed is None else seed
            generator = torch.Generator("cpu").manual_seed(seed)
        inputs = prepare_inputs(source, exemplars, strength_map, invert_map)
        for note in inputs.notes:
            warnings.warn(note, stacklevel=2)

        adapter = self.adapter
        device, dtype = adapter.device, adapter.dtype
        f, multiple = adapter.vae_scale_factor, adapter.size_multiple

        # 2. Pad to the model's size multiple and build the latent keep map and graft masks
        src = np.asarray(inputs.source)
        height, width = src.shape[:2]
        padded = _pad(src, multiple)
        latent_size = (padded.shape[0] // f, padded.shape[1] // f)
        keep = to_latent_map(_pad(1.0 - inputs.strength, multiple), latent_size).to(device)
        # keep = 1 - m is resized (as the reference resizes its keep map); the graft is where it is exactly 0
        exemplar_keeps = [to_latent_map(_pad(1.0 - m, multiple), latent_size).to(device) for m in inputs.exemplar_maps]
        graft_weights = [(~(k > 0)).to(dtype) for k in exemplar_keeps]

        # 3. Encode the prompt
        guidance = adapter.guidance(settings.guidance_scale)
        cond = adapter.encode_prompt(settings.prompt, settings.negative_prompt, guidance, padded.shape[:2])

        # 4. Timesteps (img2img truncation) on a fresh scheduler
        sched = make_scheduler(adapter.pipe.scheduler, settings.scheduler)
        timesteps = img2img_timesteps(
            sched, settings.num_inference_steps, settings.strength, settings.denoising_start, device
        )

        # 5. One VAE encode and one noise draw per image, source first (diffusers' order)
        def encode(picture: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            latents = adapter.encode_image(to_tensor(Image.fromarray(picture)), generator)
            return latents, randn_tensor(latents.shape, generator=generator, device=device, dtype=latents.dtype)

        surgery = Surgery(*encode(padded), keep=keep)
        if inputs.exemplars:
            encoded = [encode(_pad(np.asarray(e), multiple)) for e in inputs.exemplars]
            exemplar_latents, exemplar_noises = [z for z, _ in encoded], [n for _, n in encoded]
            surgery.graft, surgery.graft_noise, total = combine_grafts(graft_weights, exemplar_latents, exemplar_noises)
            surgery.graft_mask = total > 0
            if settings.mode == "blend":
                # gray pixels are pinned to (and released from) a strength-weighted mix with the exemplars
                weights = [(1 - k).to(dtype) for k in exemplar_keeps]
                mixed, mixed_noise, amount = combine_grafts(weights, exemplar_latents, exemplar_noises)
                surgery.source, surgery.source_noise = blend_into_source(
                    surgery.source, surgery.source_noise, amount.clamp(max=1), mixed, mixed_noise
                )

        # 6. Denoise
        latents, calls = denoise(
            adapter, sched, timesteps, cond, guidance, surgery, step_kwargs(sched, generator, settings.eta), on_step
        )

        # 7. Decode, crop the padding, paste back the kept pixels
        out = np.array(to_pil(adapter.decode(latents)))[:height, :width]
        if settings.preserve == "exact":
            out = np.where((inputs.strength == 0)[..., None], src, out)

        metadata = {
            **asdict(settings),
            "scheduler": settings.scheduler or "default",
            "scheduler_class": type(sched).__name__,
            "seed": seed,
            "model": self.model_id,
            "family": adapter.family,
            **cond.settings,
            "dtype": str(dtype).removeprefix("torch."),
            "size": [width, height],
            **inputs.labels,
            "steps_run": len(timesteps),
            "model_calls": calls,
            "notes": inputs.notes,
            "pixels_version": __version__,
        }
        return EditResult(Image.fromarray(out), metadata, inputs.strength, inputs.exemplars, inputs.exemplar_maps)
