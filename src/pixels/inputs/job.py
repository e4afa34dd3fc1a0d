"""The checked edit job: what a user gives (paths, arrays, settings, seeds, prompt images, a control) read and
checked once, before any model loads, into one immutable object that every front end hands to the editor.

    job = plan_edit("photo.png", [Exemplar("ref.png", "where.png")], prompt="a fox", seed=1)
    job.notes        # what reading converted, said before anything runs
    editor.run(job)  # the same edit as editor.edit("photo.png", [...], prompt="a fox", seed=1)

A chain of edits (a spec file, a session) plans every edit on the first source and runs each on the
previous result with `job.on(result)`: the exemplars are placed on the new source, nothing is read again.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..core.control import Control
from ..core.frame import ImageLike, Inputs
from ..core.settings import EditSettings, Exemplar, Region, check_seed, make_settings
from ..errors import InputError
from ..limits import Limits
from .prompt_images import load_prompt_images, prompt_image_labels
from .read import ReadInputs, canny, control_picture, label, place_inputs, read_inputs

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class EditJob:
    """One edit, checked without the model: its settings and seed resolved, every input read and placed on
    the source, and the notes on what reading converted. Build it with `plan_edit`; run it with
    `Editor.run` (or `EditSession.apply`)."""

    settings: EditSettings
    inputs: Inputs  # the source and the exemplars placed on it, the maps, the control image
    read: ReadInputs = field(repr=False)  # the inputs as read, for `on`
    seed: int | None  # None only for a caller's generator that had drawn numbers already
    prompt_images: tuple[tuple[Image.Image, float], ...] = ()
    control: Control | None = None
    labels: dict[str, Any] = field(default_factory=dict, repr=False)  # how each input was given, for the metadata
    notes: tuple[str, ...] = ()
    generator: torch.Generator | None = field(default=None, repr=False, compare=False)  # a caller's generator
    seed_note: str | None = None  # why no seed reproduces the edit, when none does

    @property
    def source(self) -> Image.Image:
        return self.inputs.source

    def on(self, source: Image.Image) -> EditJob:
        """The same edit of another source of the same size (the previous result of a chain): the exemplars
        are placed on it and a Canny control is computed from it; nothing is read again."""
        if source is self.inputs.source:
            return self
        inputs = place_inputs(self.read, source, self.settings.mode)
        if self.control is not None:
            inputs.control = self.inputs.control if self.control.kind == "image" else canny(source)
        return replace(self, inputs=inputs, notes=tuple(inputs.notes))

    def make_generator(self) -> torch.Generator:
        """The random draws of a run: the caller's generator, or a fresh one seeded with the job's seed."""
        import torch

        return self.generator if self.generator is not None else torch.Generator("cpu").manual_seed(self.seed)


def plan_edit(
    source: ImageLike,
    exemplars: Sequence[Exemplar] = (),
    strength_map: ImageLike | None = None,
    settings: EditSettings | None = None,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    prompt_images: Sequence | None = (),
    control: Control | None = None,
    limits: Limits | None = None,
    regions: Sequence[Region] = (),
    **overrides: Any,
) -> EditJob:
    """Check an edit and read its inputs, without any model: the arguments are those of `Editor.edit`, plus
    the `limits` inputs are read under. Every input error surfaces here; a random seed is drawn now (and
    recorded), so running the job twice gives the same pixels."""
    limits = limits or Limits()
    settings = make_settings(settings, **overrides)
    if generator is not None and seed is not None:
        raise InputError("pass either seed or generator, not both", param="seed")
    check_seed(seed)
    seed, seed_note = _seed_of(seed, generator)
    read = read_inputs(source, exemplars, strength_map, settings.invert_map, limits.max_pixels, regions)
    inputs = place_inputs(read, mode=settings.mode)
    images = load_prompt_images(prompt_images, limits.max_pixels)
    if control is not None and not isinstance(control, Control):
        raise InputError(f"expected a pixels.Control, got {type(control).__name__}", param="control")
    if control is not None:
        inputs.control = control_picture(control, inputs.source, limits.max_pixels)
    labels = {**inputs.labels, "prompt_images": prompt_image_labels(prompt_images, label)}
    return EditJob(settings, inputs, read, seed, tuple(images), control, labels, tuple(inputs.notes), generator,
                   seed_note)


def _seed_of(seed: int | None, generator: torch.Generator | None) -> tuple[int | None, str | None]:
    """The seed that reproduces the edit, and a note when none does. A caller's generator that has drawn
    nothing yet is as good as its seed; one that has is not, and the metadata says so."""
    if generator is None:
        return (secrets.randbits(32) if seed is None else seed), None
    import torch

    initial = generator.initial_seed()
    fresh = torch.Generator(generator.device).manual_seed(initial)
    if torch.equal(fresh.get_state(), generator.get_state()):
        return initial, None
    return None, ("a generator that had already drawn numbers was passed: no seed reproduces this edit; pass"
                  " seed=... (or a freshly seeded generator) to make it reproducible")
