"""Where the networks run: `--device auto` picks CUDA when PyTorch sees a GPU, else the CPU.
Networks and batches use channels-last memory on both (on this 2-core CPU it trains this ResNet
about 3x faster than NCHW-contiguous: docs/results.md, E6); CUDA adds bf16 autocast, and so does the CPU
with `--precision bf16`. The training views are made on the networks' device from the seeded CPU generator's
draws (data/views.py): on the CPU exactly as before, on CUDA by the GPU, so a step does not wait for the CPU.
"""

from __future__ import annotations

import contextlib
import platform
import time
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from .config import Precision

# bf16 autocast must beat fp32 by this much in the start-up timing to be chosen by --precision auto: the
# AMX Xeon measured 2.1-2.3x, an AVX2-only EPYC 0.04x (every bf16 conv on the reference kernel)
BF16_MIN_SPEEDUP = 1.3


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


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for the run's record."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_bf16_units() -> bool:
    """Whether the CPU has bf16 matrix/vector units (AMX or AVX-512-BF16): without them PyTorch runs every bf16
    convolution on its reference kernel, 25x slower than fp32 (docs/results.md, E6)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def machine() -> dict[str, object]:
    """What a metrics row records about where its epoch ran: a run may resume on another kind of CPU."""
    return {
        "cpu": cpu_name(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_units": cpu_has_bf16_units(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def bf16_speedup(*, reps: int = 3) -> float:
    """fp32 time / bf16-autocast time of a training step of a small conv stack on this CPU (about a second)."""
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1))
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    x = torch.randn(16, 32, 28, 28, generator=gen).contiguous(memory_format=torch.channels_last)

    def step_seconds(bf16: bool) -> float:
        best = float("inf")
        for _ in range(reps + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = net(x).float().square().mean()
            loss.backward()
            best = min(best, time.perf_counter() - t0)
        return best

    return step_seconds(False) / step_seconds(True)


def has_bf16_hardware(device: torch.device) -> bool:
    """Whether `device` runs bf16 on hardware made for it: CUDA, or a CPU with AMX / AVX-512-BF16."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16_units())


def resolve_precision(precision: Precision, device: torch.device) -> Precision:
    """`auto` -> the precision this machine trains fastest in: bf16 on CUDA; on the CPU bf16 only where it has
    bf16 units and a short timing confirms the gain, else fp32. A concrete choice is returned as it is."""
    if precision != "auto":
        return precision
    if not has_bf16_hardware(device):
        return "fp32"
    if device.type == "cuda":
        return "bf16"
    return "bf16" if bf16_speedup() >= BF16_MIN_SPEEDUP else "fp32"
