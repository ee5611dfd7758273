"""Data-parallel training across processes (`torchrun --nproc-per-node N -m asm_fer train ...`).

Every rank holds the whole (in-memory) dataset; each epoch's permutation is the same on all ranks
and each takes every `world`-th sample of it. Gradients are averaged by DistributedDataParallel
(NCCL on CUDA, gloo on the CPU). The mining pass is sharded the same way and its probabilities are
gathered, so every rank computes the same thresholds and subsets from the whole training set.
Only rank 0 writes logs, plots and checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: torch.Tensor, *, even: bool) -> torch.Tensor:
        """This rank's share of `indices`: every `size`-th one. even=True drops the remainder so that
        every rank runs the same number of steps (training); even=False covers all (mining)."""
        usable = len(indices) - len(indices) % self.size if even else len(indices)
        return indices[:usable][self.rank :: self.size]


def init_world(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun describes (WORLD_SIZE > 1); otherwise a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size()), device


def wrap(nets: Sequence[nn.Module], world: World, device: torch.device) -> list[nn.Module]:
    """The modules to train with: DDP wrappers when distributed, the networks themselves otherwise."""
    if world.size == 1:
        return list(nets)
    ids = [device.index] if device.type == "cuda" else None
    return [DistributedDataParallel(net, device_ids=ids) for net in nets]


def gather_rows(local: np.ndarray, world: World, n_total: int) -> np.ndarray:
    """Reassemble (..., n_local, K) rows computed on `world.shard(arange(n_total), even=False)` into
    (..., n_total, K) on every rank."""
    if world.size == 1:
        return local
    parts: list[np.ndarray | None] = [None] * world.size
    dist.all_gather_object(parts, local)
    full = np.zeros((*local.shape[:-2], n_total, local.shape[-1]), dtype=local.dtype)
    for rank, part in enumerate(parts):
        assert part is not None
        full[..., World(rank, world.size).shard(torch.arange(n_total), even=False).numpy(), :] = part
    return full


def all_sum(values: list[float], world: World) -> list[float]:
    """Element-wise sum over ranks."""
    if world.size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def leave(world: World) -> None:
    if world.size > 1:
        dist.barrier()
        dist.destroy_process_group()
