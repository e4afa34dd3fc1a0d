"""Short model names: resolution, their families, and `pixels models`."""

from __future__ import annotations

import json

import pytest
import torch

from pixels.cli import main
from pixels.errors import ModelNotFoundError
from pixels.models.catalog import BY_NAME, is_cached
from pixels.models.loading import load_pipeline

CPU = dict(device=torch.device("cpu"), dtype=torch.float32)


def fake_cache(root, repo: str) -> None:
    """The layout huggingface_hub uses for a cached model_index.json."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    (folder / "snapshots" / "0123abcd").mkdir(parents=True)
    (folder / "snapshots" / "0123abcd" / "model_index.json").write_text("{}")


def test_an_uncached_alias_names_the_hub_model(monkeypatch):
    with pytest.raises(ModelNotFoundError, match="hf download stabilityai/stable-diffusion-xl-refiner-1.0"):
        load_pipeline("sdxl-refiner", local_files_only=True, **CPU)


def test_every_listed_family_has_an_adapter():
    from pixels.adapters import ADAPTERS

    families = {adapter.family for adapter in ADAPTERS}
    assert {m.family for m in BY_NAME.values()} <= families
    assert {"sd", "sdxl", "pixel", "kandinsky", "sd3", "flux"} <= families


def test_a_local_folder_named_like_an_alias_wins(sd_folder, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(sd_folder, tmp_path / "sd15")
    monkeypatch.chdir(tmp_path)
    assert type(load_pipeline("sd15", **CPU)).__name__ == "StableDiffusionImg2ImgPipeline"


def test_models_command_reports_the_cache(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    fake_cache(tmp_path, "stabilityai/stable-diffusion-xl-base-1.0")
    assert is_cached("stabilityai/stable-diffusion-xl-base-1.0")
    assert not is_cached("stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert main(["models", "--json"]) == 0
    rows = {r["alias"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["sdxl"]["local"] == "cached" and rows["sd15"]["local"] == "not cached"
    assert rows["demo"]["local"] == "bundled" and rows["flux-schnell"]["family"] == "flux"
    assert main(["models"]) == 0
    assert "sdxl-refiner" in capsys.readouterr().out
