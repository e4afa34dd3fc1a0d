"""CLIP-I, CLIP-T and DINO scores on tiny random encoders saved to disk; missing weights are skipped clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tokenizer, photo
from PIL import Image

from pixels.cli import main
from pixels.errors import InputError, ModelNotFoundError
from pixels.eval.model_metrics import clip_scores, crop_to_region, dino_score


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    root = tmp_path_factory.mktemp("encoders")
    small = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    config = CLIPConfig(
        text_config=dict(small, vocab_size=1000, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(small, image_size=32, patch_size=8), projection_dim=16,
    )
    CLIPModel(config).save_pretrained(root / "clip")
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=make_tokenizer(root / "tok")).save_pretrained(root / "clip")
    ViTModel(ViTConfig(**small, image_size=32, patch_size=8), add_pooling_layer=False).save_pretrained(root / "dino")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "dino")
    return root / "clip", root / "dino"


def test_scores_of_identical_and_different_images(encoders):
    clip, dino = encoders
    a, b = photo(48, 40, seed=1), Image.fromarray(255 - np.asarray(photo(48, 40, seed=1)))
    same = clip_scores(a, a, "a cat", model=str(clip))
    assert same["clip_i"] == pytest.approx(1.0, abs=1e-5) and -1 <= same["clip_t"] <= 1
    assert clip_scores(a, b, model=str(clip))["clip_i"] < 0.9999
    assert dino_score(a, a, model=str(dino))["dino"] == pytest.approx(1.0, abs=1e-5)
    assert dino_score(a, b, model=str(dino))["dino"] < 0.9999


def test_region_crops_to_its_bounding_box():
    region = np.zeros((40, 48), bool)
    region[5:15, 10:30] = True
    assert crop_to_region(photo(48, 40), region).size == (20, 10)


def test_missing_weights_raise_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="clip: model 'someone/no-clip' is not available locally.*hf download"):
        clip_scores(photo(), photo(), model="someone/no-clip")
    with pytest.raises(ModelNotFoundError, match="dino: model .* is not available locally"):
        dino_score(photo(), photo(), model=str(tmp_path / "nothing"))


def test_evaluate_command_with_and_without_encoders(encoders, tmp_path, capsys):
    clip, dino = encoders
    for name, seed in (("result", 1), ("source", 2), ("exemplar", 3)):
        photo(32, 32, seed=seed).save(tmp_path / f"{name}.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    Image.fromarray(mask).save(tmp_path / "map.png")
    args = ["evaluate", str(tmp_path / "result.png"), "--source", str(tmp_path / "source.png"),
            "--map", str(tmp_path / "map.png"), "--exemplar", str(tmp_path / "exemplar.png"), "--prompt", "a cat"]
    assert main([*args, "--clip", str(clip), "--dino", str(dino)]) == 0
    out = capsys.readouterr().out
    assert "model_based" in out and "clip_i" in out and "clip_t" in out and "dino" in out
    assert main([*args, "--clip", "someone/no-clip", "--dino", "none"]) == 0
    captured = capsys.readouterr()
    assert "CLIP skipped: clip: model 'someone/no-clip' is not available locally" in captured.err
    assert "model_based" not in captured.out and "seam_vs_paste" in captured.out


def test_frechet_distance_of_image_sets(encoders):
    from pixels.eval.model_metrics import _frechet, frechet_distance

    _, dino = encoders
    a = [photo(32, 32, seed=s) for s in range(6)]
    b = [Image.fromarray(255 - np.asarray(p)) for p in a]
    assert frechet_distance(a, a, model=str(dino)) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b, model=str(dino)) > 1e-3
    assert frechet_distance(a, b, model=str(dino)) == pytest.approx(frechet_distance(b, a, model=str(dino)), rel=1e-6)
    # against the closed form for diagonal Gaussians: |mu|^2 + sum (s_a - s_b)^2 over standard deviations
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(0, 1, (20000, 3)))
    y = torch.from_numpy(rng.normal(0, 1, (20000, 3)) * np.array([1.0, 2.0, 3.0]) + np.array([1.0, 0.0, 0.0]))
    assert _frechet(x, y) == pytest.approx(1.0 + 0 + 1 + 4, rel=0.05)
    with pytest.raises(InputError, match="at least 2 images per set"):
        frechet_distance(a[:1], a, model=str(dino))
