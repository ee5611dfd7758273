"""The training views: the weak view (flip, jitter, affine or reframe, erasing) and the RandAugment-style
strong view, written in plain PyTorch on whole batches of (B, C, H, W) images in [0, 1]. Evaluation never
augments; its preprocessing is `preprocess.py`'s.

The images may be on any device: every random draw comes from the seeded CPU generator, in the same order
and shapes wherever the images are, and is moved to their device (a no-op on the CPU). On CUDA the trainer
augments there, so a GPU step does not wait for the CPU to make its views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (hi - lo) + lo


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1).to(a.device), a, b)


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
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
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
    return torch.where(chosen.unsqueeze(1).to(x.device), noise.to(x.device), x)


def weak_view(x01: torch.Tensor, gen: torch.Generator, kind: str = "recipe") -> torch.Tensor:
    """The weak view on (B, C, H, W) images in [0, 1]: flip; p=.5 brightness/contrast +-0.25; then
    `recipe`: p=.5 affine (translate +-10 %, scale 1.0-1.25), or `reframe`: `reframe` for every sample;
    random erasing (p=.5, 2-25 % area)."""
    n = x01.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = _where(flip, x01.flip(-1), x01)
    jitter = torch.rand(n, generator=gen) < 0.5
    bright = _uniform(n, 0.75, 1.25, gen).view(-1, 1, 1, 1).to(x.device)
    contrast = _uniform(n, 0.75, 1.25, gen).view(-1, 1, 1, 1).to(x.device)
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
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass(frozen=True)
class StrongView:
    """Bounds of the RandAugment-style strong view. Each of `ops` rounds applies, with probability `p`,
    one operation drawn uniformly from the pool; magnitudes are drawn in [0.5, 1] x the bound, with a
    random sign where the operation has one."""

    ops: int = 2
    p: float = 0.5  # MAN: each op with p = 0.5, and Identity is in the pool
    rotate: float = 30.0  # degrees
    shear: float = 0.3
    translate: float = 0.045  # fraction of the side (MAN: ~10 px of 224 px)
    enhance: float = 0.5  # brightness / contrast / sharpness factor in 1 +- [0.25, 0.5] [choice]
    posterize_bits: tuple[int, ...] = (4,)  # MAN: 4 bits
    solarize: bool = False  # MAN's solarize threshold at its magnitude leaves every pixel as it is
    identity: bool = True
    cutout: float = 0.07  # side of the grey square, fraction of the side: ~0.5 % of the area (MAN: 16 px of 224)

    @property
    def pool(self) -> tuple[str, ...]:
        return (
            ("identity",) * self.identity
            + ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
            + ("brightness", "contrast", "sharpness")
            + ("solarize",) * self.solarize
            + ("posterize", "autocontrast")
        )


STRONG_VIEWS = {
    # MAN's RandAugment scaled to 48 px faces (issue 16): the default
    "man": StrongView(),
    # the view of the code before issue 16, kept to compare with the E2 rows it produced: two ops always,
    # translate 30 %, brightness/contrast 0.1-1.9, posterize 2-3 bits, solarize, cutout of half the side
    "harsh": StrongView(p=1.0, translate=0.3, enhance=0.9, posterize_bits=(2, 3), solarize=True, identity=False, cutout=0.5),
}


def _signed(n: int, magnitude: float, gen: torch.Generator) -> torch.Tensor:
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    return sign * magnitude * _uniform(n, 0.5, 1.0, gen)


GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _geometric(x: torch.Tensor, gen: torch.Generator, op: str, view: StrongView) -> torch.Tensor:
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    if op == "rotate":
        a = _signed(n, math.radians(view.rotate), gen)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = a.cos(), -a.sin(), a.sin(), a.cos()
    elif op == "shear_x":
        theta[:, 0, 1] = _signed(n, view.shear, gen)
    elif op == "shear_y":
        theta[:, 1, 0] = _signed(n, view.shear, gen)
    elif op == "translate_x":
        theta[:, 0, 2] = _signed(n, 2 * view.translate, gen)  # grid units span [-1, 1]: 2 per side
    else:
        theta[:, 1, 2] = _signed(n, 2 * view.translate, gen)
    return _affine(x, theta)


def _photometric(x: torch.Tensor, gen: torch.Generator, op: str, view: StrongView) -> torch.Tensor:
    n = x.shape[0]
    if op == "identity":
        return x
    f = (1 + _signed(n, view.enhance, gen)).view(-1, 1, 1, 1).to(x.device)  # factor away from 1
    if op == "brightness":
        return (x * f).clamp(0, 1)
    if op == "contrast":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * f + mean).clamp(0, 1)
    if op == "sharpness":
        blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return (blurred + (x - blurred) * f).clamp(0, 1)
    if op == "solarize":
        threshold = _uniform(n, 0.5, 0.8, gen).view(-1, 1, 1, 1).to(x.device)
        return torch.where(x >= threshold, 1 - x, x)
    if op == "posterize":
        bits = torch.tensor(view.posterize_bits)[torch.randint(0, len(view.posterize_bits), (n,), generator=gen)]
        levels = (2**bits).view(-1, 1, 1, 1).to(device=x.device, dtype=x.dtype)
        return torch.floor(x * levels).clamp(max=levels - 1) / (levels - 1)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)  # autocontrast
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x - lo) / (hi - lo).clamp(min=1e-3)).clamp(0, 1)


def strong_view(x01: torch.Tensor, gen: torch.Generator, view: StrongView | str = "man") -> torch.Tensor:
    """RandAugment-style strong view on (B, C, H, W) images in [0, 1]: flip, then `view.ops` rounds that
    each apply (with probability `view.p`) one operation drawn per sample from `view.pool`, then a grey
    cutout square of side `view.cutout` x side. `view`: a StrongView or a name in STRONG_VIEWS."""
    if isinstance(view, str):
        if view not in STRONG_VIEWS:
            raise ValueError(f"strong view must be one of {sorted(STRONG_VIEWS)}, got {view!r}")
        view = STRONG_VIEWS[view]
    n, _, h, w = x01.shape
    pool = view.pool
    x = _where(torch.rand(n, generator=gen) < 0.5, x01.flip(-1), x01)
    for _ in range(view.ops):
        choice = torch.randint(0, len(pool), (n,), generator=gen)
        apply = torch.rand(n, generator=gen) < view.p
        out = x.clone()
        for i, op in enumerate(pool):
            idx = torch.nonzero((choice == i) & apply).flatten()  # on the CPU: no wait for the images' device
            if len(idx):
                at = idx.to(x.device)
                out[at] = (_geometric if op in GEOMETRIC else _photometric)(x[at], gen, op, view)
        x = out
    if view.cutout <= 0:
        return x
    side_h, side_w = max(1, round(view.cutout * h)), max(1, round(view.cutout * w))
    cy = torch.randint(0, h, (n,), generator=gen).view(-1, 1, 1)
    cx = torch.randint(0, w, (n,), generator=gen).view(-1, 1, 1)
    rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    box = ((rows - cy).abs() * 2 < side_h) & ((cols - cx).abs() * 2 < side_w)  # (B, H, W)
    return torch.where(box.unsqueeze(1).to(x.device), torch.full_like(x, 0.5), x)
