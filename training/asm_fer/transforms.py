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


def load_pixels(path: Path | str, spec: InputSpec, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Decoded, (cropped to `box` = x, y, width, height,) resized, colour-converted pixels in [0, 255],
    float32, shape (C, H, W)."""
    with Image.open(path) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
    if box is not None:
        x, y, w, h = box
        rgb = rgb.crop((x, y, x + w, y + h))
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
    x: torch.Tensor,
    gen: torch.Generator,
    *,
    translate: float,
    scale: tuple[float, float],
    degrees: float = 0.0,
    padding: str = "zeros",
) -> torch.Tensor:
    """Per-sample zoom (scale > 1 zooms in), rotation and translation (fraction of the side); what comes
    into view is `padding` ("zeros", or "border": the edge pixels repeated)."""
    n = x.shape[0]
    s = _uniform(n, *scale, gen)
    a = _uniform(n, -degrees, degrees, gen) * math.pi / 180
    tx, ty = (_uniform(n, -translate, translate, gen) * 2 for _ in range(2))
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def resampling_blur(x: torch.Tensor, gen: torch.Generator, *, p: float, smallest: float) -> torch.Tensor:
    """For a fraction p of the samples: down to a side drawn in [smallest, 1] x the side (one draw per batch,
    antialiased) and bilinearly back up, the softness a face gets when it is pasted or photographed at
    another size and resampled to the model's input."""
    n, _, h, w = x.shape
    f = float(_uniform(1, smallest, 1.0, gen))
    small = F.interpolate(x, size=(max(2, round(h * f)), max(2, round(w * f))), mode="bilinear", antialias=True)
    soft = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return _where(torch.rand(n, generator=gen) < p, soft, x)


def reframe(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """How a face detector's crop differs from a FER2013 crop: zoom 0.85-1.2 (out as well as in), shift
    +-8 %, roll +-10 deg with the edges repeated (a crop cut from a photo never has black bands), then a
    resampling blur for half the samples. The ranges cover the spread measured between detector boxes and
    FER2013's own framing (docs/results.md, issue 8: +-10 % in size, median eye angle 6.5 deg)."""
    x = random_affine(x, gen, translate=0.08, scale=(0.85, 1.2), degrees=10.0, padding="border")
    return resampling_blur(x, gen, p=0.5, smallest=0.6)


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


def weak_view(x01: torch.Tensor, gen: torch.Generator, kind: str = "recipe") -> torch.Tensor:
    """The weak view on (B, C, H, W) images in [0, 1]: flip; p=.5 brightness/contrast +-0.25; then
    `recipe`: p=.5 affine (translate +-10 %, scale 1.0-1.25), or `reframe`: `reframe` for every sample;
    random erasing (p=.5, 2-25 % area)."""
    n = x01.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = _where(flip, x01.flip(-1), x01)
    jitter = torch.rand(n, generator=gen) < 0.5
    bright = _uniform(n, 0.75, 1.25, gen).view(-1, 1, 1, 1)
    contrast = _uniform(n, 0.75, 1.25, gen).view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = _where(jitter, ((x * bright - mean * bright) * contrast + mean * bright).clamp(0, 1), x)
    if kind == "reframe":
        x = reframe(x, gen)
    elif kind == "recipe":
        move = torch.rand(n, generator=gen) < 0.5
        x = _where(move, random_affine(x, gen, translate=0.1, scale=(1.0, 1.25)), x)
    else:
        raise ValueError(f"weak view must be recipe or reframe, got {kind!r}")
    return random_erasing(x, gen, p=0.5, area=(0.02, 0.25))


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _signed(n: int, magnitude: float, gen: torch.Generator) -> torch.Tensor:
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    return sign * magnitude * _uniform(n, 0.5, 1.0, gen)


def _geometric(x: torch.Tensor, gen: torch.Generator, op: str) -> torch.Tensor:
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    if op == "rotate":
        a = _signed(n, math.radians(30), gen)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = a.cos(), -a.sin(), a.sin(), a.cos()
    elif op == "shear_x":
        theta[:, 0, 1] = _signed(n, 0.3, gen)
    elif op == "shear_y":
        theta[:, 1, 0] = _signed(n, 0.3, gen)
    elif op == "translate_x":
        theta[:, 0, 2] = _signed(n, 0.6, gen)  # 0.3 of the side, in [-1, 1] grid units
    else:
        theta[:, 1, 2] = _signed(n, 0.6, gen)
    return _affine(x, theta)


def _photometric(x: torch.Tensor, gen: torch.Generator, op: str) -> torch.Tensor:
    n = x.shape[0]
    f = (1 + _signed(n, 0.9, gen)).view(-1, 1, 1, 1)  # factor in [0.1, 1.9], away from 1
    if op == "brightness":
        return (x * f).clamp(0, 1)
    if op == "contrast":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * f + mean).clamp(0, 1)
    if op == "sharpness":
        blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return (blurred + (x - blurred) * f).clamp(0, 1)
    if op == "solarize":
        threshold = _uniform(n, 0.5, 0.8, gen).view(-1, 1, 1, 1)
        return torch.where(x >= threshold, 1 - x, x)
    if op == "posterize":
        levels = (2 ** torch.randint(2, 4, (n,), generator=gen)).view(-1, 1, 1, 1).to(x.dtype)  # 2-3 bits
        return torch.floor(x * levels).clamp(max=levels - 1) / (levels - 1)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)  # autocontrast
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x - lo) / (hi - lo).clamp(min=1e-3)).clamp(0, 1)


STRONG_OPS = (
    "rotate",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "brightness",
    "contrast",
    "sharpness",
    "solarize",
    "posterize",
    "autocontrast",
)


def strong_view(x01: torch.Tensor, gen: torch.Generator, *, ops: int = 2, cutout: float = 0.5) -> torch.Tensor:
    """RandAugment-style strong view on (B, C, H, W) images in [0, 1]: flip, then `ops` operations drawn
    per sample from STRONG_OPS at high magnitude, then a grey cutout square of side `cutout` x side."""
    n, _, h, w = x01.shape
    x = _where(torch.rand(n, generator=gen) < 0.5, x01.flip(-1), x01)
    for _ in range(ops):
        choice = torch.randint(0, len(STRONG_OPS), (n,), generator=gen)
        out = x.clone()
        for i, op in enumerate(STRONG_OPS):
            idx = torch.nonzero(choice == i).flatten()
            if len(idx):
                apply = _geometric if i < 5 else _photometric
                out[idx] = apply(x[idx], gen, op)
        x = out
    side_h, side_w = max(1, round(cutout * h)), max(1, round(cutout * w))
    cy = torch.randint(0, h, (n,), generator=gen).view(-1, 1, 1)
    cx = torch.randint(0, w, (n,), generator=gen).view(-1, 1, 1)
    rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    box = ((rows - cy).abs() * 2 < side_h) & ((cols - cx).abs() * 2 < side_w)  # (B, H, W)
    return torch.where(box.unsqueeze(1), torch.full_like(x, 0.5), x)
