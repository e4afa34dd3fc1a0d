"""Progressive editing: edits applied one after another, each result the next source, with undo, redo,
branches, save and load.

The edits form a tree: every step records the step it edited (its parent; 0 is the source photo). Undo goes
back to the parent, `go` moves to any step, and an edit applied there starts a new branch beside the old one,
which stays in the session (`nodes`, `tree`). `steps`, `images` and `history` follow the branch that leads to
the current step.

A saved session is a folder: `manifest.json` (with each step's parent and the current step), the source and every
result as PNG, and each step's
inputs exactly as they were applied (placed exemplars as PNG, strength maps as float64 `.npy`, the images
an exemplar prompts its region with, a ControlNet's control image), so `EditSession.load` replays the chain
from the recorded seeds and settings and gets the same pixels. The LoRAs, IP-Adapter and ControlNet an
editor had loaded are recorded too: a replay needs the same ones loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import __version__
from .core.control import Control
from .core.frame import ImageLike, RegionText
from .core.settings import EditResult, EditSettings, Exemplar, Region, options
from .editor import Editor
from .errors import InputError, PixelsError, short, warn_note
from .files import check_name_length, check_writable, open_regular, read_text
from .inputs.images import load_image
from .inputs.job import EditJob, plan_edit
from .outputs.transaction import Transaction, foreign, recover

MANIFEST = "manifest.json"
FORMAT = "pixels-session"  # the manifest's "format": what marks a folder as a session pixels saved
MANIFEST_LIMIT = 16 * 1024 * 1024  # bytes
MAX_STEPS_SAVED = 10_000
_RECORDED = {f.name for f, option in options() if option.recorded}  # the settings a saved step keeps


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
    conditions: list[tuple[float, Image.Image | None]] = field(default_factory=list)  # per exemplar: weight, prompt
    control: dict[str, Any] | None = None  # kind, scale, start, end
    control_image: Image.Image | None = None  # kind "image": the control image, at the source's size
    parent: int = 0  # the step it edited (1-based, in the order the steps were made); 0: the source photo
    texts: list[RegionText] = field(default_factory=list)  # regional text and LoRA scales, as applied; an
    # exemplar's own is one of them, on its map


class EditSession:
    """Edits applied one after another to a photo: `apply`, `undo`, `redo`, `go`, `history`, `save`, `load`.

    Steps are numbered from 1 in the order they were made (0 is the source photo) and each remembers the step
    it edited, so the session is a tree: an edit applied after `undo` or `go` starts a branch and keeps the
    others."""

    def __init__(self, editor: Editor, source: ImageLike) -> None:
        self.editor = editor
        self.source, _ = load_image(source, name="source")
        self._nodes: list[Step] = []  # every step made, in order: step k is self._nodes[k - 1]
        self._at = 0  # the current step (0: the source)
        self._redo: dict[int, int] = {}  # step -> its child `redo` goes to (the one left last by undo, or made last)

    # -- where the session stands ---------------------------------------------------------------
    @property
    def position(self) -> int:
        """The current step's number (0: the source photo)."""
        return self._at

    @property
    def nodes(self) -> list[Step]:
        """Every step made, in every branch, in the order they were made: step k is `nodes[k - 1]`."""
        return list(self._nodes)

    @property
    def tree(self) -> list[dict[str, Any]]:
        """One entry per step made: its number, its parent (0: the source), its children, its settings, and
        whether it lies on the current branch (`current` marks the current step itself)."""
        on_path = set(self.path())
        return [{"step": k, "parent": step.parent, "children": self.children(k), "settings": dict(step.settings),
                 "on_path": k in on_path, "current": k == self._at}
                for k, step in enumerate(self._nodes, 1)]

    def children(self, step: int) -> list[int]:
        """The steps made from `step` (0: from the source), oldest first."""
        return [k for k, node in enumerate(self._nodes, 1) if node.parent == step]

    def path(self, step: int | None = None) -> list[int]:
        """The step numbers from the source to `step` (default: the current step), the source excluded."""
        k = self._at if step is None else self._check_step(step)
        out = []
        while k:
            out.append(k)
            k = self._nodes[k - 1].parent
        return out[::-1]

    def image(self, step: int) -> Image.Image:
        """The result of `step` (0: the source photo)."""
        k = self._check_step(step)
        return self._nodes[k - 1].result if k else self.source

    @property
    def current(self) -> Image.Image:
        """The image the next edit starts from: the source, or the result of the current step."""
        return self.image(self._at)

    @property
    def images(self) -> list[Image.Image]:
        """The source, then the result of every step on the current branch, oldest first."""
        return [self.source, *(self._nodes[k - 1].result for k in self.path())]

    @property
    def steps(self) -> list[Step]:
        """The steps on the current branch, oldest first: what went in, as applied, and what came out."""
        return [self._nodes[k - 1] for k in self.path()]

    @property
    def history(self) -> list[dict[str, Any]]:
        """The settings (with seeds) of the steps on the current branch, oldest first."""
        return [dict(step.settings) for step in self.steps]

    @property
    def can_undo(self) -> bool:
        return self._at != 0

    @property
    def can_redo(self) -> bool:
        return self._at in self._redo

    def _check_step(self, step: Any, param: str = "step") -> int:
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= len(self._nodes):
            raise InputError(f"expected a step in [0, {len(self._nodes)}] (0: the source photo), got {short(step)}",
                             param=param)
        return step

    # -- editing ----------------------------------------------------------------------------------
    def apply(self, exemplars=(), strength_map: ImageLike | None = None, *,
              on_step: Callable[[int, int], None] | None = None, on_note: Callable[[str], None] | None = None,
              **settings: Any) -> EditResult:
        """Edit the current image: the arguments of `Editor.edit` (except `generator`: sessions record seeds
        so that they can be replayed), or a checked `EditJob` (`plan_edit`), which is placed on the current
        image and run without reading anything again. The result is a new step, a child of the current one,
        and becomes the current step (after `undo` or `go`, a new branch)."""
        if isinstance(exemplars, EditJob):
            if strength_map is not None or settings:
                raise InputError("a job holds the edit's inputs and settings; pass it alone", param="job")
            if exemplars.generator is not None:
                raise InputError("sessions record seeds to replay edits; plan the job with seed=...",
                                 param="generator")
            job = exemplars.on(self.current)
        else:
            if "generator" in settings:
                raise InputError("sessions record seeds to replay edits; pass seed=... instead", param="generator")
            job = plan_edit(self.current, exemplars, strength_map, limits=self.editor.limits, **settings)
            for text in job.notes:
                (on_note or warn_note)(text)
        result = self.editor.run(job, on_step=on_step, on_note=on_note)
        self._record(job, result)
        return result

    def variations(self, job: EditJob, seeds: Sequence[int], *,
                   on_step: Callable[[int, int], None] | None = None) -> list[EditResult]:
        """The edit of `job` (planned with `plan_edit`) with each of `seeds`, denoised together
        (`Editor.edit_batch`: one model call per step for all of them), without changing the session: pick one
        with `keep`. Each result equals `apply` with that seed within one 8-bit level (bit for bit where the
        backend computes a batch as it computes one edit)."""
        if not isinstance(job, EditJob):
            raise InputError(f"expected an EditJob (plan_edit), got {type(job).__name__}", param="job")
        if job.generator is not None:
            raise InputError("sessions record seeds to replay edits; plan the job with seed=...", param="generator")
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
            raise InputError(f"expected one or more integer seeds, got {short(seeds)}", param="seeds")
        job = job.on(self.current)
        return self.editor.edit_batch([replace(job, seed=seed) for seed in seeds], on_step=on_step)

    def keep(self, job: EditJob, result: EditResult) -> EditResult:
        """Apply a result `variations` made from `job` as the next step, without running it again (a child of
        the current step, as `apply` makes)."""
        job = job.on(self.current)
        if result.metadata.get("seed") is None or result.image.size != self.current.size or \
                not np.array_equal(result.strength_map, job.inputs.strength):
            raise InputError("expected a result `variations` made from this job on the session's current image",
                             param="result")
        self._record(replace(job, seed=result.metadata["seed"]), result)
        return result

    def _record(self, job: EditJob, result: EditResult) -> None:
        """The step of `job`'s `result`: what went in, as applied, and what came out."""
        recorded = {**result.settings.record(), "seed": result.metadata["seed"]}
        conditions = [(e.condition, picture) for e, picture in zip(job.read.exemplars, result.condition_images)]
        step = Step(recorded, result.exemplars, result.exemplar_maps, result.strength_map, result.image,
                    result.metadata, list(job.prompt_images), conditions, parent=self._at, texts=list(result.texts))
        if job.control is not None:
            step.control = {k: v for k, v in job.control.label().items() if k != "image"}
            if job.control.kind == "image":
                step.control_image = result.control_image
        self._nodes.append(step)
        self._redo[self._at] = len(self._nodes)
        self._at = len(self._nodes)

    def forget(self) -> Image.Image:
        """Remove the current step, which must be the last one made and have no children (an edit tried and
        thrown away, as if never applied); the session goes back to its parent."""
        last = len(self._nodes)
        if not last or self._at != last or self.children(last):
            raise InputError("only the last step made, with no step made from it, can be forgotten", param="forget")
        step = self._nodes.pop()
        self._redo = {k: v for k, v in self._redo.items() if v != last and k != last}
        self._at = step.parent
        return self.current

    def undo(self) -> Image.Image:
        """Back to the current step's parent (the step stays in the session: `redo` returns to it)."""
        if not self._at:
            raise InputError("nothing to undo", param="undo")
        parent = self._nodes[self._at - 1].parent
        self._redo[parent] = self._at
        self._at = parent
        return self.current

    def redo(self) -> Image.Image:
        """Forward to the child undo left last (or the one made last from here)."""
        if self._at not in self._redo:
            raise InputError("nothing to redo", param="redo")
        self._at = self._redo[self._at]
        return self.current

    def go(self, step: int) -> Image.Image:
        """Make `step` the current one (0: the source photo): the next edit starts from its result, and a
        branch starts there if it already has children."""
        k = self._check_step(step)
        path = self.path(k)
        for parent, child in zip([0, *path], path):
            self._redo[parent] = child
        self._at = k
        return self.current

    # -- saving and loading ------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the session (every step of every branch, and which one is current) to `folder`, atomically: a
        complete folder or nothing.

        `folder` must be new, or (with `overwrite`) a session pixels saved and nothing else: see
        `check_folder`. A replaced session is swapped out only once the new one is complete."""
        out = check_folder(folder, overwrite=overwrite)
        with Transaction() as transaction:
            self.stage(transaction, out, overwrite=overwrite)
            transaction.commit()
        return out

    def stage(self, transaction: Transaction, folder: Path, *, overwrite: bool) -> None:
        """Write the session into `transaction` (committed with the command's other outputs)."""
        transaction.folder(folder, self._write, overwrite=overwrite)

    def _write(self, staging: Path) -> None:
        self.source.save(staging / "source.png")
        steps = []
        for k, step in enumerate(self._nodes, 1):
            name = f"step-{k:02d}"
            (staging / name).mkdir()
            exemplars = []
            conditions = step.conditions or [(0.0, None)] * len(step.exemplars)
            for j, (picture, m, (weight, prompt)) in enumerate(zip(step.exemplars, step.exemplar_maps, conditions), 1):
                picture.save(staging / name / f"exemplar-{j}.png")
                np.save(staging / name / f"exemplar-{j}-map.npy", m)
                exemplars.append({"image": f"{name}/exemplar-{j}.png", "map": f"{name}/exemplar-{j}-map.npy"})
                if prompt is not None:
                    prompt.save(staging / name / f"exemplar-{j}-condition.png")
                    exemplars[-1] |= {"condition": weight, "condition_image": f"{name}/exemplar-{j}-condition.png"}
            prompts = []
            for j, (picture, weight) in enumerate(step.prompt_images, 1):
                picture.save(staging / name / f"prompt-image-{j}.png")
                prompts.append({"image": f"{name}/prompt-image-{j}.png", "weight": weight})
            np.save(staging / name / "strength.npy", step.strength)
            regions = []
            for j, text in enumerate(step.texts, 1):
                np.save(staging / name / f"region-{j}-map.npy", text.map)
                regions.append({"map": f"{name}/region-{j}-map.npy", "prompt": text.prompt,
                                "negative_prompt": text.negative, **({"loras": dict(text.loras)} if text.loras else {})})
            step.result.save(staging / name / "result.png")
            steps.append({"parent": step.parent, "settings": step.settings, "exemplars": exemplars,
                          "strength_map": f"{name}/strength.npy", "prompt_images": prompts,
                          "result": f"{name}/result.png"})
            if regions:  # each exemplar's and region's own text, on the map it was attended in
                steps[-1]["regions"] = regions
            selections = selections_of(step.metadata)
            if selections:  # what found the maps (replayed from the arrays above, no selection model needed)
                steps[-1]["selections"] = selections
            if step.control is not None:
                steps[-1]["control"] = dict(step.control)
                if step.control_image is not None:
                    step.control_image.save(staging / name / "control.png")
                    steps[-1]["control"]["image"] = f"{name}/control.png"
        manifest = {"format": FORMAT, "pixels_version": __version__, "model": self.editor.model_id,
                    "extensions": extensions_of(self.editor), "source": "source.png", "steps": steps,
                    "current": self._at}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        for path in staging.rglob("*"):  # on disk before the folder is moved into place
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())

    @classmethod
    def load(cls, folder: str | os.PathLike, editor: Editor, *, verify: bool = True) -> EditSession:
        """Replay a saved session with `editor`; with `verify`, every replayed result must equal the saved one.
        Every branch is replayed and the session stands on the step that was current when it was saved (a
        manifest without parents, as older versions wrote, is one branch standing on its last step).

        Every file the manifest names must lie inside the folder; arrays are checked (type and shape)
        before they are read, and images are read as for any input."""
        root = Path(folder).expanduser()
        manifest = _read_manifest(root)
        steps = manifest.get("steps")
        if not isinstance(steps, list) or len(steps) > MAX_STEPS_SAVED:
            raise InputError(f"{str(root)!r} is not a saved session (no list of steps in its manifest)", param="folder")
        _check_extensions(manifest.get("extensions"), editor)
        session = cls(editor, _inside(root, manifest.get("source", "source.png"), "source"))
        size = session.source.size
        for k, step in enumerate(steps):
            where = f"steps[{k}]"
            if not isinstance(step, dict) or not isinstance(step.get("settings"), dict):
                raise InputError("expected a mapping with the step's settings", param=where)
            parent = step.get("parent", k)
            if isinstance(parent, bool) or not isinstance(parent, int) or not 0 <= parent <= k:
                raise InputError(f"expected an earlier step in [0, {k}] (0: the source), got {short(parent)}",
                                 param=f"{where}.parent")
            session.go(parent)
            settings = dict(step["settings"])
            unknown = set(settings) - _RECORDED - {"seed"}
            if unknown:
                raise InputError(f"unknown keys {short(sorted(unknown))}", param=f"{where}.settings")
            EditSettings(**{k2: v for k2, v in settings.items() if k2 != "seed"})  # validated as it is made
            try:
                exemplars = [Exemplar(_inside(root, e["image"], f"{where}.exemplars[{j}].image"),
                                      _array(root, e["map"], f"{where}.exemplars[{j}].map", size),
                                      condition=e.get("condition", 0.0),
                                      condition_image=_inside(root, e["condition_image"],
                                                              f"{where}.exemplars[{j}].condition_image")
                                      if e.get("condition_image") is not None else None)
                             for j, e in enumerate(step.get("exemplars", []))]
                control = _control(root, step.get("control"), f"{where}.control")
                strength = _array(root, step["strength_map"], f"{where}.strength_map", size)
                prompts = [(_inside(root, p["image"], f"{where}.prompt_images[{j}].image"), p["weight"])
                           for j, p in enumerate(step.get("prompt_images", []))]
                regions = [Region(_array(root, r["map"], f"{where}.regions[{j}].map", size), r.get("prompt"),
                                  r.get("negative_prompt"), r.get("loras"))
                           for j, r in enumerate(step.get("regions", []))]
                result_path = _inside(root, step["result"], f"{where}.result")
            except (KeyError, TypeError, AttributeError) as error:
                raise InputError(f"the manifest entry is incomplete ({short(error)})", param=where) from None
            result = session.apply(exemplars, strength, prompt_images=prompts, control=control, regions=regions,
                                   **settings)
            if verify:
                saved, _ = load_image(result_path, name=f"{where}.result")
                if not np.array_equal(np.asarray(saved), np.asarray(result.image)):
                    raise PixelsError(
                        f"{where}: the replayed result differs from the saved one (another model, device,"
                        " dtype or library version?); load with verify=False to accept the replay"
                    )
        session.go(session._check_step(manifest.get("current", len(steps)), "current"))
        return session


def selections_of(metadata: dict[str, Any]) -> dict[str, Any]:
    """The records of the selections (`pixels.select`) an edit's maps and cut-outs were found with, by input."""
    found = {}
    if isinstance(metadata.get("painted_selections"), dict):  # the studio's: combined into maps painted on after
        found["painted"] = metadata["painted_selections"]
    if isinstance(metadata.get("strength_map"), dict):
        found["strength_map"] = metadata["strength_map"]
    for k, exemplar in enumerate(metadata.get("exemplars") or []):
        if isinstance(exemplar, dict):
            for key in ("strength_map", "cutout"):
                if isinstance(exemplar.get(key), dict):
                    found[f"exemplars[{k}].{key}"] = exemplar[key]
    return found


def extensions_of(editor: Editor) -> dict[str, Any]:
    """What extends the editor's model, as a session records it (a replay needs the same)."""
    return {"loras": [{"lora": lora["lora"], "scale": lora["scale"], "weight_name": lora["weight_name"]}
                      for lora in editor.loras],
            "ip_adapter": editor.ip_adapter, "controlnet": editor.controlnet_id}


def _check_extensions(recorded: Any, editor: Editor) -> None:
    if recorded is None:  # saved before extensions were recorded: none were loaded
        recorded = {"loras": [], "ip_adapter": None, "controlnet": None}
    if not isinstance(recorded, dict):
        raise InputError(f"expected a mapping, got {short(recorded)}", param="extensions")
    current = extensions_of(editor)
    for key, what in (("loras", "LoRAs"), ("ip_adapter", "IP-Adapter"), ("controlnet", "ControlNet")):
        if recorded.get(key) != current[key]:
            raise InputError(
                f"the session was edited with {what} {short(recorded.get(key))}, this editor has"
                f" {short(current[key])}; load the same ones (Editor.load_lora, load_ip_adapter, load_controlnet)"
                " before replaying it", param="extensions")


def _control(root: Path, recorded: Any, where: str) -> Control | None:
    if recorded is None:
        return None
    if not isinstance(recorded, dict):
        raise InputError(f"expected a mapping, got {short(recorded)}", param=where)
    image = _inside(root, recorded["image"], f"{where}.image") if recorded.get("image") is not None else None
    return Control(recorded.get("kind", "canny"), image, recorded.get("scale", 1.0), recorded.get("start", 0.0),
                   recorded.get("end", 1.0))


# -- the folder a session is saved in ------------------------------------------------------------------
def _read_manifest(root: Path) -> dict:
    try:
        data = json.loads(read_text(root / MANIFEST, f"folder {str(root)!r}", MANIFEST_LIMIT))
    except InputError as error:
        raise InputError(f"{str(root)!r} is not a saved session ({error})", param="folder") from None
    except ValueError as error:
        raise InputError(f"{str(root)!r} is not a saved session (manifest: {short(error)})", param="folder") from None
    if not isinstance(data, dict):
        raise InputError(f"{str(root)!r} is not a saved session (the manifest is not a JSON object)", param="folder")
    return data


def is_session(folder: Path) -> bool:
    """Whether `folder` holds a session pixels saved (its manifest says so)."""
    try:
        manifest = _read_manifest(folder)
    except InputError:
        return False
    legacy = "pixels_version" in manifest and "steps" in manifest  # saved before the format key existed
    return manifest.get("format") == FORMAT or legacy


def check_folder(folder: str | os.PathLike, *, overwrite: bool, inputs: Sequence = (), outputs: Sequence = ()
                 ) -> Path:
    """Check, before any work, that a session may be saved at `folder`; returns it.

    A session folder is pixels' own: it must not exist, or (with `overwrite`) hold a session pixels
    saved and only the files pixels writes into one. It may contain none of the inputs, and no other
    output of the command may lie inside it."""
    out = Path(folder).expanduser()
    if not out.parent.is_dir():
        raise InputError(f"folder {str(out.parent)!r} does not exist", param="session")
    recover(out.parent)  # a run killed while writing here is cleaned up before anything is judged
    if os.path.lexists(out):
        if out.is_symlink() or not out.is_dir():
            raise InputError(f"{str(out)!r} exists and is not a session folder; choose a new folder", param="session")
        if not is_session(out):
            raise InputError(
                f"{str(out)!r} is a folder that holds no pixels session; sessions are saved into a new"
                " folder (or replace a session pixels saved), never into a folder of other files", param="session"
            )
        if not overwrite:
            raise InputError(f"{str(out)!r} exists; pass overwrite=True to replace it", param="session")
        others = foreign(out)
        if others:
            raise InputError(
                f"{str(out)!r} holds files pixels did not write ({short(others[:3])}); it is not replaced."
                " Move them out, or save the session into a new folder", param="session"
            )
    check_name_length(out, "session")
    check_writable(out.parent, "session")
    inside = out.resolve()
    for given in inputs:
        if isinstance(given, (str, os.PathLike)) and _contains(inside, Path(given)):
            raise InputError(
                f"the folder {str(out)!r} contains the input {str(given)!r}; choose another", param="session"
            )
    for given in outputs:
        if given is not None and _contains(inside, Path(given)):
            raise InputError(
                f"the output {str(given)!r} would lie inside the session folder {str(out)!r}", param="session"
            )
    return out


def _contains(folder: Path, path: Path) -> bool:
    try:
        return path.expanduser().resolve().is_relative_to(folder)
    except (OSError, ValueError, RuntimeError):
        return False


def _inside(root: Path, name: Any, where: str) -> Path:
    """The file `name` of the manifest, which must be a relative path inside the session folder."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise InputError(f"expected a file name inside the session folder, got {short(name)}", param=where)
    path = root / name
    try:
        inside = not Path(name).is_absolute() and path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise InputError(f"{short(name)} lies outside the session folder {str(root)!r}; refused", param=where)
    return path


def _array(root: Path, name: Any, where: str, size: tuple[int, int]) -> np.ndarray:
    """A saved (H, W) float map: its header is checked (dtype, shape) before any data is read."""
    path = _inside(root, name, where)
    expected = (size[1], size[0])
    with open_regular(path, where) as f:
        try:
            version = np.lib.format.read_magic(f)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = header(f)
        except (ValueError, OSError, EOFError) as error:
            raise InputError(f"{str(path)!r} is not a saved array ({short(error)})", param=where) from None
        if dtype not in (np.float64, np.float32) or tuple(shape) != expected:
            raise InputError(
                f"{str(path)!r} holds {dtype} {tuple(shape)}, expected a float map of shape {expected}", param=where
            )
        f.seek(0)
        try:
            values = np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise InputError(f"{str(path)!r} is truncated or corrupt ({short(error)})", param=where) from None
    return values


__all__ = ["EditSession", "Step", "check_folder", "is_session"]
