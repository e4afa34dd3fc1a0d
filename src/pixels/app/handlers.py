"""The studio's event handlers as plain functions (no Gradio here), so they can be tested without a browser.

Each takes the app `Context`, the session's `StudioSession` and plain values (paths, numpy arrays,
dataclasses) and returns plain values; `ui.py` wires them to components. Bad input raises
`pixels.InputError` whose message starts with the field's name; the UI shows it as a message.
This module has the photo, the edit and the history; `canvas` has the painting and map tools.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixels import Control, EditSession, InputError, plan_edit
from pixels.inputs.images import ImageLike, load_image
from pixels.inputs.read import lora_scales_label

from . import archive, photos
from .canvas import (
    bake,
    canvas_value,
    edit_inputs,
    empty_maps,
    painted_selections,
    require,
    require_photo,
)
from .context import Context
from .engine import Cancelled, Progress
from .exemplars import MAX_SLOTS, Slot
from .results import caption, replayed_frame, report_markdown, result_frame
from .settings import edit_kwargs, from_metadata, read_png_settings
from .state import REGION_TARGETS, Frame, History, StudioSession


@dataclass
class ResultView:
    """The result panel: the latest edit of the history, before and after."""

    before: Image.Image
    after: Image.Image
    report: str  # markdown table of the measurements
    seed: int | None
    png: Path | None  # the result with pixels' metadata, for download
    map_png: Path | None  # the combined strength map, 8-bit, black = kept
    candidate: bool  # not yet continued from


@dataclass
class View:
    """Everything the page shows that depends on the session's history."""

    canvas: dict | None  # new ImageEditor value (background shown, strokes cleared); None: leave it
    gallery: list[tuple[Image.Image, str]]  # the history strip, source first
    result: ResultView | None  # None: no edit yet
    current_png: Path | None  # what the next edit starts from, for download
    status: str  # a line of markdown
    size: tuple[int, int] | None  # the photo's (W, H)
    variations: list[tuple[Image.Image, str]] = field(default_factory=list)  # the last run's, when it made several
    can_continue: bool = False  # the shown step is not the start: "continue from here" would make it the start
    slots: list[Slot] | None = None  # exemplar tabs to fill in (a loaded session's last step); None: leave them
    settings: dict[str, Any] | None = None  # settings fields to fill in ({spec key: value}); None: leave them
    regions: list[tuple[str, str]] | None = None  # each region's (prompt, negative prompt) fields; None: leave them


# -- views ------------------------------------------------------------------------------------------
def view(st: StudioSession, canvas: dict | None = None, status: str = "") -> View:
    """What the page shows for the session now: every step in the history strip (in the order they were made),
    and the shown step, before and after, in the result panel (none while the source is shown)."""
    history = st.history
    if history is None:
        return View(canvas, [], None, None, status or "Choose a photo to start.", None)
    frames = history.frames
    gallery = [(f.image, caption(history, k)) for k, f in enumerate(frames)]
    result = None
    shown = history.shown
    if shown:
        frame = frames[shown]
        result = ResultView(frames[history.parent(shown)].image, frame.image, report_markdown(frame.report),
                            history.seed(shown), frame.png, frame.map_png, history.candidate)
        if frame.note:
            status = f"{status} ({frame.note})".strip()
    variations = [(frame.image, f"{k} · seed {r.metadata['seed']}" + (" · shown" if frame is frames[shown] else ""))
                  for k, (r, frame) in enumerate(history.variations, 1)] if history.variations else []
    return View(canvas, gallery, result, history.source.png, status, history.source.image.size, variations,
                can_continue=history.candidate)


def _new_history(ctx: Context, st: StudioSession, picture: Image.Image, name: str) -> View:
    session = EditSession(ctx.engine.editor, picture)
    stem = Path(name).stem or "photo"
    st.history = History(session, [Frame(picture, st.write_png(picture, f"{stem}-source"))])
    st.source_name = name
    st.bases, st.selections = empty_maps(picture.size), {}
    width, height = picture.size
    return view(st, canvas_value(st), f"Photo **{name}**, {width}x{height}. Paint where to edit (white = full"
                                      " edit, black = keep).")


# -- the photo ----------------------------------------------------------------------------------------
def use_photo(ctx: Context, st: StudioSession | None, image: ImageLike | None, name: str = "photo") -> View:
    """A new photo (uploaded or pasted): read as the command line reads it (format allow-list, EXIF
    rotation, odd modes, the megapixel limit); the history and maps start afresh."""
    st = require(st)
    if image is None:
        raise InputError("source: no photo given")
    with st.busy("source"):
        with named_upload(image):
            picture, _ = load_image(image, name="source", max_pixels=ctx.max_pixels)
        return _new_history(ctx, st, picture, Path(name).name or "photo")


def check_upload(ctx: Context, path: str | None, name: str) -> None:
    """An uploaded image, read as every input is (format allow-list, the megapixel limit) before it is used:
    a refused one raises InputError naming `name`."""
    if path is not None:
        with named_upload(path):
            load_image(path, name=name, max_pixels=ctx.max_pixels)


@contextmanager
def named_upload(path: Any) -> Iterator[None]:
    """Errors about an uploaded file name it as the user does (its file name), not by the server's copy."""
    try:
        yield
    except InputError as error:
        if not isinstance(path, str) or path not in error.message:
            raise
        raise InputError(error.message.replace(path, Path(path).name), param=error.param) from None


def use_sample(ctx: Context, st: StudioSession | None, name: str) -> View:
    """One of the sample photos (`photos.catalogue`)."""
    return use_photo(ctx, st, photos.bundled(name), name=name.split(" ")[0] + ".png")


# -- running ---------------------------------------------------------------------------------------
def arm(st: StudioSession | None) -> int:
    """Run was pressed: a run id whose cancel flag exists while the edit waits in the queue."""
    return require(st).arm()


def cancel(st: StudioSession | None) -> str:
    """Stop this session's edits: the running one between two steps, queued ones before they start."""
    if st is None or st.closed:
        return "Nothing to cancel."
    count = st.cancel()
    return "Cancelling…" if count else "Nothing to cancel."


def run_edit(ctx: Context, st: StudioSession | None, run_id: int | None, canvas: dict | None, softness: float,
             slots: list[Slot], settings: dict[str, Any], on_step: Progress | None = None,
             extensions: dict[str, Any] | None = None, variations: Any = 1,
             texts: list[tuple[Any, ...]] | None = None) -> View:
    """Edit the source with the painted maps, the exemplars and the settings ({spec key: field value}, the
    model's recommended values for the rest) and `extensions` (`extension_kwargs`); the result becomes the
    candidate (see `History`). With `variations` N > 1, the edit runs with N seeds at once (the seed field's
    value, or a random one, and the N - 1 after it), denoised together; the first is shown and `pick` shows
    another. `texts`: (prompt, negative prompt, LoRA scales) of each prompt-only region, painted on "region k".
    Cancelled: the history is unchanged and the status says so."""
    st = require(st)
    count = check_variations(variations)
    token = st.token(run_id)
    try:
        with st.busy("run"):
            history = require_photo(st)
            kwargs = edit_kwargs({**ctx.engine.defaults, **settings}, ctx.engine.takes_prompt, ctx.engine.max_steps)
            exemplars, strength_map, regions = edit_inputs(ctx, st, canvas, softness, slots, texts)
            step = len(history.frames)  # the new result's number in the history
            # checked and read before the edit waits for the model: a bad input never takes a turn in the queue
            job = plan_edit(history.source.image, exemplars, strength_map, limits=ctx.engine.editor.limits,
                            regions=regions, **kwargs, **(extensions or {}))
            selections = painted_selections(st, slots)
            if selections:  # what the painted maps were selected with, before any painting on top
                job = replace(job, labels={**job.labels, "painted_selections": selections})

            def frame_of(result: Any, before: Image.Image) -> Frame:
                return result_frame(st, result, before, step)

            notes = list(job.notes)  # what reading converted (a photo resized, an exemplar fitted...), and the model's

            def run(on_step_: Progress) -> Any:
                if count == 1:
                    return history.apply(frame_of, job, on_step=on_step_, on_note=notes.append)
                seeds = [(job.seed + k) % 2 ** 32 for k in range(count)]
                return history.apply_variations(frame_of, job, seeds, on_step=on_step_)[0]

            result, ticket = ctx.engine.run(run, token, on_step)
    except Cancelled as error:
        return view(st, status=f"{str(error).capitalize()}.")
    finally:
        st.finish(run_id)
    md, seconds = result.metadata, ticket.finished - ticket.started
    said = " Notes: " + "; ".join(dict.fromkeys(notes)) + "." if notes else ""
    if count > 1:
        seeds = ", ".join(str(r.metadata["seed"]) for r, _ in history.variations)
        return view(st, status=f"Done in {seconds:.1f} s: {count} variations (seeds {seeds}), {md['steps_run']} steps"
                               " each, denoised together. Pick one under **Variations**; the first is shown." + said)
    return view(st, status=f"Done in {seconds:.1f} s: seed {md['seed']}, {md['steps_run']} steps, {len(exemplars)}"
                           " exemplar(s). **Continue from here** to edit this result further." + said)


MAX_VARIATIONS = 8  # seeds one run may denoise together on a shared server


def check_variations(value: Any) -> int:
    """The number of variations asked for, as an integer in [1, MAX_VARIATIONS]."""
    try:
        count = int(value) if value is not None and float(value) == int(float(value)) else None
    except (TypeError, ValueError, OverflowError):
        count = None
    if count is None or isinstance(value, bool) or not 1 <= count <= MAX_VARIATIONS:
        raise InputError(f"variations: expected a whole number in [1, {MAX_VARIATIONS}], got {value!r}")
    return count


def pick(st: StudioSession | None, canvas: dict | None, k: Any) -> View:
    """Show variation k (0-based) of the last run in place of the one shown (it becomes the candidate)."""
    st = require(st)
    with st.busy("variations"):
        history = require_photo(st)
        history.pick(k)
        seed = history.seed(history.shown)
        return view(st, status=f"Variation {k + 1} (seed {seed}) shown. **Continue from here** to edit it further.")


def extension_kwargs(prompt_image: str | None = None, prompt_weight: float = 1.0, control: str = "off",
                     control_image: str | None = None, scale: float = 1.0, start: float = 0.0, end: float = 1.0
                     ) -> dict[str, Any]:
    """The edit arguments of the page's extension fields: a prompt image with its weight (`prompt_images`), and
    ControlNet guidance (`control`: off, canny or image, with its image, scale and part of the schedule)."""
    out: dict[str, Any] = {}
    if prompt_image:
        out["prompt_images"] = [(prompt_image, prompt_weight)]
    if control != "off":
        if control == "image" and not control_image:
            raise InputError("give the control image, or choose canny", param="control.image")
        out["control"] = Control(control, control_image if control == "image" else None, scale, start, end)
    return out


# -- history --------------------------------------------------------------------------------------------
def continue_edit(st: StudioSession | None, canvas: dict | None) -> View:
    """Make the shown step (the latest result, or a step clicked in the history) the start of the next edit:
    the next run branches there (the maps stay as they are)."""
    st = require(st)
    with st.busy("continue"):
        history = require_photo(st)
        if not history.candidate:
            raise InputError("continue: the next edit already starts from the step shown; run an edit, or click"
                             " a step in the history")
        bake(st, canvas)
        branch = bool(history.session.children(history.shown))
        history.accept()
        where = f"step {history.start}" if history.start else "the source photo"
        return view(st, canvas_value(st), f"Continuing from {where}"
                                          + (": the next edit starts a new branch." if branch else "."))


def undo(st: StudioSession | None, canvas: dict | None) -> View:
    """Back to the step before (the maps stay as they are); checked before anything changes."""
    st = require(st)
    with st.busy("undo"):
        history = require_photo(st)
        if not history.can_undo:
            raise InputError("undo: nothing to undo")
        bake(st, canvas)
        history.undo()
        return view(st, canvas_value(st), f"Undone: back to step {history.start}." if history.start else
                    "Undone: back to the source photo.")


def redo(st: StudioSession | None, canvas: dict | None) -> View:
    """The step undone last, back again (the maps stay as they are); checked before anything changes."""
    st = require(st)
    with st.busy("redo"):
        history = require_photo(st)
        if not history.can_redo:
            raise InputError("redo: nothing to redo")
        bake(st, canvas)
        history.redo()
        return view(st, canvas_value(st), f"Redone step {history.start}.")


def save_session(st: StudioSession | None) -> Path:
    """The session as a zip (`EditSession.save` inside), for download."""
    st = require(st)
    with st.busy("save"):
        history = require_photo(st)
        folder = st.new_path("session", "")
        history.session.save(folder)
        try:
            return archive.pack(folder, st.new_path(f"{Path(st.source_name).stem or 'photo'}-session", ".zip"))
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def load_session(ctx: Context, st: StudioSession | None, path: str | None) -> View:
    """A session zip saved by the studio (or a zipped --save-session folder): replayed with the app's
    model, each step checked to give the saved result bit for bit (`EditSession.load`)."""
    st = require(st)
    if path is None:
        raise InputError("session zip: no file given")
    with st.busy("load session"):
        folder = st.new_path("loaded", "")
        try:
            root = archive.unpack(path, folder)
            session, _ = ctx.engine.run(lambda _step: EditSession.load(root, ctx.engine.editor), threading.Event())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        source, nodes = session.source, session.nodes
        st.source_name = "session.png"
        frames = [Frame(source, st.write_png(source, "session-source"))]
        frames += [replayed_frame(st, node.result, node.settings, k) for k, node in enumerate(nodes, 1)]
        st.history = History(session, frames)
        st.bases, st.selections = empty_maps(source.size), {}
        st.target = "strength"
        slots, restored, regions = restore_inputs(st, session)
        branches = sum(1 for node in session.tree if not node["children"])
        restored_line = " The shown step's maps, exemplars and settings are back on the page." \
            if restored is not None else ""
        shown = view(st, canvas_value(st), f"Loaded a session of {len(nodes)} step(s)"
                                           + (f" in {branches} branches" if branches > 1 else "")
                                           + "; every step replayed bit for bit." + restored_line)
        shown.slots, shown.settings, shown.regions = slots, restored, regions
        return shown


def restore_inputs(st: StudioSession, session: EditSession
                   ) -> tuple[list[Slot] | None, dict[str, Any] | None, list[tuple[str, str, str]] | None]:
    """The page's inputs as the session's last step applied them: its combined strength map on the canvas, its
    exemplars (placed on the photo, so aligned) each with its own map as its region and its condition weight,
    its settings, and its regional text and LoRA scales, each on a region's map (an exemplar's own too, on its
    map: the same edit). None, None, None for a session of no step."""
    steps = session.steps
    if not steps:
        return None, None, None
    last = steps[-1]
    st.bases["strength"] = np.array(last.strength, dtype=np.float64)
    slots = []
    conditions = last.conditions or [(0.0, None)] * len(last.exemplars)
    for k, (picture, own, (weight, _)) in enumerate(zip(last.exemplars, last.exemplar_maps, conditions)):
        if k >= MAX_SLOTS:
            break  # the page has four tabs; the session keeps every exemplar
        path = st.write_png(picture, f"session-exemplar-{k + 1}")
        st.bases[f"exemplar {k + 1}"] = np.array(own, dtype=np.float64)
        slots.append(Slot(str(path), "auto", (0, 0, 0, 0), "cover", "own map", float(weight)))
    slots += [Slot()] * (MAX_SLOTS - len(slots))
    regions = []
    for k, text in enumerate(last.texts[:len(REGION_TARGETS)]):
        st.bases[REGION_TARGETS[k]] = np.array(text.map, dtype=np.float64)
        regions.append((text.prompt or "", text.negative or "", lora_scales_label(text.loras)))
    regions += [("", "", "")] * (len(REGION_TARGETS) - len(regions))
    return slots, from_metadata(last.settings), regions


def restore_settings(ctx: Context, path: str | None) -> dict[str, Any]:
    """The settings recorded in a PNG that pixels wrote (the studio's download or `pixels edit -o X.png`)."""
    if path is None:
        raise InputError("settings PNG: no file given")
    return read_png_settings(path, ctx.max_pixels)


__all__ = [
    "MAX_VARIATIONS", "ResultView", "View", "arm", "cancel", "check_variations", "continue_edit", "load_session",
    "pick", "redo", "restore_settings", "run_edit", "save_session", "undo", "use_photo", "use_sample", "view",
]
