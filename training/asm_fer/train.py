"""The training loop: cross-entropy on one (`ce`) or two (`ce2`) networks, evaluated on Valid every
epoch, checkpointed every epoch (a rerun with the same run folder resumes), and at the end the
per-class thresholds of Adaptive Threshold Learning from the final model on the training set.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .config import TrainConfig
from .data.dataset import ImageSet, load_images, stratified_limit
from .data.ferplus import CLASSES, scan_ferplus
from .evaluate import accuracy, per_class_recall, predict_probs
from .plots import plot_curves
from .resnet import ResNet
from .thresholds import adaptive_thresholds, class_means
from .transforms import InputSpec, normalise, weak_view

CHECKPOINT = "last.pt"
FINAL = "final.pt"


@dataclass
class Data:
    classes: tuple[str, ...]
    train: ImageSet
    valid: ImageSet


def input_spec(cfg: TrainConfig) -> InputSpec:
    c = cfg.channels
    return InputSpec(channels=c, height=cfg.input_size, width=cfg.input_size, mean=(0.5,) * c, std=(0.5,) * c)


def load_data(cfg: TrainConfig) -> Data:
    spec = input_spec(cfg)
    train = stratified_limit(scan_ferplus(cfg.data, "train"), cfg.limit, cfg.seed)
    valid = stratified_limit(scan_ferplus(cfg.data, "valid"), cfg.limit, cfg.seed)
    return Data(CLASSES, load_images(train, spec, desc="decode train"), load_images(valid, spec, desc="decode valid"))


def build_nets(cfg: TrainConfig, num_classes: int) -> list[nn.Module]:
    return [
        ResNet(
            num_classes,
            in_channels=cfg.channels,
            widths=cfg.widths,
            blocks=cfg.blocks,
            stem_stride=cfg.stem_stride,
            dropout=cfg.dropout,
        )
        for _ in range(cfg.networks)
    ]


def _save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill mid-write never leaves a broken checkpoint


def _run_epoch(
    nets: list[nn.Module], opt: torch.optim.Optimizer, data: ImageSet, spec: InputSpec, cfg: TrainConfig, epoch: int
) -> dict[str, float]:
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # per-epoch stream: resume is exact
    order = torch.randperm(len(data), generator=gen)
    for net in nets:
        net.train()
    total, correct, loss_sum = 0, 0, 0.0
    bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False, mininterval=5)
    for start in bar:
        idx = order[start : start + cfg.batch_size]
        if len(idx) < 2:  # batch norm needs two samples
            continue
        x = normalise(weak_view(data.pixels[idx] / 255, gen) * 255, spec)  # (B, C, H, W)
        y = data.labels[idx]  # (B,)
        logits = [net(x) for net in nets]  # each (B, K)
        loss = torch.stack([F.cross_entropy(lg, y, label_smoothing=cfg.label_smoothing) for lg in logits]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        total += len(idx)
        loss_sum += loss.item() * len(idx)
        correct += int((torch.stack(logits).mean(0).argmax(1) == y).sum())
        bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
    return {"loss": loss_sum / max(total, 1), "train_accuracy": correct / max(total, 1)}


def train(cfg: TrainConfig, data: Data | None = None) -> Path:
    """Train (or resume) the run in `cfg.run_dir`; returns the path of the final checkpoint."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    data = data or load_data(cfg)
    spec = input_spec(cfg)
    nets = build_nets(cfg, len(data.classes))
    params = [p for net in nets for p in net.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    start_epoch = 1
    ckpt_path = run / CHECKPOINT
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        if ckpt["config"] != cfg.to_dict():
            raise SystemExit(f"{ckpt_path} was written with a different config; use a new --run-dir")
        for net, state in zip(nets, ckpt["nets"], strict=True):
            net.load_state_dict(state)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start_epoch = ckpt["epoch"] + 1
        print(f"resuming {run} at epoch {start_epoch}")
    valid_labels = data.valid.labels.numpy()
    with (run / "metrics.jsonl").open("a") as log:
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.time()
            stats = _run_epoch(nets, opt, data.train, spec, cfg, epoch)
            seconds = time.time() - t0
            probs = predict_probs(nets, data.valid.pixels, spec, batch_size=cfg.eval_batch_size)
            row = {
                "epoch": epoch,
                **stats,
                "valid_accuracy": accuracy(probs, valid_labels),
                "lr": sched.get_last_lr()[0],
                "seconds": round(seconds, 1),
                "images_per_second": round(len(data.train) / seconds, 1),
            }
            sched.step()
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps(row))
            plot_curves(run / "metrics.jsonl", run / "curves.png")
            _save(
                {
                    "config": cfg.to_dict(),
                    "epoch": epoch,
                    "nets": [n.state_dict() for n in nets],
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                },
                ckpt_path,
            )
    return finalise(cfg, nets, data, spec)


def finalise(cfg: TrainConfig, nets: list[nn.Module], data: Data, spec: InputSpec) -> Path:
    """Valid metrics and the exported thresholds of the final model, written to `final.pt`."""
    train_probs = predict_probs(nets, data.train.pixels, spec, batch_size=cfg.eval_batch_size)
    means = class_means(train_probs, data.train.labels.numpy())
    mode: Literal["adaptive", "fixed"] = "fixed" if cfg.threshold_mode == "fixed" else "adaptive"
    thresholds = adaptive_thresholds(means, base=(cfg.t_noisy, cfg.t_clean), mode=mode)  # (K, 2)
    valid_probs = predict_probs(nets, data.valid.pixels, spec, batch_size=cfg.eval_batch_size)
    valid_labels = data.valid.labels.numpy()
    final = {
        "config": cfg.to_dict(),
        "classes": list(data.classes),
        "nets": [n.state_dict() for n in nets],
        "epochs": cfg.epochs,
        "class_means": means.tolist(),
        "thresholds": thresholds.tolist(),
        "valid": {
            "accuracy": accuracy(valid_probs, valid_labels),
            "perClassRecall": per_class_recall(valid_probs, valid_labels, data.classes),
            "samples": len(valid_labels),
        },
    }
    path = Path(cfg.run_dir) / FINAL
    _save(final, path)
    print(f"final: valid accuracy {final['valid']['accuracy']:.4f}; thresholds in {path}")
    return path


def load_trained(path: Path | str) -> tuple[TrainConfig, list[nn.Module], dict[str, Any]]:
    """Rebuild the networks of a `final.pt` (eval mode) with its config and metadata."""
    final = torch.load(path, weights_only=False)
    cfg = TrainConfig.from_dict(final["config"])
    nets = build_nets(cfg, len(final["classes"]))
    for net, state in zip(nets, final["nets"], strict=True):
        net.load_state_dict(state)
        net.eval()
    return cfg, nets, final
