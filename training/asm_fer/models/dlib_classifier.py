"""An expression classifier on dlib's face-descriptor ResNet (issue 16, 2b): the model's own input (the
bundle's 48x48 grey, normalised by the bundle's mean/std) is turned into the backbone's RGB at
`size` px inside the network, so the exported graph keeps the bundle's input contract.

The head pools every stage, not only the last: dlib trained its last layer to ignore expression. A
linear probe on 6,000 FER+ Train faces reached 0.597 Valid accuracy from the last layer and 0.707 from
all stages concatenated (random weights: 0.461 / 0.490).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.preprocess import InputSpec, normalise
from ..device import device_of, to_device
from .dlib_resnet import STAGE_ENDS, STAGE_WIDTHS, DlibResNet, dlib_input, load_dlib_resnet

# 112 px: the probe's size; the descriptor net is trained at 150 and "works from 104 px up", and
# forward+backward cost grows with the area (150 px costs about 1.8x as much)
DEFAULT_SIZE = 112
MIN_SIZE = 103  # the smallest input whose last downsampling conv still has a 3x3 window (dlib: "from 104 px")
BACKBONE_PREFIX = "backbone."


class DlibClassifier(nn.Module):
    """(B, C, H, W) normalised as (pixels / 255 - mean) / std, C = 1 (grey, replicated to RGB) or 3
    -> (B, K) logits. Each stage's output is averaged over space, the five are concatenated (736-D) and
    batch-normalised feature by feature before the linear classifier: a feature's spread across faces is
    small beside its offset from the others, so a per-face layer norm left the head a near-constant
    input (a 2,000-face fine-tune predicted the majority class only), while per-feature standardisation
    is what a linear probe on these features needs."""

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int = 1,
        size: int = DEFAULT_SIZE,
        mean: float = 0.5,
        std: float = 0.5,
        dropout: float = 0.0,
        freeze_stages: int = 0,
        backbone: DlibResNet | None = None,
    ) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels}")
        if size < MIN_SIZE:
            raise ValueError(f"the dlib backbone needs at least {MIN_SIZE} px, got size={size}")
        self.in_channels, self.size, self.mean, self.std = in_channels, size, mean, std
        self.backbone = backbone if backbone is not None else DlibResNet()
        self.norm = nn.BatchNorm1d(sum(STAGE_WIDTHS))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(sum(STAGE_WIDTHS), num_classes)
        self.freeze_stages = freeze_stages
        for module in frozen_modules(self.backbone, freeze_stages):
            module.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = (x * self.std + self.mean) * 255  # (B, C, H, W) in 0..255
        if self.in_channels == 1:
            pixels = pixels.expand(-1, 3, -1, -1)  # (B, 3, H, W)
        # unconditional (a no-op at `size`), so the graph has no shape-dependent branch for torch.fx to trace
        pixels = F.interpolate(pixels, size=(self.size, self.size), mode="bilinear", align_corners=False)
        stages = self.backbone.stages(dlib_input(pixels))
        pooled = torch.cat([s.mean((2, 3)) for s in stages], 1)  # (B, 736)
        logits: torch.Tensor = self.fc(self.dropout(self.norm(pooled)))  # (B, K)
        return logits


def frozen_modules(backbone: DlibResNet, stages: int) -> list[nn.Module]:
    """The stem and the blocks of the first `stages` stages: what --freeze-stages keeps at the pretrained
    weights. Nothing before them needs a gradient then, so autograd stops at the first trained block, and the
    high-resolution early layers (most of the backward cost at 112 px) are run forward only."""
    if stages == 0:
        return []
    last = STAGE_ENDS[stages - 1]
    names = list(backbone.blocks)
    return [backbone.stem, *(backbone.blocks[n] for n in names[: names.index(last) + 1])]


def dlib_classifier(
    num_classes: int,
    *,
    in_channels: int = 1,
    size: int = DEFAULT_SIZE,
    mean: float = 0.5,
    std: float = 0.5,
    dropout: float = 0.0,
    freeze_stages: int = 0,
    pretrained: bool = True,
) -> DlibClassifier:
    """A DlibClassifier whose backbone holds face-api's weights (`pretrained`; they are read from
    node_modules, see `dlib_resnet.face_api_manifest`) or stays at its placeholder values, to be
    overwritten by a checkpoint."""
    backbone = load_dlib_resnet() if pretrained else None
    return DlibClassifier(
        num_classes,
        in_channels=in_channels,
        size=size,
        mean=mean,
        std=std,
        dropout=dropout,
        freeze_stages=freeze_stages,
        backbone=backbone,
    )


# un-augmented training images the head's feature norm is re-estimated on after every epoch (refresh_norm)
NORM_IMAGES = 4096


def refresh_norm(nets: Sequence[nn.Module], pixels: torch.Tensor, spec: InputSpec, *, images: int = NORM_IMAGES) -> None:
    """Re-estimate each DlibClassifier's feature norm (running mean and variance of its 736 pooled features) as
    a plain average over `images` evenly spaced un-augmented training images (N, C, H, W) in [0, 255], with the
    weights as they now are. The exponential average that training leaves behind trails a moving backbone on
    features whose spread is tiny beside their offset, so eval-mode outputs were off: on a 6,000-image, 3-epoch
    probe, Valid went from 60.9 % to 69.6 % with the norm re-estimated (docs/results.md, "A face-pretrained
    backbone"). Eval-mode outputs are what mining, Valid and the exported bundle use; training itself
    normalises by batch statistics and is untouched. Other networks are left as they are."""
    heads = [net for net in nets if isinstance(net, DlibClassifier)]
    if not heads:
        return
    step = max(1, len(pixels) // images)
    sample = pixels[::step][:images]  # (M, C, H, W)
    device = device_of(heads)
    for net in heads:
        momentum = net.norm.momentum
        net.norm.reset_running_stats()
        net.norm.momentum = None  # cumulative average: every batch counts alike
        net.eval()
        net.norm.train()
        with torch.no_grad():
            for start in range(0, len(sample), 256):
                net(to_device(normalise(sample[start : start + 256], spec), device))
        net.norm.momentum = momentum
        net.eval()


def param_groups(nets: list[nn.Module], *, backbone_lr: float) -> list[dict[str, object]]:
    """Optimizer groups: the pretrained backbones at `backbone_lr`, everything else at the optimizer's
    rate. A fine-tune with the backbone at Adam 3e-4 diverged; 5e-5 with the head at 1e-3 worked."""
    backbone: list[nn.Parameter] = []
    head: list[nn.Parameter] = []
    for net in nets:
        for name, p in net.named_parameters():
            if not p.requires_grad:  # --freeze-stages
                continue
            (backbone if name.startswith(BACKBONE_PREFIX) else head).append(p)
    groups: list[dict[str, object]] = [{"params": head}]
    if backbone:
        groups.append({"params": backbone, "lr": backbone_lr})
    return groups
