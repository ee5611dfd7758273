"""Image -> tensor, exactly as the service does it (the bundle's `input` section), and the training views.

Evaluation preprocessing (mirrored by `src/inference/preprocess.ts`; parity vectors checked by the
TypeScript tests): decode, apply EXIF orientation, drop alpha, resize to width x height with a
bilinear filter only when the size differs, BT.601 luma when the model takes one channel, then
x * scale, (x - mean) / std. Augmentations are written in plain PyTorch and work on whole batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

LUMA_BT601 = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class InputSpec:
    """The model's input contract; serialised as the bundle's `input` object."""

    channels: int = 1
    height: int = 48
    width: int = 48
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    name: str = "input"

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"input channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean/std need {self.channels} values each, got {len(self.mean)} and {len(self.std)}")

    @property
    def color(self) -> str:
        return "bt601-luma" if self.channels == 1 else "rgb"


def load_pixels(path: Path | str, spec: InputSpec) -> np.ndarray:
    """Decoded, resized, colour-converted pixels in [0, 255], float32, shape (C, H, W)."""
    with Image.open(path) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
    if rgb.size != (spec.width, spec.height):
        rgb = rgb.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    arr = np.asarray(rgb, dtype=np.float32)  # (H, W, 3)
    if spec.channels == 1:
        r, g, b = LUMA_BT601
        luma: np.ndarray = (arr[..., 0] * r + arr[..., 1] * g + arr[..., 2] * b)[None]  # (1, H, W)
        return luma
    return np.ascontiguousarray(arr.transpose(2, 0, 1))  # (3, H, W)


def normalise(pixels: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """(B, C, H, W) pixels in [0, 255] -> the network input."""
    mean = torch.tensor(spec.mean, dtype=pixels.dtype).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=pixels.dtype).view(1, -1, 1, 1)
    return (pixels * spec.scale - mean) / std


def preprocess_file(path: Path | str, spec: InputSpec) -> np.ndarray:
    """The exact tensor the service feeds the model for one image file, shape (C, H, W)."""
    tensor: np.ndarray = normalise(torch.from_numpy(load_pixels(path, spec))[None], spec)[0].numpy()
    return tensor


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (hi - lo) + lo


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


def random_affine(
    x: torch.Tensor, gen: torch.Generator, *, translate: float, scale: tuple[float, float], degrees: float = 0.0
) -> torch.Tensor:
    """Per-sample zoom (scale > 1 zooms in), rotation and translation (fraction of the side), zero fill."""
    n = x.shape[0]
    s = _uniform(n, *scale, gen)
    a = _uniform(n, -degrees, degrees, gen) * math.pi / 180
    tx, ty = (_uniform(n, -translate, translate, gen) * 2 for _ in range(2))
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_erasing(x: torch.Tensor, gen: torch.Generator, *, p: float, area: tuple[float, float]) -> torch.Tensor:
    """Erase one rectangle (aspect 0.3-3.3) per selected sample with uniform noise, as in Zhong et al."""
    n, _, h, w = x.shape
    frac = _uniform(n, *area, gen)
    log_ratio = _uniform(n, math.log(0.3), math.log(1 / 0.3), gen)
    eh = (torch.sqrt(frac * h * w * torch.exp(log_ratio))).clamp(1, h).long()
    ew = (torch.sqrt(frac * h * w / torch.exp(log_ratio))).clamp(1, w).long()
    top = (torch.rand(n, generator=gen) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=gen) * (w - ew + 1)).long()
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    box = (
        (rows >= top.view(-1, 1, 1))
        & (rows < (top + eh).view(-1, 1, 1))
        & (cols >= left.view(-1, 1, 1))
        & (cols < (left + ew).view(-1, 1, 1))
    )  # (B, H, W)
    chosen = (torch.rand(n, generator=gen) < p).view(-1, 1, 1) & box
    noise = torch.rand(x.shape, generator=gen, dtype=x.dtype)
    return torch.where(chosen.unsqueeze(1), noise, x)


def weak_view(x01: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The recipe's weak view on (B, C, H, W) images in [0, 1]: flip; p=.5 brightness/contrast
    +-0.25; p=.5 affine (translate +-10 %, scale 1.0-1.25); random erasing (p=.5, 2-25 % area)."""
    n = x01.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = _where(flip, x01.flip(-1), x01)
    jitter = torch.rand(n, generator=gen) < 0.5
    bright = _uniform(n, 0.75, 1.25, gen).view(-1, 1, 1, 1)
    contrast = _uniform(n, 0.75, 1.25, gen).view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = _where(jitter, ((x * bright - mean * bright) * contrast + mean * bright).clamp(0, 1), x)
    move = torch.rand(n, generator=gen) < 0.5
    x = _where(move, random_affine(x, gen, translate=0.1, scale=(1.0, 1.25)), x)
    return random_erasing(x, gen, p=0.5, area=(0.02, 0.25))
