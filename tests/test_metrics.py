"""Weight-free edit measures and map makers: values on constructed cases where the answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pixels.errors import InputError
from pixels.eval.metrics import (
    background_fidelity,
    boundary_band,
    colour_distance,
    evaluate,
    naive_paste,
    seam_energy,
    ssim,
)
from pixels.inputs import maps

RNG = np.random.default_rng(0)


def flat(value: int, size=(32, 32)) -> np.ndarray:
    return np.full((*size, 3), value, np.uint8)


def test_background_fidelity_exact_and_inexact():
    source = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    strength = maps.box((16, 16), (4, 4, 8, 8))
    edited = source.copy()
    edited[4:12, 4:12] = 0  # only inside the edited box
    assert background_fidelity(edited, source, strength) == {"pixels": 256 - 64, "max_error": 0.0, "psnr": math.inf}
    edited[0, 0] = (source[0, 0].astype(int) + 10).clip(0, 255) if source[0, 0, 0] < 245 else source[0, 0] - 10
    report = background_fidelity(edited, source, strength)
    assert report["max_error"] == pytest.approx(10) and 30 < report["psnr"] < math.inf


def test_boundary_band_is_a_ring():
    region = maps.box((20, 20), (5, 5, 10, 10)) > 0
    band = boundary_band(region, width=1)
    assert band[5, 5] and band[4, 4] and not band[6, 6] and not band[10, 10] and not band[0, 0]
    assert band.sum() == 12 * 12 - 8 * 8


def test_seam_energy_scores_a_hard_paste_above_a_blend():
    source, exemplar = flat(40), flat(200)
    region = maps.box((32, 32), (8, 8, 16, 16)) > 0
    hard = naive_paste(source, exemplar, region)
    ramp = maps.radial((32, 32), (16, 16), 4, 16)[..., None]
    soft = (source * (1 - ramp) + exemplar * ramp).round().astype(np.uint8)
    assert seam_energy(hard, region) > 4 * seam_energy(soft, region)
    assert seam_energy(source, region) == 0.0
    with pytest.raises(InputError, match="region: has no boundary"):
        seam_energy(source, np.zeros((32, 32), bool))


def test_ssim_and_colour_distance():
    image = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    region = np.ones((32, 32), bool)
    assert ssim(image, image) == pytest.approx(1.0)
    noisy = np.clip(image + RNG.normal(0, 40, image.shape), 0, 255).astype(np.uint8)
    assert ssim(noisy, image, region) < 0.9
    assert colour_distance(image, image, region) == 0.0
    assert colour_distance(flat(0), flat(255), region) == pytest.approx(1.0)


def test_evaluate_reports_every_group():
    source, exemplar = flat(40), flat(200)
    strength = maps.radial((32, 32), (16, 16), 6, 12)
    result = naive_paste(source, exemplar, strength > 0)
    report = evaluate(result, source, strength, exemplar)
    assert set(report) == {"background", "seam", "seam_vs_paste", "exemplar", "exemplar_in_source"}
    assert report["background"]["max_error"] == 0
    assert report["exemplar"]["colour_distance"] == 0 and report["exemplar_in_source"]["colour_distance"] > 0.5
    with pytest.raises(InputError, match="no pixel has strength 1"):
        evaluate(result, source, strength * 0.5, exemplar)
    with pytest.raises(InputError, match="result: expected an RGB image"):
        evaluate(np.zeros((32, 32)), source, strength)


def test_map_makers():
    r = maps.radial((9, 9), (4.5, 4.5), 1, 3)
    assert r[4, 4] == 1 and r[0, 0] == 0 and 0 < r[4, 6] < 1
    line = maps.linear((10, 1), (0, 0.5), (10, 0.5))
    assert np.all(np.diff(line[0]) > 0) and line[0, 0] == pytest.approx(0.05) and line[0, -1] == pytest.approx(0.95)
    b = maps.box((4, 3), (1, 1, 2, 5), 0.5)
    assert b.tolist() == [[0, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 0.5, 0.5, 0]]
    assert np.asarray(maps.to_image(b)).tolist()[1] == [0, 128, 128, 0]
    for call, match in [
        (lambda: maps.radial((4, 4), (1, 1), 3, 2), "inner <= outer"),
        (lambda: maps.linear((4, 4), (1, 1), (1, 1)), "start and end must differ"),
        (lambda: maps.box((4, 4), (0, 0, 1, 1), 2.0), r"value must lie in \[0, 1\]"),
        (lambda: maps.box((0, 4), (0, 0, 1, 1)), "size: expected"),
    ]:
        with pytest.raises(InputError, match=match):
            call()
