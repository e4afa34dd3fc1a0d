"""Train pixels' bundled demo model: a small unconditional pixel-space diffusion model of natural-image patches.

    pip install -e ".[train]"
    python scripts/train_demo_model.py --out src/pixels/demo/weights

It learns to denoise 32x32 patches cut from the photos and textures that ship with scikit-image
(random crops at random scales, flips, colour jitter), which is enough to blend a pasted exemplar
into its surroundings at modest resolution. The UNet is fully convolutional, so it runs at any size
that is a multiple of 4. On two CPU cores the default 3000 steps take about 30 minutes. The result is
deterministic given --seed and the number of threads. The folder written is a diffusers pipeline
(`DDPMPipeline`: `unet/` + `scheduler/`), loaded by `pixels --model demo` like any other model.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

# Photos and textures bundled with scikit-image (all available offline).
COLOUR = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina"]
GRAY = ["brick", "camera", "cell", "clock", "coins", "grass", "gravel", "moon", "page", "text"]


def load_images() -> list[list[torch.Tensor]]:
    """Every training image as a pyramid of (3, H, W) float tensors in [-1, 1], halving each level."""
    from skimage import data

    images = []
    for name in COLOUR + GRAY:
        array = getattr(data, name)()
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        tensor = torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(2, 0, 1).float() / 127.5 - 1
        pyramid = [tensor]
        while min(pyramid[-1].shape[1:]) >= 128:
            pyramid.append(F.interpolate(pyramid[-1][None], scale_factor=0.5, mode="bilinear", antialias=True)[0])
        images.append(pyramid)
    return images


def sample_batch(images: list[list[torch.Tensor]], batch: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """Random crops at random scales, flips and colour jitter: (batch, 3, size, size) in [-1, 1]."""
    crops = []
    for _ in range(batch):
        pyramid = images[rng.integers(len(images))]
        _, h, w = pyramid[0].shape
        side = int(rng.uniform(size, max(size + 1, min(h, w) * 0.5)))
        level = 0  # crop from the smallest level that still has at least `size` pixels across the crop
        while level + 1 < len(pyramid) and side // 2 ** (level + 1) >= size:
            level += 1
        image, side = pyramid[level], side // 2 ** level
        _, h, w = image.shape
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = image[:, y:y + side, x:x + side][None]
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        if rng.random() < 0.3:
            crop = crop.flip(-2)
        gray = crop.mean(0, keepdim=True)
        saturation = rng.uniform(0.6, 1.4)
        crop = gray + (crop - gray) * saturation
        tint = torch.from_numpy(rng.uniform(-0.1, 0.1, (3, 1, 1))).float()
        crop = (crop - crop.mean()) * rng.uniform(0.75, 1.25) + crop.mean() + rng.uniform(-0.15, 0.15) + tint
        crops.append(crop.clamp(-1, 1))
    return torch.stack(crops)


def build_unet(size: int) -> UNet2DModel:
    return UNet2DModel(
        sample_size=size, in_channels=3, out_channels=3, block_out_channels=(32, 64, 128), layers_per_block=1,
        down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3, norm_num_groups=8,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="src/pixels/demo/weights", help="folder for the diffusers pipeline")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32, help="training patch size")
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    images = load_images()
    unet = build_unet(args.size)
    ema = copy.deepcopy(unet).requires_grad_(False)
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.0)
    warmup = min(200, args.steps // 10)

    def learning_rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup))) * 0.95 + 0.05

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate)
    start, running = time.time(), None
    for step in range(args.steps):
        clean = sample_batch(images, args.batch, args.size, rng)
        noise = torch.randn(clean.shape, generator=generator)
        t = torch.randint(0, 1000, (args.batch,), generator=generator)
        loss = F.mse_loss(unet(noise_scheduler.add_noise(clean, noise, t), t).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters()):
                e.lerp_(p, 1 - decay)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % 100 == 0 or step + 1 == args.steps:
            elapsed = time.time() - start
            print(f"step {step + 1}/{args.steps}  loss {running:.4f}  {elapsed / 60:.1f} min", flush=True)

    out = Path(args.out)
    scheduler = DDIMScheduler.from_config(noise_scheduler.config, clip_sample=True, set_alpha_to_one=True)
    DDPMPipeline(unet=ema, scheduler=scheduler).save_pretrained(out, safe_serialization=True)
    recipe = {k: v for k, v in vars(args).items() if k != "out"}
    minutes = round((time.time() - start) / 60, 1)
    recipe |= {"images": COLOUR + GRAY, "final_loss": round(running, 5), "minutes": minutes}
    (out / "training.json").write_text(json.dumps(recipe, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
