"""`Editor`: load a model once, then make PIXELS edits with it.

The editor loads and orchestrates: an edit is checked and read without the model into an `EditJob`
(`pixels.inputs.job`), then the editor adds what only the model can tell (its schedule, its size multiple,
the memory check), prepares the loop (`pixels.core.prepare`) and runs it (`pixels.core.loop`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import PurePath
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
from .core.settings import EditResult, EditSettings, Exemplar, Region
from .errors import InputError, ResourceError, warn_note
from .inputs.job import EditJob, plan_edit
from .limits import LORA_SCALE, Limits
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
        self.loras: list[dict[str, Any]] = []  # loaded LoRAs: {"lora", "scale", "weight_name", "adapter", "name"}
        self.ip_adapter: dict[str, Any] | None = None  # the loaded IP-Adapter, for the metadata
        self.controlnet_id: str | None = None
        if refiner is not None:
            self.set_refiner(refiner, refiner_id)

    # -- what extends the model ----------------------------------------------------------------------------
    def load_lora(self, model: str, scale: float = 1.0, *, weight_name: str | None = None, name: str | None = None,
                  allow_unsafe_pickle: bool = False, local_files_only: bool | None = None) -> str:
        """Add a LoRA (a hub id, a folder or a .safetensors file; diffusers' LoRA loading through peft) at
        `scale`; several add up. Scale 0 leaves the model as it was (a LoRA for regions only: `Region.loras`).
        Returns its name (`name`, default the file's or folder's stem, made unique), by which regions scale it.
        Recorded in every result's metadata."""
        scale = check_scale(scale, "lora.scale", *LORA_SCALE)
        name = lora_name(model, weight_name, name, [lora["name"] for lora in self.loras])
        adapter = f"pixels_lora_{len(self.loras)}"
        load_lora(self.adapter, model, adapter, weight_name=weight_name, allow_unsafe_pickle=allow_unsafe_pickle,
                  local_files_only=local_files_only)
        self.loras.append({"lora": str(model), "scale": scale, "weight_name": weight_name, "adapter": adapter,
                           "name": name})
        self.adapter.loras[name] = (adapter, scale)
        self.adapter.pipe.set_adapters([lora["adapter"] for lora in self.loras],
                                       adapter_weights=[lora["scale"] for lora in self.loras])
        return name

    def lora_named(self, key: str | int, param: str = "loras") -> str:
        """The name of the loaded LoRA `key` means: its name, its source as loaded (with or without its file
        name), or its position in the load order."""
        names = [lora["name"] for lora in self.loras]
        if isinstance(key, int) and not isinstance(key, bool):
            if 0 <= key < len(names):
                return names[key]
        elif key in names:
            return key
        else:
            found = {lora["name"] for lora in self.loras
                     if key in (lora["lora"], f"{lora['lora']}/{lora['weight_name']}", lora["weight_name"])}
            if len(found) == 1:
                return found.pop()
            if found:
                raise InputError(f"{key!r} names {len(found)} loaded LoRAs ({', '.join(sorted(found))}); use one"
                                 " of those names", param=param)
        loaded = ", ".join(f"{n} ({lora['lora']})" for n, lora in zip(names, self.loras)) or "none"
        raise InputError(f"no loaded LoRA {key!r}; loaded: {loaded}. Load it first with Editor.load_lora() (at"
                         " scale 0 for regions only)", param=param)

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
        on_note: Callable[[str], None] | None = None,
    ) -> Editor:
        """Load from a hub id, a local diffusers folder or a single .safetensors checkpoint.

        refiner: a second model (SDXL refiner) for the end of the schedule; it reuses the base model's
        components that both share (the VAE; for SDXL the second text encoder too). memory: memory-saving
        options (attention slicing, offload, ...). limits: what edits are refused before any model work.
        on_note(text): what loading notes (default: a `PixelsNote` warning).
        """
        dev = resolve_device(device)
        memory = memory or MemoryOptions()
        memory.validate(dev)
        # "auto" on a GPU: each family's published precision (fp16; bf16 for SD3/Flux); fp32 on the CPU
        auto_gpu = isinstance(dtype, str) and dtype.lower() == "auto" and dev.type == "cuda"
        chosen = None if auto_gpu else resolve_dtype(dtype, dev)
        if dev.type == "cpu" and chosen in (torch.float16, torch.bfloat16):
            (on_note or warn_note)(f"{str(chosen).removeprefix('torch.')} on the CPU is slow and not every operation"
                               " has it; fp32 is the CPU default")
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
        regions: Sequence[Region] = (),
        on_step: Callable[[int, int], None] | None = None,
        **overrides: Any,
    ) -> EditResult:
        """Edit `source`: each exemplar is grafted where its map is 1 and every pixel is released by its
        strength (white = full edit, black = kept bit-exact). docs/concepts/release-schedule.md explains the rule and the modes.

        settings: an `EditSettings` (default: the defaults); any setting may also be given by name
        (`prompt="a fox", num_inference_steps=30`), replacing the one in `settings`. seed or generator:
        the random draws (a random seed is drawn and recorded when both are absent). prompt_images:
        [(image, weight), ...] mixed into the prompt (Kandinsky 2.2; SD and SDXL with an IP-Adapter).
        control: ControlNet guidance (with a ControlNet loaded). regions: `Region`s, parts of the photo with text
        of their own (an exemplar may carry its own `prompt` too; SD 1.x/2.x and SDXL, see docs/guides/regions.md).
        on_step(done, total): progress; an exception
        raised there stops the edit between two steps. Notes come as `PixelsNote` warnings and in
        `result.metadata["notes"]`.

        The same as `editor.run(plan_edit(source, ...))`: `plan_edit` checks and reads everything first.
        """
        job = plan_edit(source, exemplars, strength_map, settings, seed=seed, generator=generator,
                        prompt_images=prompt_images, control=control, limits=self.limits, regions=regions,
                        **overrides)
        _warn_all(job.notes)
        return self.run(job, on_step=on_step)

    def run(self, job: EditJob, *, on_step: Callable[[int, int], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> EditResult:
        """Run a checked edit (`plan_edit`): the model's own checks and notes, then the loop. on_note(text):
        each note the model adds to the job's (default: a `PixelsNote` warning), said before the loop starts;
        the result's metadata holds them all."""
        if not isinstance(job, EditJob):
            raise InputError(f"expected an EditJob (from plan_edit), got {type(job).__name__}", param="job")
        run = self._plan(job, on_note or warn_note)
        if run.result is not None:
            return run.result
        prepared = self._prepare(run)
        with _memory_guard(self.adapter):
            latents, calls = denoise(prepared.stages, prepared.surgery, prepared.start, on_step)
            out, details = finish(prepared, latents, calls)
        return self._complete(run, out, details)

    def edit_batch(
        self, requests: Sequence[dict[str, Any]], *, on_step: Callable[[int, int], None] | None = None,
        return_exceptions: bool = False,
    ) -> list[EditResult | Exception]:
        """Several edits, each given as the keyword arguments of `edit` (`dict(source=..., strength_map=...,
        seed=1, prompt="a fox")`) or as an `EditJob`, with those that share a frame size, a schedule and guidance denoised
        together: one model call per step for all of them. Each result equals the edit run alone within
        one 8-bit level (bit for bit where the backend computes a batch as it computes one edit); edits
        whose scheduler draws noise at each step run alone. With `return_exceptions`, an edit that fails
        gives its exception in its place and the others go on; otherwise the first failure is raised."""
        outcomes: list[Any] = [None] * len(requests)
        prepared: dict[int, tuple[_Run, Prepared]] = {}
        for k, request in enumerate(requests):
            try:
                if isinstance(request, EditJob):
                    job = request
                elif isinstance(request, dict):
                    request = dict(request)
                    job = plan_edit(request.pop("source", None), limits=self.limits, **request)
                    _warn_all(job.notes)
                else:
                    raise InputError(f"expected an EditJob or a dict of Editor.edit arguments, got"
                                     f" {type(request).__name__}", param=f"requests[{k}]")
                run = self._plan(job, warn_note)
                if run.result is not None:
                    outcomes[k] = run.result
                else:
                    prepared[k] = (run, self._prepare(run))
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
    def _plan(self, job: EditJob, say: Callable[[str], None]) -> _Run:
        """What only the model can tell about a checked job, before any model work: the refiner's part, the
        crop on the model's size multiple, the settings the model ignores; the metadata so far. An edit with
        nothing to do is finished here."""
        settings, inputs, control = job.settings, job.inputs, job.control
        if settings.switch_at is not None and self.refiner is None:
            raise InputError("this editor has no refiner to switch to; load one with refiner=...", param="switch_at")
        if self.refiner is not None and (control is not None or inputs.conditions):
            raise InputError("ControlNet guidance and exemplar conditions act on the base model only; edit without"
                             " the refiner to use them", param="control" if control is not None else "exemplars")
        if inputs.texts:  # refused before any model work where the family cannot attend by region
            for adapter in (self.adapter, self.refiner):
                if adapter is not None:
                    adapter.check_texts(inputs.texts)
            inputs = replace(inputs, texts=[text._replace(loras=tuple(
                (self.lora_named(key, "loras"), scale) for key, scale in text.loras)) for text in inputs.texts])
        notes = list(job.notes)
        width, height = inputs.source.size
        metadata = {
            **asdict(settings),
            "crop": list(settings.crop) if isinstance(settings.crop, tuple) else settings.crop,
            "scheduler": settings.scheduler or "default",
            "seed": job.seed,
            **({"seed_note": job.seed_note} if job.seed_note else {}),
            "model": self.model_id,
            "family": self.adapter.family,
            "refiner_model": self.refiner_id,
            "size": [width, height],
            **job.labels,
            "loras": [{"lora": lora["lora"], "scale": lora["scale"], "name": lora["name"]} for lora in self.loras],
            "ip_adapter": self.ip_adapter,
            "controlnet": self.controlnet_id if control is not None else None,
            "control": None if control is None else control.label(),
            "notes": notes,
            "pixels_version": __version__,
            "torch_version": torch.__version__,
            "diffusers_version": diffusers.__version__,
        }
        run = _Run(settings, job.make_generator(), inputs, list(job.prompt_images), metadata, control)
        if not inputs.strength.any():  # nothing released anywhere: the source itself, with no model call
            notes.append("the strength map is 0 everywhere: nothing to edit")
            say(notes[-1])
            metadata |= {"steps_run": 0, "model_calls": 0, "skipped_steps": 0, "crop_box": None}
            run.result = _result(inputs, inputs.source.copy(), metadata, settings)
            return run
        # Crop to the edited area (optional): the rest of the frame is the source, untouched
        run.box = crop_box(settings.crop, settings.crop_margin, inputs.strength, self.adapter.size_multiple,
                           self.limits.max_pixels)
        run.work = inputs if run.box is None else crop_inputs(inputs, run.box)
        run.scale_to = None if run.box is None else crop_scale(
            settings.crop_resize, run.box, self.adapter.size_multiple, self.adapter.native_size, self.limits.max_pixels
        )
        frame = (run.scale_to[1], run.scale_to[0]) if run.scale_to else run.work.strength.shape
        added = [*setting_notes(self.adapter, self.refiner, settings),
                 *filter(None, [cost_note(frame, self.adapter.native_size)])]
        notes += added
        for text in added:  # before the run: a slow edit is announced before it starts
            say(text)
        return run

    def _prepare(self, run: _Run) -> Prepared:
        self._check_memory(run)
        with _memory_guard(self.adapter):
            return prepare(self.adapter, self.refiner, run.work, run.settings, run.generator, run.image_prompts,
                           scale_to=run.scale_to, control=run.control)

    def _check_memory(self, run: _Run) -> None:
        """Refuse, before any model work, an edit whose estimated peak exceeds what the device has free; the
        error says which crop would fit when the edit diffuses the whole frame."""
        if not self.limits.check_memory:
            return
        multiple = self.adapter.size_multiple
        h, w = (run.scale_to[1], run.scale_to[0]) if run.scale_to else run.work.strength.shape
        frame = (-(-h // multiple) * multiple, -(-w // multiple) * multiple)
        crop = None
        if run.settings.crop is None and (edited := region_box(run.work.strength)) is not None:
            crop = crop_around(edited, run.settings.crop_margin, (frame[1], frame[0]), multiple)[2:][::-1]
        per_edit = 2 if self.adapter.guidance(run.settings.guidance_scale).enabled else 1
        check_memory(self.adapter, frame, per_edit, crop_frame=crop)

    def _run_group(self, group: list[tuple[_Run, Prepared]], indices: list[int], outcomes: list,
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
        for (run, item), index, (latents, calls) in zip(group, indices, finals):
            try:
                with _memory_guard(self.adapter):
                    outcomes[index] = self._complete(run, *finish(item, latents, calls))
            except Exception as error:
                if not return_exceptions:
                    raise
                outcomes[index] = error

    def _complete(self, run: _Run, out: np.ndarray, details: dict[str, Any]) -> EditResult:
        """Paste back: the crop into the frame (the rest is the source), then the kept pixels."""
        inputs, settings = run.inputs, run.settings
        src = np.asarray(inputs.source)
        if run.box is not None:
            x, y, w, h = run.box
            frame = src.copy()
            frame[y:y + h, x:x + w] = out
            out = frame
        if settings.preserve == "exact":
            out = np.where((inputs.strength == 0)[..., None], src, out)
        metadata = {**run.metadata, **details, "crop_box": None if run.box is None else list(run.box)}
        return _result(inputs, Image.fromarray(out), metadata, settings)


@dataclass
class _Run:
    """A checked job on this editor, between the model's checks and the loop."""

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
                      [prompted.get(k) for k in range(len(inputs.exemplars))], inputs.control, list(inputs.texts))


def _warn_all(notes) -> None:
    for note in notes:
        warn_note(note)


def _out_of_memory(adapter: Adapter, error: BaseException) -> ResourceError:
    return ResourceError(
        f"memory: the edit ran out of memory on {adapter.device.type} ({type(error).__name__}); nothing was"
        " written. Try crop='auto', a smaller source, MemoryOptions(vae_tiling=True),"
        " MemoryOptions(attention_slicing=True) or, on a GPU, MemoryOptions(cpu_offload='model')"
    )


__all__ = ["EditResult", "EditSettings", "Editor", "Exemplar"]


def lora_name(model: Any, weight_name: str | None, name: str | None, taken: Sequence[str]) -> str:
    """A LoRA's name: `name`, or the stem of its file (or folder, or hub repository), unique among `taken`."""
    if name is not None:
        if not isinstance(name, str) or not name.strip() or name.strip() != name:
            raise InputError(f"expected a non-empty name, got {name!r}", param="lora.name")
        if name in taken:
            raise InputError(f"a LoRA named {name!r} is loaded already", param="lora.name")
        return name
    path = PurePath(str(model).rstrip("/\\"))
    path = path / weight_name if weight_name else path
    stem = path.name.removesuffix(".safetensors").removesuffix(".bin")
    if stem.startswith("pytorch_lora_weights"):  # diffusers' default file name: its folder names it
        stem = path.parent.name
    stem = stem or "lora"
    found, k = stem, 2
    while found in taken:
        found, k = f"{stem}_{k}", k + 1
    return found
