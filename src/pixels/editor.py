"""`Editor`: load a model once, then make PIXELS edits with it."""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from . import __version__
from .adapters import Adapter, adapter_class, adapter_for
from .errors import InputError, NonFiniteError, ResourceError, short
from .images import ImageLike, load_image, load_map, to_pil, to_tensor
from .loading import load_pipeline, resolve_device, resolve_dtype
from .crop import crop_around, resize_map as _resize_map
from .loop import Stage, Surgery, blend_into_source, combine_grafts, denoise, step_kwargs
from .limits import (
    GUIDANCE_RANGE, MAX_CROP_RESIZE, MAX_MARGIN, MAX_PIXELS, MAX_STEPS, MAX_TEXT, Limits, check_memory, finite,
)
from .memory import MemoryOptions
from .placement import FITS, check_box, place, region_box
from .prompt_images import load_prompt_images
from .schedule import first_needed_step, to_latent_map
from .schedulers import scheduler_name, skipping_is_exact

MODES = ("paper", "blend")
PRESERVE = ("exact", "none")
SKIP_STEPS = ("auto", "always", "never")
DEFAULT_SWITCH = 0.8  # base-to-refiner hand-off: the share of the schedule the base model runs
EXEMPLAR_ENCODE = ("full", "region")
ENCODE_MARGIN = 64  # pixels of context around an exemplar's region with exemplar_encode="region"


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
    skip_steps: str = "auto"  # skip model calls while every pixel is pinned: auto (when exact), always, never
    crop: str | tuple[int, int, int, int] | None = None  # "auto": diffuse only around the edit; or (x, y, w, h)
    crop_margin: int = 32  # pixels of context kept around the edited area with crop="auto"
    crop_resize: int | str | None = None  # diffuse the crop with its longer side at N pixels, or "native"
    switch_at: float | None = None  # with a refiner: share of the schedule the base runs (default 0.8)
    exemplar_encode: str = "full"  # "region": encode only around each exemplar's edited area (faster, approximate)

    def validate(self) -> None:
        def number(name: str, value: Any) -> float:
            if not isinstance(value, (int, float)) or (result := finite(value)) is None:
                raise InputError(f"{name}: expected a finite number, got {short(value)}")
            return result

        def integer(name: str, value: Any, low: int, high: int) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InputError(f"{name}: expected an integer in [{low}, {high}], got {short(value)}")
            return value

        integer("num_inference_steps", self.num_inference_steps, 1, MAX_STEPS)
        if not 0.0 < number("strength", self.strength) <= 1.0:
            raise InputError(f"strength: must lie in (0, 1], got {self.strength!r}")
        if self.denoising_start is not None and not 0.0 < number("denoising_start", self.denoising_start) < 1.0:
            raise InputError(f"denoising_start: must lie in (0, 1), got {self.denoising_start!r}")
        low, high = GUIDANCE_RANGE
        if not low <= number("guidance_scale", self.guidance_scale) <= high:
            raise InputError(f"guidance_scale: must lie in [{low:g}, {high:g}], got {self.guidance_scale!r}")
        if not 0.0 <= number("eta", self.eta) <= 1.0:
            raise InputError(f"eta: must lie in [0, 1], got {self.eta!r}")
        for name in ("prompt", "negative_prompt"):
            check_text(name, getattr(self, name))
        if self.mode not in MODES:
            raise InputError(f"mode: unknown mode {short(self.mode)}; choose one of {', '.join(MODES)}")
        if self.preserve not in PRESERVE:
            raise InputError(f"preserve: unknown value {short(self.preserve)}; choose one of {', '.join(PRESERVE)}")
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise InputError(f"scheduler: expected a name, got {short(self.scheduler)}")
        scheduler_name(self.scheduler)
        if self.skip_steps not in SKIP_STEPS:
            raise InputError(
                f"skip_steps: unknown value {short(self.skip_steps)}; choose one of {', '.join(SKIP_STEPS)}"
            )
        if self.crop is not None and self.crop != "auto":
            box = self.crop
            if isinstance(box, (str, bytes)) or not isinstance(box, Sequence) or len(box) != 4 or any(
                isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in box
            ) or box[2] < 1 or box[3] < 1:
                raise InputError(f"crop: expected 'auto', None or an (x, y, w, h) box of integers, got {short(box)}")
        integer("crop_margin", self.crop_margin, 0, MAX_MARGIN)
        if self.crop_resize not in (None, "native"):
            if isinstance(self.crop_resize, bool) or not isinstance(self.crop_resize, int) \
                    or not 8 <= self.crop_resize <= MAX_CROP_RESIZE:
                raise InputError(
                    f"crop_resize: expected 'native' or an integer in [8, {MAX_CROP_RESIZE}],"
                    f" got {short(self.crop_resize)}"
                )
        if self.exemplar_encode not in EXEMPLAR_ENCODE:
            raise InputError(
                f"exemplar_encode: unknown value {short(self.exemplar_encode)};"
                f" choose one of {', '.join(EXEMPLAR_ENCODE)}"
            )
        if self.switch_at is not None and not 0.0 < number("switch_at", self.switch_at) < 1.0:
            raise InputError(f"switch_at: must lie in (0, 1), got {self.switch_at!r}")


def check_seed(seed: Any) -> None:
    """None (a random seed is drawn and recorded) or an integer in [0, 2**64)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64):
        raise InputError(f"seed: expected an integer in [0, 2**64), got {short(seed)}")


def check_text(name: str, value: Any) -> None:
    """A prompt: a string of valid Unicode (no lone surrogates from undecodable bytes), of bounded length."""
    if not isinstance(value, str):
        raise InputError(f"{name}: expected a string, got {short(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{name}: not valid UTF-8 text ({short(value)})") from None
    if len(value) > MAX_TEXT:
        raise InputError(f"{name}: {len(value)} characters, more than the limit of {MAX_TEXT}")


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


def _out_of_memory(adapter: Adapter, error: BaseException) -> ResourceError:
    return ResourceError(
        f"memory: the edit ran out of memory on {adapter.device.type} ({type(error).__name__}); nothing was"
        " written. Try crop='auto' (--crop auto), a smaller source, VAE tiling (--vae-tiling), attention slicing"
        " or, on a GPU, --cpu-offload model"
    )


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
    max_pixels: int = MAX_PIXELS,
) -> _Inputs:
    """Load and check every image and map (no model needed): all input errors surface here."""
    image, _ = load_image(source, name="source", max_pixels=max_pixels)
    size = image.size
    notes: list[str] = []
    if isinstance(exemplars, Exemplar) or not isinstance(exemplars, Sequence):
        raise InputError(f"exemplars: expected a list of Exemplar, got {type(exemplars).__name__}")
    images, maps, boxes = [], [], []
    for k, exemplar in enumerate(exemplars):
        name = f"exemplars[{k}]"
        if not isinstance(exemplar, Exemplar):
            raise InputError(f"{name}: expected an Exemplar, got {type(exemplar).__name__}")
        picture, alpha = load_image(exemplar.image, name=name, max_pixels=max_pixels)
        if exemplar.fit not in FITS:
            raise InputError(f"{name}.fit: unknown fit {exemplar.fit!r}; choose one of {', '.join(FITS)}")
        m = None
        if exemplar.strength_map is not None:
            m, map_notes = load_map(exemplar.strength_map, name=f"{name}.strength_map", size=size, invert=invert_map,
                                    max_pixels=max_pixels)
            notes += map_notes
        box = None if exemplar.box is None else check_box(exemplar.box, f"{name}.box", size, max_pixels)
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
        m, map_notes = load_map(strength_map, name="strength_map", size=size, invert=invert_map, max_pixels=max_pixels)
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


def crop_inputs(inputs: _Inputs, box: tuple[int, int, int, int]) -> _Inputs:
    """The part of every image and map inside `box` (x, y, w, h)."""
    x, y, w, h = box

    def cut(picture: Image.Image) -> Image.Image:
        return picture.crop((x, y, x + w, y + h))

    return _Inputs(
        cut(inputs.source), [cut(e) for e in inputs.exemplars],
        [m[y:y + h, x:x + w] for m in inputs.exemplar_maps], inputs.strength[y:y + h, x:x + w],
        inputs.labels, inputs.notes,
    )


def _pad(array: np.ndarray, multiple: int) -> np.ndarray:
    """Edge-pad (H, W, ...) at the bottom and right up to a multiple: no border pixel is cropped away."""
    h, w = array.shape[:2]
    pad = ((0, -h % multiple), (0, -w % multiple)) + ((0, 0),) * (array.ndim - 2)
    return np.pad(array, pad, mode="edge")


class Editor:
    """A loaded diffusion model ready for PIXELS edits, optionally with a refiner for the last steps."""

    def __init__(self, adapter: Adapter, model_id: str | None = None, refiner: Adapter | None = None,
                 refiner_id: str | None = None, limits: Limits | None = None) -> None:
        self.adapter = adapter
        self.limits = limits or Limits()  # input sizes and the memory check, enforced before any model work
        self.model_id = model_id or getattr(adapter.pipe, "name_or_path", None) or type(adapter.pipe).__name__
        self.refiner = None
        self.refiner_id = None
        if refiner is not None:
            self.set_refiner(refiner, refiner_id)

    def set_refiner(self, refiner: Adapter | None, refiner_id: str | None = None) -> None:
        """Hand the last part of every schedule to `refiner` (None removes it); both share one latent space."""
        if refiner is not None:
            base = self.adapter
            if not (base.hands_over and refiner.hands_over):
                flow = base.family if not base.hands_over else refiner.family
                raise InputError(f"refiner: {flow} models run the whole schedule alone; no base-to-refiner hand-off")
            same_space = base.family == refiner.family and base.vae_scale_factor == refiner.vae_scale_factor \
                and base.latent_channels == refiner.latent_channels
            if not same_space:
                raise InputError(
                    f"refiner: a {refiner.family} model cannot continue a {base.family} model's latents; the"
                    " refiner must share the base model's latent space (e.g. SDXL base with SDXL refiner)"
                )
        self.refiner = refiner
        self.refiner_id = None if refiner is None else (
            refiner_id or getattr(refiner.pipe, "name_or_path", None) or type(refiner.pipe).__name__
        )

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        *,
        refiner: str | None = None,
        memory: MemoryOptions | None = None,
        allow_unsafe_pickle: bool = False,
        local_files_only: bool | None = None,
        config: str | None = None,
        limits: Limits | None = None,
    ) -> Editor:
        """Load from a hub id, a local diffusers folder or a single .safetensors checkpoint.

        refiner: a second model (SDXL refiner) for the end of the schedule; it reuses the base model's
        VAE and second text encoder. memory: memory-saving options (attention slicing, offload, ...).
        """
        dev = resolve_device(device)
        memory = memory or MemoryOptions()
        memory.validate(dev)
        # "auto" on a GPU: each family's published precision (fp16; bf16 for SD3/Flux); fp32 on the CPU
        auto_gpu = isinstance(dtype, str) and dtype.lower() == "auto" and dev.type == "cuda"
        load = partial(
            load_pipeline, device=memory.load_device(dev), dtype=None if auto_gpu else resolve_dtype(dtype, dev),
            allow_unsafe_pickle=allow_unsafe_pickle, local_files_only=local_files_only,
        )
        pipe = memory.apply(load(model, config=config), dev)
        refiner_adapter = None
        if refiner is not None:
            shared = {name: getattr(pipe, name) for name in ("vae", "text_encoder_2") if getattr(pipe, name, None)}
            refiner_adapter = adapter_for(memory.apply(load(refiner, components=shared, name="refiner"), dev))
        return cls(adapter_for(pipe), model_id=str(model), refiner=refiner_adapter,
                   refiner_id=None if refiner is None else str(refiner), limits=limits)

    @classmethod
    def from_pipe(cls, pipe, refiner=None, memory: MemoryOptions | None = None, limits: Limits | None = None) -> Editor:
        """Reuse the components of already loaded diffusers pipelines (no copy, no reload)."""
        def wrap(p):
            family = adapter_class(type(p).__name__, getattr(p, "name_or_path", None) or type(p).__name__)
            prepared = family.prepare(p)
            if memory is not None:
                memory.validate(prepared._execution_device)
                memory.apply(prepared, prepared._execution_device)
            return adapter_for(prepared)

        return cls(wrap(pipe), refiner=None if refiner is None else wrap(refiner), limits=limits)

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
        skip_steps: str = "auto",
        crop: str | tuple[int, int, int, int] | None = None,
        crop_margin: int = 32,
        crop_resize: int | str | None = None,
        switch_at: float | None = None,
        exemplar_encode: str = "full",
        prompt_images: Sequence[tuple[ImageLike, float]] = (),
        on_step: Callable[[int, int], None] | None = None,
    ) -> EditResult:
        """Edit `source`: each exemplar is grafted where its map is 1 and every pixel is released by its
        strength (white = full edit, black = kept bit-exact). The README explains the rule and the modes."""
        # 1. Check inputs
        settings = EditSettings(
            prompt=prompt, negative_prompt=negative_prompt, num_inference_steps=num_inference_steps,
            strength=strength, denoising_start=denoising_start, guidance_scale=guidance_scale,
            scheduler=scheduler, mode=mode, invert_map=invert_map, preserve=preserve, eta=eta,
            skip_steps=skip_steps, crop=crop, crop_margin=crop_margin, crop_resize=crop_resize, switch_at=switch_at,
            exemplar_encode=exemplar_encode,
        )
        settings.validate()
        if switch_at is not None and self.refiner is None:
            raise InputError("switch_at: this editor has no refiner to switch to; load one with refiner=...")
        if generator is not None and seed is not None:
            raise InputError("seed: pass either seed or generator, not both")
        check_seed(seed)
        if generator is None:
            seed = secrets.randbits(32) if seed is None else seed
            generator = torch.Generator("cpu").manual_seed(seed)
        inputs = prepare_inputs(source, exemplars, strength_map, invert_map, self.limits.max_pixels)
        image_prompts = load_prompt_images(prompt_images, self.limits.max_pixels)
        for note in inputs.notes:
            warnings.warn(note, stacklevel=2)

        # 2. Crop to the edited area (optional): the rest of the frame is the source, untouched
        src = np.asarray(inputs.source)
        height, width = src.shape[:2]
        box = self._crop_box(settings, inputs.strength)
        work = inputs if box is None else crop_inputs(inputs, box)
        scale_to = None if box is None else self._crop_scale(settings.crop_resize, box)

        # 3. Diffuse
        try:
            out, details = self._diffuse(work, settings, generator, image_prompts, scale_to, on_step,
                                         crop_hint=box is None and settings.crop is None)
        except (MemoryError, torch.cuda.OutOfMemoryError) as error:
            raise _out_of_memory(self.adapter, error) from None
        except RuntimeError as error:
            if "can't allocate memory" not in str(error) and "out of memory" not in str(error).lower():
                raise
            raise _out_of_memory(self.adapter, error) from None

        # 4. Paste back: the crop into the frame (the rest is the source), then the kept pixels
        if box is not None:
            x, y, w, h = box
            frame = src.copy()
            frame[y:y + h, x:x + w] = out
            out = frame
        if settings.preserve == "exact":
            out = np.where((inputs.strength == 0)[..., None], src, out)

        metadata = {
            **asdict(settings),
            "crop": None if settings.crop is None else (settings.crop if isinstance(settings.crop, str)
                                                        else list(settings.crop)),
            "scheduler": settings.scheduler or "default",
            "seed": seed,
            "model": self.model_id,
            "family": self.adapter.family,
            **details,
            "size": [width, height],
            "crop_box": None if box is None else list(box),
            **inputs.labels,
            "prompt_images": [{"image": _label(p), "weight": float(w)} for p, w in prompt_images],
            "notes": inputs.notes,
            "pixels_version": __version__,
        }
        return EditResult(Image.fromarray(out), metadata, inputs.strength, inputs.exemplars, inputs.exemplar_maps)

    # -- pieces of an edit -------------------------------------------------------------------
    def _crop_box(self, settings: EditSettings, strength: np.ndarray) -> tuple[int, int, int, int] | None:
        """The (x, y, w, h) area to diffuse, or None for the whole frame."""
        if settings.crop is None:
            return None
        size = (strength.shape[1], strength.shape[0])
        if settings.crop == "auto":
            edited = region_box(strength)
            if edited is None:
                return None  # nothing is edited: the full frame is as cheap as any crop
            return crop_around(edited, settings.crop_margin, size, self.adapter.size_multiple)
        x, y, w, h = check_box(settings.crop, "crop", size, self.limits.max_pixels)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, size[0]), min(y + h, size[1])
        if (strength[:y0].any() or strength[y1:].any() or strength[:, :x0].any() or strength[:, x1:].any()):
            raise InputError(f"crop: {tuple(settings.crop)!r} cuts through the edited area; give a larger box")
        return x0, y0, x1 - x0, y1 - y0

    def _crop_scale(self, resize: int | str | None, box: tuple[int, int, int, int]) -> tuple[int, int] | None:
        """(W, H) the crop is resized to before diffusing, or None to diffuse it at its own size."""
        if resize is None:
            return None
        longest = self.adapter.native_size if resize == "native" else resize
        w, h = box[2], box[3]
        multiple = self.adapter.size_multiple
        scale = longest / max(w, h)
        scaled = tuple(max(multiple, round(side * scale / multiple) * multiple) for side in (w, h))
        if scaled[0] * scaled[1] > self.limits.max_pixels:
            raise InputError(
                f"crop_resize: {resize!r} makes the {w}x{h} crop {scaled[0]}x{scaled[1]}, more than the limit of"
                f" {self.limits.max_pixels:,} pixels"
            )
        return scaled

    def _encode_region(
        self, settings: EditSettings, strength: np.ndarray, frame: tuple[int, int]
    ) -> tuple[int, int, int, int] | None:
        """With exemplar_encode="region": the box of the padded frame (H, W) to encode for an exemplar whose
        map is `strength`: its edited area with ENCODE_MARGIN pixels of context. None: the whole frame."""
        edited = region_box(strength) if settings.exemplar_encode == "region" else None
        if edited is None:
            return None
        x, y, w, h = crop_around(edited, ENCODE_MARGIN, (frame[1], frame[0]), 1)
        f = self.adapter.vae_scale_factor  # on the latent grid: the padded frame is a multiple of f
        x0, y0, x1, y1 = x // f * f, y // f * f, -(-(x + w) // f) * f, -(-(y + h) // f) * f
        return None if (x0, y0, x1, y1) == (0, 0, frame[1], frame[0]) else (x0, y0, x1 - x0, y1 - y0)

    def _stages(
        self, settings: EditSettings, generator: torch.Generator, latent_size: tuple[int, int], frame: tuple[int, int],
        image_prompts: list[tuple[Image.Image, float]],
    ) -> list[Stage]:
        """The models that run the schedule: the base model, then the refiner from `switch_at` on."""
        def stage(adapter: Adapter, **truncation) -> Stage:
            sched = adapter.make_scheduler(settings.scheduler)
            timesteps = adapter.timesteps(sched, settings.num_inference_steps, settings.strength,
                                          latent_size=latent_size, **truncation)
            guidance = adapter.guidance(settings.guidance_scale, sched)
            adapter.check_prompt_images(image_prompts)
            cond = adapter.encode_prompt(settings.prompt, settings.negative_prompt, guidance, frame, image_prompts)
            return Stage(adapter, sched, timesteps, cond, guidance, step_kwargs(sched, generator, settings.eta))

        if self.refiner is None:
            return [stage(self.adapter, denoising_start=settings.denoising_start)]
        switch = DEFAULT_SWITCH if settings.switch_at is None else settings.switch_at
        base = stage(self.adapter, denoising_start=settings.denoising_start, denoising_end=switch)
        if len(base.timesteps) == 0:  # the edit starts after the switch: the refiner runs all of it
            return [stage(self.refiner, denoising_start=settings.denoising_start)]
        start = switch if settings.denoising_start is None else max(switch, settings.denoising_start)
        return [base, stage(self.refiner, denoising_start=start)]

    def _diffuse(
        self, inputs: _Inputs, settings: EditSettings, generator: torch.Generator,
        image_prompts: list[tuple[Image.Image, float]], scale_to: tuple[int, int] | None,
        on_step: Callable[[int, int], None] | None, crop_hint: bool = False,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Run the model on `inputs` (the frame, or a crop of it); returns (H, W, 3) uint8 and metadata."""
        adapter = self.adapter
        device, dtype = adapter.device, adapter.dtype
        f, multiple = adapter.vae_scale_factor, adapter.size_multiple
        src = np.asarray(inputs.source)
        height, width = src.shape[:2]
        pictures = [src] + [np.asarray(e) for e in inputs.exemplars]
        strength, maps = inputs.strength, inputs.exemplar_maps
        if scale_to is not None:
            pictures = [np.asarray(Image.fromarray(p).resize(scale_to, Image.LANCZOS)) for p in pictures]
            strength, *maps = [_resize_map(m, scale_to) for m in [strength, *maps]]

        # Pad to the model's size multiple and build the latent keep map and graft masks
        padded = [_pad(p, multiple) for p in pictures]
        latent_size = (padded[0].shape[0] // f, padded[0].shape[1] // f)
        keep = to_latent_map(_pad(1.0 - strength, multiple), latent_size).to(device)
        # keep = 1 - m is resized (as the reference resizes its keep map); the graft is where it is exactly 0
        exemplar_keeps = [to_latent_map(_pad(1.0 - m, multiple), latent_size).to(device) for m in maps]
        graft_weights = [(~(k > 0)).to(dtype) for k in exemplar_keeps]

        # Timesteps (img2img truncation) on fresh schedulers, one per stage, checked before any model work
        if self.limits.check_memory:
            frame = padded[0].shape[:2]
            crop = None
            if crop_hint and (edited := region_box(strength)) is not None:
                crop = crop_around(edited, settings.crop_margin, (frame[1], frame[0]), multiple)[2:][::-1]
            batch = 2 if adapter.guidance(settings.guidance_scale).enabled else 1
            tiled = bool(getattr(adapter.autoencoder, "use_tiling", False))
            check_memory(adapter, frame, batch, tiled, crop_frame=crop, device=device)
        stages = self._stages(settings, generator, latent_size, padded[0].shape[:2], image_prompts)

        # One VAE encode and one noise draw per image, source first (diffusers' order)
        def encode(picture: np.ndarray, region: tuple[int, int, int, int] | None = None):
            if region is None:
                latents = adapter.encode_image(to_tensor(Image.fromarray(picture)), generator)
            else:  # only the area the exemplar's latents are used in, on a canvas of source latents
                x, y, w, h = region
                part = adapter.encode_image(to_tensor(Image.fromarray(picture[y:y + h, x:x + w])), generator)
                latents = surgery.source.clone()
                latents[..., y // f:(y + h) // f, x // f:(x + w) // f] = part
            return latents, randn_tensor(latents.shape, generator=generator, device=device, dtype=latents.dtype)

        surgery = Surgery(*encode(padded[0]), keep=keep)
        if len(padded) > 1:
            regions = [self._encode_region(settings, m, padded[0].shape[:2]) for m in maps]
            encoded = [encode(p, region) for p, region in zip(padded[1:], regions)]
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
        if any(s.adapter.inpaint for s in stages):
            # the masked source of inpainting models: blank (mid-gray) where released, encoded after all draws
            surgery.blank = adapter.blank_latents(padded[0].shape[:2], generator)

        # Skip the model calls whose output the next pin overwrites
        num_steps = sum(len(s.timesteps) for s in stages)
        exact = all(skipping_is_exact(s.scheduler, settings.eta) for s in stages)
        skip = settings.skip_steps == "always" or (settings.skip_steps == "auto" and exact)
        start = first_needed_step(keep, num_steps) if skip else 0

        latents, calls = denoise(stages, surgery, start, on_step)

        # Decode with the last model, crop the padding, undo the resize
        decoded = stages[-1].adapter.decode(latents)
        if not bool(torch.isfinite(decoded).all()):
            raise NonFiniteError(
                f"the decoded image has NaN or infinite values ({str(decoded.dtype).removeprefix('torch.')} decoder);"
                " nothing was written. Use fp32 (--dtype fp32) or bf16 if half precision overflows"
            )
        out = np.array(to_pil(decoded))[: padded[0].shape[0], : padded[0].shape[1]]
        out = out[: pictures[0].shape[0], : pictures[0].shape[1]]
        if scale_to is not None:
            out = np.asarray(Image.fromarray(out).resize((width, height), Image.LANCZOS))
        details = {
            "scheduler_class": type(stages[0].scheduler).__name__,
            **stages[0].cond.settings,
            "dtype": str(dtype).removeprefix("torch."),
            "refiner_model": self.refiner_id,
            "switch_steps": len(stages[0].timesteps) if len(stages) > 1 else None,
            "steps_run": num_steps,
            "model_calls": calls,
            "skipped_steps": start,
            "diffused_size": [padded[0].shape[1], padded[0].shape[0]],
        }
        return out, details
