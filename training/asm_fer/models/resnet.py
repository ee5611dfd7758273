"""A ResNet sized for small face crops, in plain PyTorch, and the two-network ensemble that gets exported.

Torchvision's BasicBlock layout (conv-bn-relu-conv-bn + shortcut) with a stride-1 3x3 stem, because
FER crops are 48x48 and the ImageNet stem (7x7 stride 2 + max-pool) would leave 12x12 after one layer.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.downsample(x))


class ResNet(nn.Module):
    """Stem (3x3 conv, stride `stem_stride`) then four stages; stages 2-4 halve the resolution."""

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int = 1,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        stem_stride: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"widths and blocks need the same length, got {widths} and {blocks}")
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages: list[nn.Module] = []
        c_in = widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            layers = [BasicBlock(c_in if j == 0 else width, width, 2 if (i > 0 and j == 0) else 1) for j in range(n)]
            stages.append(nn.Sequential(*layers))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)  # each residual branch starts as identity (Goyal et al.)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # (B, C0, H/s, W/s)
        x = self.stages(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (B, C)
        logits: torch.Tensor = self.fc(self.dropout(x))  # (B, K)
        return logits


def load_torchvision_weights(net: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy a torchvision-named ResNet state dict (`layerN.*`, e.g. a face-recognition ResNet-18) into
    `net`; returns the names left at their initialisation because their shapes differ (typically the
    7x7 RGB stem and the classifier). A name `net` does not have is an error: it means another layout."""
    own = net.state_dict()
    skipped: list[str] = []
    for name, value in state.items():
        ours = re.sub(r"^layer(\d+)\.", lambda m: f"stages.{int(m.group(1)) - 1}.", name)
        if ours not in own:
            raise ValueError(f"{name!r} has no counterpart in this ResNet (widths/blocks or layout differ)")
        if own[ours].shape != value.shape:
            skipped.append(name)
            continue
        own[ours] = value.to(own[ours].dtype)
    net.load_state_dict(own)
    return skipped


class Ensemble(nn.Module):
    """What the service runs: softmax of the mean of the networks' logits, shape (B, K). With
    `flip`, each network also sees the image mirrored left to right and its logits on both views join
    the mean (test-time flip averaging: FER faces are left-right symmetric, the recipe trains on flips)."""

    def __init__(self, nets: list[nn.Module], *, flip: bool = False, temperature: float = 1.0) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.flip = flip
        self.temperature = temperature  # temperature scaling, folded into the graph (issue 17)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # both views in one batch: one call per network (batch-norm folding at export fuses each call site)
        views = torch.cat([x, x.flip(3)]) if self.flip else x  # (V*B, C, H, W)
        logits = torch.stack([net(views) for net in self.nets])  # (M, V*B, K)
        logits = logits.reshape(-1, x.shape[0], logits.shape[-1]).mean(0)  # (B, K)
        if self.temperature != 1.0:  # T = 1 exports the same graph as before calibration existed
            logits = logits / self.temperature
        return torch.softmax(logits, dim=1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
