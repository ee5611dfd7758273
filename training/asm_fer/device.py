"""Where the networks run: `--device auto` picks CUDA when PyTorch sees a GPU, else the CPU.
Networks and batches use channels-last memory on both (on this 2-core CPU it trains this ResNet
about 3x faster than NCHW-contiguous: docs/results.md, E6); CUDA adds bf16 autocast, and so does the CPU
with `--precision bf16`. Augmentation stays on the CPU (seeded generators); batches are moved after it.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from .config import Precision


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for, but PyTorch sees no CUDA device")
    return torch.device(name)


def place(nets: Sequence[nn.Module], device: torch.device) -> None:
    for net in nets:
        net.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]


def device_of(nets: Sequence[nn.Module]) -> torch.device:
    return next(nets[0].parameters()).device


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch (B, C, H, W) on the networks' device, in their memory format."""
    return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision = "auto") -> Iterator[None]:
    """bf16 mixed precision on CUDA (`auto` or `bf16`) and on the CPU when asked (`bf16`); else plain fp32."""
    if precision not in typing.get_args(Precision):
        raise ValueError(f"precision must be one of {typing.get_args(Precision)}, got {precision!r}")
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if bf16 and device.type in ("cuda", "cpu"):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
