"""Image -> tensor exactly as the service does it: the model's input contract (`InputSpec`, serialised as the
bundle's `input` section) and the evaluation preprocessing that follows it.

Mirrored by `src/inference/preprocess.ts`; parity vectors checked by the TypeScript tests: decode, apply EXIF
orientation, drop alpha, resize to width x height with a bilinear filter only when the size differs, BT.601 luma
when the model takes one channel, then x * scale, (x - mean) / std.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
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
    mean = torch.tensor(spec.mean, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
    return (pixels * spec.scale - mean) / std


def preprocess_file(path: Path | str, spec: InputSpec) -> np.ndarray:
    """The exact tensor the service feeds the model for one image file, shape (C, H, W)."""
    tensor: np.ndarray = normalise(torch.from_numpy(load_pixels(path, spec))[None], spec)[0].numpy()
    return tensor
