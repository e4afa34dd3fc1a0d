"""An edit's result as the studio keeps and shows it: its files for download, its measurements, its caption."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image

from pixels import EditResult, InputError, PixelsError
from pixels.eval.metrics import evaluate

from .painting import map_image
from .state import Frame, History, StudioSession


def measure(result: EditResult, before: Image.Image) -> dict[str, Any]:
    """pixels.eval.metrics for the edit: background exactness and seams; with one exemplar, also how its seam
    compares with a naive paste and how much of it survives."""
    exemplar = result.exemplars[0] if len(result.exemplars) == 1 else None
    try:
        return evaluate(result.image, before, result.strength_map, exemplar)
    except InputError:  # nothing grafted (no pixel at strength 1), or an exemplar it cannot compare
        return evaluate(result.image, before, result.strength_map)


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:.4g}" if isinstance(value, float) else f"{value:,}"


def report_markdown(report: dict[str, Any] | None) -> str:
    """The measurements as a small table (what `pixels evaluate` prints)."""
    if not report:
        return "_No measurements for this step (replayed from a saved session)._"
    rows = []
    background = report["background"]
    exact = " — bit-exact" if background["max_error"] == 0 else ""
    rows.append(("kept pixels (strength 0)", (f"{_number(background['pixels'])} pixels, max error"
                                              f" {_number(background['max_error'])}, PSNR"
                                              f" {_number(background['psnr'])} dB{exact}")))
    if "seam" in report:
        seam = report["seam"]
        rows.append(("seam energy at the edit's edge",
                     f"{_number(seam['edit_boundary'])} (source {_number(seam['source'])})"))
    if "seam_vs_paste" in report:
        paste = report["seam_vs_paste"]
        rows.append(("seam vs naive paste", (f"{_number(paste['result'])} vs {_number(paste['naive_paste'])},"
                                             f" ratio **{_number(paste['ratio'])}** (below 1: smoother than pasting)")))
    if "exemplar" in report:
        mine, source = report["exemplar"], report["exemplar_in_source"]
        rows.append(("exemplar kept (PSNR / SSIM / colour distance)",
                     (f"{_number(mine['psnr'])} dB / {_number(mine['ssim'])} / {_number(mine['colour_distance'])}"
                      f" (unedited: {_number(source['psnr'])} dB / {_number(source['ssim'])} /"
                      f" {_number(source['colour_distance'])})")))
    return "| measure | value |\n| --- | --- |\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def result_frame(st: StudioSession, result: EditResult, before: Image.Image, step: int) -> Frame:
    """The frame of a new result: its PNG with pixels' metadata (as `pixels edit` writes it), its
    map, its measurements. Never raises: a file that cannot be written is noted in the frame."""
    metadata = dict(result.metadata)
    metadata["source"] = st.source_name if step == 1 else f"result of step {step - 1}"
    report = measure(result, before)
    stem = Path(st.source_name).stem or "photo"
    try:
        png = st.write_png(result.image, f"{stem}-step{step}-seed{metadata['seed']}", metadata)
        map_png: Path | None = st.write_png(map_image(result.strength_map), f"{stem}-step{step}-map")
        note = ""
    except (OSError, PixelsError) as error:
        png, map_png, note = None, None, f"the result could not be written for download ({error})"
    return Frame(result.image, png, result, map_png, report, note)


def replayed_frame(st: StudioSession, image: Image.Image, settings: dict[str, Any], step: int) -> Frame:
    """The frame of a step replayed from a saved session: its PNG carries the step's recorded settings."""
    metadata = {**settings, "source": f"replayed session step {step}"}
    try:
        return Frame(image, st.write_png(image, f"session-step{step}", metadata))
    except (OSError, PixelsError) as error:
        return Frame(image, None, note=f"the image could not be written for download ({error})")


def caption(history: History, step: int) -> str:
    """The history strip's caption of `step` (0 = the source): short, since thumbnails are small. A step made
    from another than the one before it says which; "start" marks what the next edit starts from, "shown" the
    step in the result panel."""
    if step == 0:
        text = "source"
    else:
        seed, parent = history.seed(step), history.parent(step)
        text = f"{step} · seed {seed}" if seed is not None else f"step {step}"
        if parent != step - 1:
            text += f" · from {parent or 'source'}"
    if step == history.start:
        text += " · start"
    elif step == history.shown:
        text += " · shown"
    return text


__all__ = ["caption", "measure", "replayed_frame", "report_markdown", "result_frame"]
