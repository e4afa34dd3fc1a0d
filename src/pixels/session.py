"""Progressive editing: a chain of edits, each result the next source, with undo, redo, save and load.

A saved session is a folder: `manifest.json`, the source and every result as PNG, and each step's
inputs exactly as they were applied (placed exemplars as PNG, strength maps as float64 `.npy`), so
`EditSession.load` replays the chain from the recorded seeds and settings and gets the same pixels.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import __version__
from .editor import EditResult, EditSettings, Editor, Exemplar
from .errors import InputError, PixelsError
from .images import ImageLike, load_image
from .prompt_images import load_prompt_images

MANIFEST = "manifest.json"
_REPLAYED = ("prompt", "negative_prompt", "num_inference_steps", "strength", "denoising_start", "guidance_scale",
             "scheduler", "mode", "preserve", "eta", "skip_steps", "crop", "crop_margin", "crop_resize", "switch_at",
             "exemplar_encode")


@dataclass
class Step:
    """One applied edit: what went in (as applied) and what came out."""

    settings: dict[str, Any]  # the edit's settings, including the seed
    exemplars: list[Image.Image]  # placed on the canvas of the image they edited
    exemplar_maps: list[np.ndarray]  # their strength maps
    strength: np.ndarray  # the combined strength map
    result: Image.Image
    metadata: dict[str, Any] = field(repr=False, default_factory=dict)
    prompt_images: list[tuple[Image.Image, float]] = field(default_factory=list)  # (image, weight) pairs


class EditSession:
    """Edits applied one after another to a photo: `apply`, `undo`, `redo`, `history`, `save`, `load`."""

    def __init__(self, editor: Editor, source: ImageLike) -> None:
        self.editor = editor
        self.source, _ = load_image(source, name="source")
        self._steps: list[Step] = []
        self._undone: list[Step] = []

    @property
    def current(self) -> Image.Image:
        """The latest image: the source, or the result of the last edit not undone."""
        return self._steps[-1].result if self._steps else self.source

    @property
    def history(self) -> list[dict[str, Any]]:
        """The settings (with seeds) of the applied edits, oldest first."""
        return [dict(step.settings) for step in self._steps]

    def apply(self, exemplars=(), strength_map: ImageLike | None = None, **settings: Any) -> EditResult:
        """Edit the current image (same arguments as `Editor.edit`, except `generator`: sessions record
        seeds so that they can be replayed). Clears the redo stack."""
        if "generator" in settings:
            raise InputError("generator: sessions record seeds to replay edits; pass seed=... instead")
        prompt_images = load_prompt_images(settings.pop("prompt_images", ()))
        result = self.editor.edit(self.current, exemplars=exemplars, strength_map=strength_map,
                                  prompt_images=prompt_images, **settings)
        recorded = {k: result.metadata[k] for k in _REPLAYED}
        recorded["scheduler"] = None if recorded["scheduler"] == "default" else recorded["scheduler"]
        recorded["seed"] = result.metadata["seed"]
        self._steps.append(Step(recorded, result.exemplars, result.exemplar_maps, result.strength_map, result.image,
                                result.metadata, prompt_images))
        self._undone.clear()
        return result

    def undo(self) -> Image.Image:
        if not self._steps:
            raise InputError("undo: nothing to undo")
        self._undone.append(self._steps.pop())
        return self.current

    def redo(self) -> Image.Image:
        if not self._undone:
            raise InputError("redo: nothing to redo")
        self._steps.append(self._undone.pop())
        return self.current

    # -- saving and loading ------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the session (applied steps only) to `folder`, atomically: a complete folder or nothing."""
        out = Path(folder).expanduser()
        if out.exists() and not overwrite:
            raise InputError(f"folder: {str(out)!r} exists; pass overwrite=True to replace it")
        if not out.parent.is_dir():
            raise InputError(f"folder: {str(out.parent)!r} does not exist")
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            self.source.save(staging / "source.png")
            steps = []
            for k, step in enumerate(self._steps, 1):
                name = f"step-{k:02d}"
                (staging / name).mkdir()
                exemplars = []
                for j, (picture, m) in enumerate(zip(step.exemplars, step.exemplar_maps), 1):
                    picture.save(staging / name / f"exemplar-{j}.png")
                    np.save(staging / name / f"exemplar-{j}-map.npy", m)
                    exemplars.append({"image": f"{name}/exemplar-{j}.png", "map": f"{name}/exemplar-{j}-map.npy"})
                prompts = []
                for j, (picture, weight) in enumerate(step.prompt_images, 1):
                    picture.save(staging / name / f"prompt-image-{j}.png")
                    prompts.append({"image": f"{name}/prompt-image-{j}.png", "weight": weight})
                np.save(staging / name / "strength.npy", step.strength)
                step.result.save(staging / name / "result.png")
                steps.append({"settings": step.settings, "exemplars": exemplars, "strength_map": f"{name}/strength.npy",
                              "prompt_images": prompts, "result": f"{name}/result.png"})
            manifest = {"pixels_version": __version__, "model": self.editor.model_id, "source": "source.png",
                        "steps": steps}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            if out.exists():
                shutil.rmtree(out)
            os.replace(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return out

    @classmethod
    def load(cls, folder: str | os.PathLike, editor: Editor, *, verify: bool = True) -> EditSession:
        """Replay a saved session with `editor`; with `verify`, every replayed result must equal the saved one."""
        root = Path(folder).expanduser()
        try:
            manifest = json.loads((root / MANIFEST).read_text())
            steps = manifest["steps"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(f"folder: {str(root)!r} is not a saved session ({error})") from None
        session = cls(editor, root / manifest.get("source", "source.png"))
        for k, step in enumerate(steps, 1):
            try:
                settings = dict(step["settings"])
                exemplars = [Exemplar(Image.open(root / e["image"]).convert("RGB"), np.load(root / e["map"]))
                             for e in step["exemplars"]]
                strength = np.load(root / step["strength_map"])
                prompts = [(Image.open(root / p["image"]).convert("RGB"), p["weight"])
                           for p in step.get("prompt_images", [])]
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise InputError(f"steps[{k - 1}]: cannot read the saved inputs ({error})") from None
            unknown = set(settings) - set(_REPLAYED) - {"seed"}
            if unknown:
                raise InputError(f"steps[{k - 1}].settings: unknown keys {sorted(unknown)}")
            EditSettings(**{k2: v for k2, v in settings.items() if k2 != "seed"}).validate()
            result = session.apply(exemplars, strength, prompt_images=prompts, **settings)
            if verify:
                saved, _ = load_image(root / step["result"], name=f"steps[{k - 1}].result")
                if not np.array_equal(np.asarray(saved), np.asarray(result.image)):
                    raise PixelsError(
                        f"steps[{k - 1}]: the replayed result differs from the saved one (another model, device,"
                        " dtype or library version?); load with verify=False to accept the replay"
                    )
        return session


__all__ = ["EditSession", "Step"]
