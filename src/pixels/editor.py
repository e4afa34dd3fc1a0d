"""`Editor`: load a model once, then make PIXELS edits with it.

The editor loads and orchestrates; what an edit is made of lives in `settings`, how its inputs are
read and placed in `inputs`, the preparation of the loop in `prepare`, and the loop in `loop`.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import diffusers
import numpy as np
import torch
from PIL import Image

from . import __version__
from .adapters import Adapter, adapter_class, adapter_for
from .core.control import Control
from .core.crop import crop_around, crop_box, crop_scale
from .core.frame import ImageLike, Inputs, crop_inputs
from .core.loop import denoise
from .core.placement import region_box
from .core.prepare import Prepared, batch_key, denoise_batch, finish, prepare, setting_notes
from .core.settings import EditResult, EditSettings, Exemplar, check_seed, make_settings
from .errors import InputError, PixelsNote, ResourceError
from .inputs.prompt_images import load_prompt_images, prompt_image_labels
from .inputs.read import control_picture, label, prepare_inputs
from .limits import Limits
from .models.estimate import check_memory, cost_note
from .models.extensions import check_scale, load_controlnet, load_ip_adapter, load_lora
from .models.loading import load_pipeline, resolve_device, resolve_dtype
from .models.memory import MemoryOptions


class Editor:
    """A loaded diffusion model ready for PIXELS edits, optionally with a refiner for the last steps."""

    def __init__(self, adapter: Adapter, model_id: str | None = None, refiner: Adapter | None = None,
                 refiner_id: str | None = None, limits: Limits | None = None) -> None:
        self.adapter = adapter
        self.limits = limits or Limits()  # input sizes and the memory check, enforced before any model work
        self.model_id = model_id or getattr(adapter.pipe, "name_or_path", None) or type(adapter.pipe).__name__
        self.refiner: Adapter | None = None
        self.refiner_id: str | None = None
        self.loras: list[dict[str, Any]] = []  # loaded LoRAs: {"lora", "scale", "weight_name"}
        self.ip_adapter: dict[str, Any] | None = None  # the loaded IP-Adapter, for the metadata
        self.controlnet_id: str | None = None
        if refiner is not None:
            self.set_refiner(refiner, refiner_id)

    # -- what extends the model ----------------------------------------------------------------------------
    def load_lora(self, model: str, scale: float = 1.0, *, weight_name: str | None = None,
                  allow_unsafe_pickle: bool = False, local_files_only: bool | None = None) -> None:
        """Add a LoRA (a hub id, a folder or a .safetensors file; diffusers' LoRA loading through peft) at
        `scale`; several add up. Scale 0 leaves the model as it was. Recorded in every result's metadata."""
        scale = check_scale(scale, "lora.scale", -4.0, 4.0)
        name = f"pixels_lora_{len(self.loras)}"
        load_lora(self.adapter, model, name, weight_name=weight_name, allow_unsafe_pickle=allow_unsafe_pickle,
                  local_files_only=local_files_only)
        self.loras.append({"lora": str(model), "scale": scale, "weight_name": weight_name, "adapter": name})
        self.adapter.pipe.set_adapters([lora["adapter"] for lora in self.loras],
                                       adapter_weights=[lora["scale"] for lora in self.loras])

    def load_ip_adapter(self, model: str, weight_name: str, *, subfolder: str = "", image_encoder: str | None = None,
                        allow_unsafe_pickle: bool = False, local_files_only: bool | None = None) -> None:
        """Load an IP-Adapter (SD 1.x/2.x and SDXL; e.g. "h94/IP-Adapter", "ip-adapter_sd15.safetensors",
        subfolder="models"): exemplars with a `condition` then also prompt their own region, and
        `prompt_images` prompt the whole frame."""
        load_ip_adapter(self.adapter, model, weight_name=weight_name, subfolder=subfolder, image_encoder=image_encoder,
                        allow_unsafe_pickle=allow_unsafe_pickle, local_files_only=local_files_only)
        self.ip_adapter = {"model": str(model), "weight_name": weight_name, "subfolder": subfolder,
                           "image_encoder": image_encoder}

    def load_controlnet(self, model, *, allow_unsafe_pickle: bool = False, local_files_only: bool | None = None
                        ) -> None:
        """Attach a ControlNet (SD 1.x/2.x and SDXL; a hub id, a folder or a loaded ControlNetModel) for edits
        given a `control`."""
        load_controlnet(self.adapter, model, allow_unsafe_pickle=allow_unsafe_pickle,
                        local_files_only=local_files_only)
        self.controlnet_id = model if isinstance(model, str) else type(model).__name__

    def set_refiner(self, refiner: Adapter | None, refiner_id: str | None = None) -> None:
        """Hand the last part of every schedule to `refiner` (None removes it); both share one latent space."""
        if refiner is not None:
            self.adapter.check_refiner(refiner)
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
        components that both share (the VAE; for SDXL the second text encoder too). memory: memory-saving
        options (attention slicing, offload, ...). limits: what edits are refused before any model work.
        """
        dev = resolve_device(device)
        memory = memory or MemoryOptions()
        memory.validate(dev)
        # "auto" on a GPU: each family's published precision (fp16; bf16 for SD3/Flux); fp32 on the CPU
        auto_gpu = isinstance(dtype, str) and dtype.lower() == "auto" and dev.type == "cuda"
        chosen = None if auto_gpu else resolve_dtype(dtype, dev)
        if dev.type == "cpu" and chosen in (torch.float16, torch.bfloat16):
            warnings.warn(f"{str(chosen).removeprefix('torch.')} on the CPU is slow and not every operation has it;"
                          " fp32 is the CPU default", PixelsNote, stacklevel=2)
        options = dict(device=memory.load_device(dev), dtype=chosen,
                       allow_unsafe_pickle=allow_unsafe_pickle, local_files_only=local_files_only)
        base = memory.apply(adapter_for(load_pipeline(model, config=config, **options)), dev)
        second = None
        if refiner is not None:
            shared = base.components_for_refiner()
            second = memory.apply(adapter_for(load_pipeline(refiner, components=shared, name="refiner", **options)),
                                  dev)
        return cls(base, model_id=str(model), refiner=second, refiner_id=None if refiner is None else str(refiner),
                   limits=limits)

    @classmethod
    def from_pipe(cls, pipe, refiner=None, memory: MemoryOptions | None = None, limits: Limits | None = None) -> Editor:
        """Reuse the components of already loaded diffusers pipelines (no copy, no reload)."""
        def wrap(p) -> Adapter:
            family = adapter_class(type(p).__name__, getattr(p, "name_or_path", None) or type(p).__name__)
            adapter = adapter_for(family.prepare(p))
            if memory is not None:
                memory.validate(adapter.device)
                memory.apply(adapter, adapter.device)
            return adapter

        return cls(wrap(pipe), refiner=None if refiner is None else wrap(refiner), limits=limits)

    def edit(
        self,
        source: ImageLike,
        exemplars: Sequence[Exemplar] = (),
        strength_map: ImageLike | None = None,
        settings: EditSettings | None = None,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        prompt_images: Sequence | None = (),
        control: Control | None = None,
        on_step: Callable[[int, int], None] | None = None,
        **overrides: Any,
    ) -> EditResult:
        """Edit `source`: each exemplar is grafted where its map is 1 and every pixel is released by its
        strength (white = full edit, black = kept bit-exact). The README explains the rule and the modes.

        settings: an `EditSettings` (default: the defaults); any setting may also be given by name
        (`prompt="a fox", num_inference_steps=30`), replacing the one in `settings`. seed or generator:
        the random draws (a random seed is drawn and recorded when both are absent). prompt_images:
        [(image, weight), ...] mixed into the prompt (Kandinsky 2.2; SD and SDXL with an IP-Adapter).
        control: ControlNet guidance (with a ControlNet loaded). on_step(done, total): progress; an exception
        raised there stops the edit between two steps.
        """
        job = self._plan(source, exemplars, strength_map, settings, seed, generator, prompt_images, control, overrides)
        if job.result is not None:
            return job.result
        prepared = self._prepare(job)
        with _memory_guard(self.adapter):
            latents, calls = denoise(prepared.stages, prepared.surgery, prepared.start, on_step)
            out, details = finish(prepared, latents, calls)
        return self._complete(job, out, details)

    def edit_batch(
        self, requests: Sequence[dict[str, Any]], *, on_step: Callable[[int, int], None] | None = None,
        return_exceptions: bool = False,
    ) -> list[EditResult | Exception]:
        """Several edits, each given as the keyword arguments of `edit` (`dict(source=..., strength_map=...,
        seed=1, prompt="a fox")`), with those that share a frame size, a schedule and guidance denoised
        together: one model call per step for all of them. Each result equals the edit run alone within
        one 8-bit level (bit for bit where the backend computes a batch as it computes one edit); edits
        whose scheduler draws noise at each step run alone. With `return_exceptions`, an edit that fails
        gives its exception in its place and the others go on; otherwise the first failure is raised."""
        outcomes: list[Any] = [None] * len(requests)
        prepared: dict[int, tuple[_Job, Prepared]] = {}
        for k, request in enumerate(requests):
            try:
                if not isinstance(request, dict):
                    raise InputError(f"expected a dict of Editor.edit arguments, got {type(request).__name__}",
                                     param=f"requests[{k}]")
                request = dict(request)
                args = [request.pop(name, default) for name, default in _EDIT_ARGS]
                job = self._plan(*args, request)
                if job.result is not None:
                    outcomes[k] = job.result
                else:
                    prepared[k] = (job, self._prepare(job))
            except Exception as error:
                if not return_exceptions:
                    raise
                outcomes[k] = error
        groups: dict[Any, list[int]] = {}
        for k, (_, item) in prepared.items():
            groups.setdefault(batch_key(item) or ("alone", k), []).append(k)
        for members in groups.values():
            self._run_group([prepared[k] for k in members], members, outcomes, on_step, return_exceptions)
        return outcomes

    # -- the pieces of an edit ---------------------------------------------------------------------------
    def _plan(self, source, exemplars, strength_map, settings, seed, generator, prompt_images, control, overrides
              ) -> _Job:
        """Check an edit's arguments and read its inputs, before any model work: the settings, the seed,
        the images, the crop; the metadata so far. An edit with nothing to do is finished here."""
        settings = make_settings(settings, **overrides)
        if settings.switch_at is not None and self.refiner is None:
            raise InputError("this editor has no refiner to switch to; load one with refiner=...", param="switch_at")
        if generator is not None and seed is not None:
            raise InputError("pass either seed or generator, not both", param="seed")
        check_seed(seed)
        seed, replay = _seed_of(seed, generator)
        generator = generator or torch.Generator("cpu").manual_seed(seed)
        inputs = prepare_inputs(source, exemplars, strength_map, settings.invert_map, self.limits.max_pixels,
                                settings.mode)
        image_prompts = load_prompt_images(prompt_images, self.limits.max_pixels)
        if control is not None and not isinstance(control, Control):
            raise InputError(f"expected a pixels.Control, got {type(control).__name__}", param="control")
        if self.refiner is not None and (control is not None or inputs.conditions):
            raise InputError("ControlNet guidance and exemplar conditions act on the base model only; edit without"
                             " the refiner to use them", param="control" if control is not None else "exemplars")
        if control is not None:
            inputs.control = control_picture(control, inputs.source, self.limits.max_pixels)
        notes = list(inputs.notes)
        width, height = inputs.source.size
        metadata = {
            **asdict(settings),
            "crop": list(settings.crop) if isinstance(settings.crop, tuple) else settings.crop,
            "scheduler": settings.scheduler or "default",
            "seed": seed,
            **replay,
            "model": self.model_id,
            "family": self.adapter.family,
            "refiner_model": self.refiner_id,
            "size": [width, height],
            **inputs.labels,
            "prompt_images": prompt_image_labels(prompt_images, label),
            "loras": [{"lora": lora["lora"], "scale": lora["scale"]} for lora in self.loras],
            "ip_adapter": self.ip_adapter,
            "controlnet": self.controlnet_id if control is not None else None,
            "control": None if control is None else control.label(),
            "notes": notes,
            "pixels_version": __version__,
            "torch_version": torch.__version__,
            "diffusers_version": diffusers.__version__,
        }
        job = _Job(settings, generator, inputs, image_prompts, metadata, control)
        if not inputs.strength.any():  # nothing released anywhere: the source itself, with no model call
            notes.append("the strength map is 0 everywhere: nothing to edit")
            _say(notes)
            metadata |= {"steps_run": 0, "model_calls": 0, "skipped_steps": 0, "crop_box": None}
            job.result = _result(inputs, inputs.source.copy(), metadata, settings)
            return job
        # Crop to the edited area (optional): the rest of the frame is the source, untouched
        job.box = crop_box(settings.crop, settings.crop_margin, inputs.strength, self.adapter.size_multiple,
                           self.limits.max_pixels)
        job.work = inputs if job.box is None else crop_inputs(inputs, job.box)
        job.scale_to = None if job.box is None else crop_scale(
            settings.crop_resize, job.box, self.adapter.size_multiple, self.adapter.native_size, self.limits.max_pixels
        )
        frame = (job.scale_to[1], job.scale_to[0]) if job.scale_to else job.work.strength.shape
        notes += [*setting_notes(self.adapter, self.refiner, settings),
                  *filter(None, [cost_note(frame, self.adapter.native_size)])]
        _say(notes)  # before the run: a slow edit is announced before it starts
        return job

    def _prepare(self, job: _Job) -> Prepared:
        self._check_memory(job)
        with _memory_guard(self.adapter):
            return prepare(self.adapter, self.refiner, job.work, job.settings, job.generator, job.image_prompts,
                           scale_to=job.scale_to, control=job.control)

    def _check_memory(self, job: _Job) -> None:
        """Refuse, before any model work, an edit whose estimated peak exceeds what the device has free; the
        error says which crop would fit when the edit diffuses the whole frame."""
        if not self.limits.check_memory:
            return
        multiple = self.adapter.size_multiple
        h, w = (job.scale_to[1], job.scale_to[0]) if job.scale_to else job.work.strength.shape
        frame = (-(-h // multiple) * multiple, -(-w // multiple) * multiple)
        crop = None
        if job.settings.crop is None and (edited := region_box(job.work.strength)) is not None:
            crop = crop_around(edited, job.settings.crop_margin, (frame[1], frame[0]), multiple)[2:][::-1]
        per_edit = 2 if self.adapter.guidance(job.settings.guidance_scale).enabled else 1
        check_memory(self.adapter, frame, per_edit, crop_frame=crop)

    def _run_group(self, group: list[tuple[_Job, Prepared]], indices: list[int], outcomes: list,
                   on_step: Callable[[int, int], None] | None, return_exceptions: bool) -> None:
        """Denoise one group of batchable edits together and complete each; with `return_exceptions`, a group
        whose denoising fails is run again one edit at a time, so that only the edits that fail alone fail,
        and an edit that fails while it is decoded fails alone."""
        try:
            with _memory_guard(self.adapter):
                if len(group) > 1 and self.limits.check_memory:
                    first = group[0][1]
                    per_edit = 2 if first.stages[0].guidance.enabled else 1
                    check_memory(self.adapter, first.frame, per_edit * len(group))
                finals = denoise_batch([item for _, item in group], on_step)
        except Exception as error:
            if not return_exceptions:
                raise
            if len(group) == 1:
                outcomes[indices[0]] = error
                return
            for pair, index in zip(group, indices):
                self._run_group([pair], [index], outcomes, on_step, return_exceptions)
            return
        for (job, item), index, (latents, calls) in zip(group, indices, finals):
            try:
                with _memory_guard(self.adapter):
                    outcomes[index] = self._complete(job, *finish(item, latents, calls))
            except Exception as error:
                if not return_exceptions:
                    raise
                outcomes[index] = error

    def _complete(self, job: _Job, out: np.ndarray, details: dict[str, Any]) -> EditResult:
        """Paste back: the crop into the frame (the rest is the source), then the kept pixels."""
        inputs, settings = job.inputs, job.settings
        src = np.asarray(inputs.source)
        if job.box is not None:
            x, y, w, h = job.box
            frame = src.copy()
            frame[y:y + h, x:x + w] = out
            out = frame
        if settings.preserve == "exact":
            out = np.where((inputs.strength == 0)[..., None], src, out)
        metadata = {**job.metadata, **details, "crop_box": None if job.box is None else list(job.box)}
        return _result(inputs, Image.fromarray(out), metadata, settings)


# Editor.edit's arguments besides the settings, in `_plan`'s order, with their defaults
_EDIT_ARGS = (("source", None), ("exemplars", ()), ("strength_map", None), ("settings", None), ("seed", None),
              ("generator", None), ("prompt_images", ()), ("control", None))


@dataclass
class _Job:
    """An edit between its checks and its run."""

    settings: EditSettings
    generator: torch.Generator
    inputs: Inputs
    image_prompts: list
    metadata: dict[str, Any]
    control: Control | None = None
    result: EditResult | None = None  # set when nothing needs running
    box: tuple[int, int, int, int] | None = None  # the crop diffused, or None for the frame
    work: Inputs | None = None  # the inputs cut to the crop
    scale_to: tuple[int, int] | None = None  # (W, H) the crop is diffused at


@contextmanager
def _memory_guard(adapter: Adapter):
    """Allocation failures as a ResourceError that says what to change."""
    try:
        yield
    except (MemoryError, torch.cuda.OutOfMemoryError) as error:
        raise _out_of_memory(adapter, error) from None
    except RuntimeError as error:
        if "can't allocate memory" not in str(error) and "out of memory" not in str(error).lower():
            raise
        raise _out_of_memory(adapter, error) from None


def _result(inputs: Inputs, image: Image.Image, metadata: dict[str, Any], settings: EditSettings) -> EditResult:
    """The result of an edit of `inputs`, with the inputs as they were applied."""
    prompted = {k: picture for picture, _, k in inputs.conditions}
    return EditResult(image, metadata, inputs.strength, inputs.exemplars, inputs.exemplar_maps, settings,
                      [prompted.get(k) for k in range(len(inputs.exemplars))], inputs.control)


def _say(notes: list[str]) -> None:
    for note in notes:
        warnings.warn(note, PixelsNote, stacklevel=3)


def _seed_of(seed: int | None, generator: torch.Generator | None) -> tuple[int, dict[str, Any]]:
    """The seed that reproduces the edit, and a note when none does. A caller's generator that has drawn
    nothing yet is as good as its seed; one that has is not, and the metadata says so."""
    if generator is None:
        return (secrets.randbits(32) if seed is None else seed), {}
    initial = generator.initial_seed()
    fresh = torch.Generator(generator.device).manual_seed(initial)
    if torch.equal(fresh.get_state(), generator.get_state()):
        return initial, {}
    return None, {"seed_note": "a generator that had already drawn numbers was passed: no seed reproduces this"
                               " edit; pass seed=... (or a freshly seeded generator) to make it reproducible"}


def _out_of_memory(adapter: Adapter, error: BaseException) -> ResourceError:
    return ResourceError(
        f"memory: the edit ran out of memory on {adapter.device.type} ({type(error).__name__}); nothing was"
        " written. Try crop='auto', a smaller source, MemoryOptions(vae_tiling=True),"
        " MemoryOptions(attention_slicing=True) or, on a GPU, MemoryOptions(cpu_offload='model')"
    )


__all__ = ["EditResult", "EditSettings", "Editor", "Exemplar"]
