"""E6 — training cost on this machine: measured fp32 matmul peak, FLOPs per training image, training
and mining-pass throughput for a config, and the share of the peak that training reaches."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Literal

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..config import Precision, TrainConfig
from ..device import autocast, has_bf16_hardware, machine, place, resolve_device, to_device
from ..method.losses import supervised
from ..models.frozen import freeze
from ..run import build_nets


def matmul_peak(threads: int, *, n: int = 2048, seconds: float = 3.0) -> float:
    """Best observed fp32 GFLOP/s of an n x n matmul."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def _step(
    nets: list[torch.nn.Module], opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, precision: Precision
) -> None:
    with autocast(x.device, precision):
        loss = supervised([net(x).float() for net in nets], y)
    opt.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    opt.step()


def training_cost(cfg: TrainConfig, *, steps: int = 8, channels_last: bool = True) -> dict[str, Any]:
    """Throughput of plain training steps (all networks) and of the eval-mode mining pass, on random
    inputs of the config's shape, on the config's device and memory format as `train` runs them;
    FLOPs counted by PyTorch's FlopCounterMode."""
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    nets = build_nets(cfg, 8)
    move = to_device if channels_last else (lambda t, d: t.to(d))
    if channels_last:
        place(nets, device)
    else:
        nets = [net.to(device) for net in nets]
    opt = torch.optim.Adam([p for n in nets for p in n.parameters()], lr=cfg.lr)
    x = move(torch.randn(cfg.batch_size, cfg.channels, cfg.input_size, cfg.input_size), device)
    y = torch.randint(0, 8, (cfg.batch_size,), device=device)
    with FlopCounterMode(display=False) as counter:
        _step(nets, opt, x, y, cfg.precision)
    flops_per_image = counter.get_total_flops() / cfg.batch_size
    _step(nets, opt, x, y, cfg.precision)
    t0 = time.perf_counter()
    for _ in range(steps):
        _step(nets, opt, x, y, cfg.precision)
    train_ips = steps * cfg.batch_size / (time.perf_counter() - t0)
    xe = torch.randn(cfg.eval_batch_size, cfg.channels, cfg.input_size, cfg.input_size)
    t0 = time.perf_counter()
    run = freeze(nets, xe, engine=cfg.eval_engine)
    freeze_s = time.perf_counter() - t0
    run(xe)
    t0 = time.perf_counter()
    for _ in range(max(1, steps // 2)):
        run(xe)
    mine_ips = max(1, steps // 2) * cfg.eval_batch_size / (time.perf_counter() - t0)
    return {
        "flops_per_image": flops_per_image,
        "train_images_per_s": train_ips,
        "mining_images_per_s": mine_ips,
        "freeze_seconds": freeze_s,
        "networks": len(nets),
    }


def report(cfg: TrainConfig, *, peak_seconds: float = 3.0, steps: int = 8) -> str:
    """The E6 table (markdown) for `cfg`'s architecture and input size."""
    peak = matmul_peak(cfg.threads, seconds=peak_seconds)
    where = machine()
    # without bf16 units every bf16 convolution runs PyTorch's reference kernel (25x slower on the AVX2 EPYC): those
    # rows would take minutes each on a larger network and say nothing that --precision auto does not already avoid
    bf16 = has_bf16_hardware(resolve_device(cfg.device))
    lines = [
        f"CPU: {where['cpu']} ({where['capability']}, bf16 units: {'yes' if where['bf16_units'] else 'no'})",
        f"fp32 matmul peak ({cfg.threads} threads): {peak:.1f} GFLOP/s",
        "",
        "| method | memory format | training precision | networks | GFLOP / training image | train img/s | achieved GFLOP/s "
        "| share of the fp32 peak | mining engine | mining pass img/s | freeze (s) | mining / training time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows: tuple[tuple[Literal["ce", "asm"], bool, Literal["torch", "onnxruntime"], Precision], ...] = (
        ("ce", False, "torch", "fp32"),
        ("ce", True, "torch", "fp32"),
        ("ce", True, "torch", "bf16"),
        ("asm", True, "torch", "fp32"),
        ("asm", True, "onnxruntime", "fp32"),
        ("asm", True, "onnxruntime", "bf16"),
    )
    for method, channels_last, engine, precision in rows:
        if precision == "bf16" and not bf16:
            lines.append(f"| {method} | channels-last | bf16 | skipped: no AMX / AVX-512-BF16 on this CPU |")
            continue
        c = training_cost(
            replace(cfg, method=method, eval_engine=engine, precision=precision), steps=steps, channels_last=channels_last
        )
        achieved = c["flops_per_image"] * c["train_images_per_s"] / 1e9
        mining_share = "—" if method == "ce" else f"{c['train_images_per_s'] / c['mining_images_per_s']:.0%}"
        layout = "channels-last" if channels_last else "contiguous"
        lines.append(
            f"| {method} | {layout} | {precision} | {c['networks']} | {c['flops_per_image'] / 1e9:.3f} "
            f"| {c['train_images_per_s']:.0f} | {achieved:.1f} | {achieved / peak:.0%} | {engine} "
            f"| {c['mining_images_per_s']:.0f} | {c['freeze_seconds']:.2f} | {mining_share} |"
        )
    return "\n".join(lines)
