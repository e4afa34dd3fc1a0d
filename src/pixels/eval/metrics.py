"""Weight-free measures of an edit: background fidelity, seam quality and exemplar fidelity.

All take images as PIL images or uint8 (H, W, 3) arrays of the same size, and regions or strength maps
as (H, W) arrays. Pixel values are compared in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError


def _rgb(image: Any, name: str) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InputError(f"expected an RGB image (uint8, (H, W, 3)), got {array.dtype} {array.shape}", param=name)
    return array.astype(np.float64) / 255.0


def _same_size(name: str, array: np.ndarray, shape: tuple[int, int]) -> None:
    if array.shape[:2] != shape:
        raise InputError(f"size {array.shape[1]}x{array.shape[0]} differs from {shape[1]}x{shape[0]}", param=name)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def background_fidelity(result: Any, source: Any, strength: np.ndarray) -> dict[str, float]:
    """PSNR (dB, inf when identical) and largest error (8-bit levels) over the strength-0 pixels."""
    out, src = _rgb(result, "result"), _rgb(source, "source")
    _same_size("source", src, out.shape[:2])
    _same_size("strength map", strength, out.shape[:2])
    keep = np.asarray(strength) == 0
    if not keep.any():
        return {"pixels": 0, "max_error": 0.0, "psnr": math.inf}
    error = out[keep] - src[keep]
    mse = float(np.mean(error**2))
    return {
        "pixels": int(keep.sum()),
        "max_error": float(np.abs(error).max() * 255),
        "psnr": math.inf if mse == 0 else 10 * math.log10(1.0 / mse),
    }


def boundary_band(region: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels within `width` pixels (Chebyshev distance) of the edge of a boolean region, on both sides."""
    mask = torch.from_numpy(np.asarray(region, bool).astype(np.float32))[None, None]
    k = 2 * width + 1
    grown = F.max_pool2d(mask, k, stride=1, padding=width)
    shrunk = -F.max_pool2d(-mask, k, stride=1, padding=width)
    return (grown - shrunk)[0, 0].numpy() > 0


def seam_energy(image: Any, region: np.ndarray, width: int = 2) -> float:
    """Mean squared luminance gradient across the boundary band of `region`: a hard seam scores high."""
    lum = _luma(_rgb(image, "image"))
    _same_size("region", region, lum.shape)
    gx = np.zeros_like(lum)
    gy = np.zeros_like(lum)
    gx[:, :-1] = lum[:, 1:] - lum[:, :-1]
    gy[:-1] = lum[1:] - lum[:-1]
    band = boundary_band(region, width)
    if not band.any():
        raise InputError("has no boundary inside the image (empty or the whole frame)", param="region")
    return float(np.mean((gx**2 + gy**2)[band]))


def naive_paste(source: Any, exemplar: Any, region: np.ndarray) -> np.ndarray:
    """The exemplar copied into `region` of the source with a hard edge: the baseline for seams."""
    src, ex = np.asarray(source), np.asarray(exemplar)
    _same_size("exemplar", ex, src.shape[:2])
    return np.where(np.asarray(region, bool)[..., None], ex, src)


def ssim(a: Any, b: Any, region: np.ndarray | None = None, sigma: float = 1.5) -> float:
    """Mean structural similarity (Wang et al. 2004, Gaussian window) of the luminances, over `region`."""
    x = torch.from_numpy(_luma(_rgb(a, "image")))[None, None]
    y = torch.from_numpy(_luma(_rgb(b, "reference")))[None, None]
    radius = int(3 * sigma + 0.5)
    g = torch.exp(-((torch.arange(-radius, radius + 1, dtype=torch.float64)) ** 2) / (2 * sigma**2))
    g = g / g.sum()

    def blur(t: torch.Tensor) -> torch.Tensor:
        small = min(t.shape[-2:]) <= radius  # reflection needs more pixels than the window's radius
        t = F.pad(t, (radius, radius, radius, radius), mode="replicate" if small else "reflect")
        t = F.conv2d(t, g.view(1, 1, 1, -1))
        return F.conv2d(t, g.view(1, 1, -1, 1))

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    value = value[0, 0].numpy()
    if region is None:
        return float(value.mean())
    region = np.asarray(region, bool)
    _same_size("region", region, value.shape)
    if not region.any():
        raise InputError("is empty", param="region")
    return float(value[region].mean())


def colour_distance(a: Any, b: Any, region: np.ndarray) -> float:
    """Distance of colour statistics inside `region`: mean |difference| of per-channel means and stds."""
    x, y = _rgb(a, "image"), _rgb(b, "reference")
    region = np.asarray(region, bool)
    if not region.any():
        raise InputError("is empty", param="region")
    xs, ys = x[region], y[region]
    return float(np.mean(np.abs(xs.mean(0) - ys.mean(0))) + np.mean(np.abs(xs.std(0) - ys.std(0))))


def region_psnr(a: Any, b: Any, region: np.ndarray) -> float:
    """PSNR (dB) of a against b inside `region` (inf when identical there)."""
    x, y = _rgb(a, "image"), _rgb(b, "reference")
    region = np.asarray(region, bool)
    if not region.any():
        raise InputError("is empty", param="region")
    mse = float(np.mean((x[region] - y[region]) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def exemplar_fidelity(result: Any, exemplar: Any, region: np.ndarray) -> dict[str, float]:
    """How much of the exemplar survives in `region`: PSNR and SSIM (higher = closer) and colour distance
    (lower = closer). SSIM rates two nearly flat patches as similar, so for low-contrast exemplars read
    it together with PSNR and colour distance."""
    return {
        "psnr": region_psnr(result, exemplar, region),
        "ssim": ssim(result, exemplar, region),
        "colour_distance": colour_distance(result, exemplar, region),
    }


def evaluate(result: Any, source: Any, strength: np.ndarray, exemplar: Any | None = None) -> dict[str, Any]:
    """Every weight-free measure for one edit. The exemplar region is where the strength is 1."""
    strength = np.asarray(strength, np.float64)
    report: dict[str, Any] = {"background": background_fidelity(result, source, strength)}
    edited = strength > 0
    if edited.any() and not edited.all():
        report["seam"] = {"edit_boundary": seam_energy(result, edited), "source": seam_energy(source, edited)}
    if exemplar is not None:
        graft = strength >= 1.0
        if not graft.any():
            raise InputError("strength map: no pixel has strength 1, so no exemplar was grafted")
        if not graft.all():  # a full-frame graft has no seam to compare
            paste = naive_paste(source, exemplar, graft)
            seams = {"result": seam_energy(result, graft), "naive_paste": seam_energy(paste, graft)}
            # a paste with no gradient at its edge (flat images) has nothing to compare with
            seams["ratio"] = seams["result"] / seams["naive_paste"] if seams["naive_paste"] > 0 else None
            report["seam_vs_paste"] = seams
        report["exemplar"] = exemplar_fidelity(result, exemplar, graft)
        report["exemplar_in_source"] = exemplar_fidelity(source, exemplar, graft)  # the same measure, unedited
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = []
    for group, values in report.items():
        cells = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {'n/a' if v is None else v}"
                          for k, v in values.items())
        lines.append(f"{group:<20} {cells}")
    return "\n".join(lines)
