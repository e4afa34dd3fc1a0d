"""Tiny randomly initialised models (diffusers fast-test style), built offline in fixtures."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach the network
# Ray on 127.0.0.1 only (on Linux it otherwise binds and dials the machine's own network address), and a test
# cluster needs no token
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np
import pytest
from PIL import Image

from pixels.testing.tiny import (  # noqa: F401 - the builders, for the test modules
    build,
    build_pixel,
    build_sd,
    build_sdxl,
    make_scheduler,
    make_tokenizer,
    make_vae,
    text_config,
    unet_kwargs,
)


@pytest.fixture(scope="session")
def tiny_pipes(tmp_path_factory):
    """Each tiny pipeline of `pixels.testing.tiny`, by name, built once on first use and shared by every test."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = build(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def sd_pipe(tiny_pipes):
    return tiny_pipes("sd")


@pytest.fixture(scope="session")
def sdxl_pipe(tiny_pipes):
    return tiny_pipes("sdxl")


@pytest.fixture(scope="session")
def refiner_pipe(tiny_pipes):
    return tiny_pipes("refiner")


@pytest.fixture(scope="session")
def pixel_pipe(tiny_pipes):
    return tiny_pipes("pixel")


@pytest.fixture(scope="session", params=["sd", "sdxl", "refiner"])
def latent_pipe(request):
    """Each latent diffusion family that has a diffusers img2img pipeline to compare with."""
    return request.getfixturevalue(f"{request.param}_pipe")


@pytest.fixture(scope="session", params=["sd", "sdxl", "refiner", "pixel"])
def any_pipe(request):
    return request.getfixturevalue(f"{request.param}_pipe")


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory, sd_pipe):
    folder = tmp_path_factory.mktemp("sd_saved") / "tiny-sd"
    sd_pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def photo(width: int = 32, height: int = 32, seed: int = 0) -> Image.Image:
    """A smooth random colour picture (gradients plus noise), deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), (x + y) / (width + height)], -1) * 200
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))


def box_map(width: int = 32, height: int = 32, box=(8, 8, 24, 24), value: float = 1.0) -> np.ndarray:
    m = np.zeros((height, width), np.float32)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = value
    return m


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: SIGALRM interrupts a blocked call in the main thread with TimeoutError."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(argv, capsys):
    """Run the `pixels` command line in this process: (exit code, stdout, stderr)."""
    from pixels.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
