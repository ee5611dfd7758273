"""A run folder's life around the epoch loop: the data and networks a config names, where a run starts
(resume, warm start from another run's warm-up, pretrained weights), its checkpoints, and its end
(`final.pt`: Valid metrics and the thresholds the bundle exports) and reloading it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .asm import MiningState
from .config import METHOD_FIELDS, RUNTIME_FIELDS, RunError, TrainConfig
from .data import read_label_file, scan
from .data.dataset import ImageSet, calibration_split, load_images, stratified_limit
from .distributed import World
from .dlib_classifier import dlib_classifier
from .evaluate import accuracy, per_class_recall, predict_probs
from .noise import apply_noise, from_file, save_noise
from .resnet import ResNet, load_torchvision_weights
from .thresholds import adaptive_thresholds, class_means
from .transforms import InputSpec

CHECKPOINT = "last.pt"
FINAL = "final.pt"
CALIBRATION_IDS = "calibration.txt"


@dataclass
class Data:
    classes: tuple[str, ...]
    train: ImageSet  # labels are the (possibly noisy) labels to train on
    valid: ImageSet
    truly_noisy: np.ndarray  # (N_train,) bool mask of wrong training labels
    true_labels: np.ndarray  # (N_train,) the dataset's own (clean / majority) labels
    # the held-out calibration split (--calibration), with the dataset's own labels and votes; None without one
    calibration: ImageSet | None = None


def input_spec(cfg: TrainConfig) -> InputSpec:
    c = cfg.channels
    return InputSpec(channels=c, height=cfg.input_size, width=cfg.input_size, mean=(0.5,) * c, std=(0.5,) * c)


def load_data(cfg: TrainConfig, *, save_labels: bool = True) -> Data:
    spec = input_spec(cfg)
    classes, train_samples = scan(cfg.dataset, cfg.data, "train")
    _, valid_samples = scan(cfg.dataset, cfg.data, "valid")
    train_samples = stratified_limit(train_samples, cfg.limit, cfg.seed)
    valid_samples = stratified_limit(valid_samples, cfg.limit if cfg.valid_limit < 0 else cfg.valid_limit, cfg.seed)
    # carved out before anything is trained, so no network of the run ever sees these images
    train_samples, calibration_samples = calibration_split(train_samples, cfg.calibration, cfg.seed, cfg.fold)
    train = load_images(train_samples, spec, desc="decode train")
    if cfg.noise.startswith("file:"):
        noise = from_file(read_label_file(cfg.dataset, cfg.noise[5:]), train.names, train.labels.numpy())
    else:
        noise = apply_noise(cfg.noise, train.labels.numpy(), train.votes, len(classes), cfg.seed)
    true_labels = train.labels.numpy().copy()
    train.labels = torch.from_numpy(noise.labels)
    if save_labels:
        run = Path(cfg.run_dir)
        run.mkdir(parents=True, exist_ok=True)
        save_noise(noise, train.names, run / "labels.csv")
        if calibration_samples:
            (run / CALIBRATION_IDS).write_text("".join(f"{s.path.name}\n" for s in calibration_samples))
    held = f", calibration {len(calibration_samples)} held out" if calibration_samples else ""
    print(f"train {len(train)} images ({cfg.noise}: {noise.rate:.1%} wrong labels){held}, valid {len(valid_samples)}")
    calibration = load_images(calibration_samples, spec, desc="decode calibration") if calibration_samples else None
    valid = load_images(valid_samples, spec, desc="decode valid")
    return Data(classes, train, valid, noise.truly_noisy, true_labels, calibration)


def build_nets(cfg: TrainConfig, num_classes: int, *, pretrained: bool = True) -> list[nn.Module]:
    """The run's networks, freshly initialised; a dlib backbone holds face-api's weights unless
    `pretrained` is false (the caller loads a checkpoint over it)."""
    if cfg.backbone == "dlib-resnet":
        spec = input_spec(cfg)
        return [
            dlib_classifier(
                num_classes,
                in_channels=cfg.channels,
                size=cfg.backbone_size,
                mean=spec.mean[0],
                std=spec.std[0],
                dropout=cfg.dropout,
                freeze_stages=cfg.freeze_stages,
                pretrained=pretrained,
            )
            for _ in range(cfg.networks)
        ]
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


def _load_pretrained(cfg: TrainConfig, nets: list[nn.Module], path: str) -> None:
    """Start from `path`: another run's checkpoint (fine-tuning; network i takes its network i mod its
    count, so a one-network run seeds both) or a torchvision-named ResNet state dict."""
    weights = torch.load(path, weights_only=True, map_location="cpu")
    if "config" in weights:
        # a fine-tune must hold out what its parent held out, or its calibration split is in-sample after all
        parent = TrainConfig.from_dict(weights["config"])
        same = ("data", "dataset", "limit", "calibration", "calibration_fold", "seed")
        held = parent.calibration_share or cfg.calibration_share
        differ = [k for k in same if getattr(parent, k) != getattr(cfg, k)] if held else []
        if differ:
            raise RunError(
                f"--pretrained {path}: that run held out another calibration split (it differs in {', '.join(differ)}); "
                "fine-tune with the same --data, --limit, --calibration / --calibration-fold and --seed"
            )
    if "nets" in weights:
        for i, net in enumerate(nets):
            net.load_state_dict(weights["nets"][i % len(weights["nets"])])
        print(f"fine-tuning from the {len(weights['nets'])} network(s) of {path}")
        return
    for net in nets:
        skipped = load_torchvision_weights(net, weights)
    print(f"initialised from {path}; kept their own initialisation: {', '.join(skipped) or 'none'}")


def restore(
    cfg: TrainConfig,
    nets: list[nn.Module],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    world: World,
) -> tuple[int, MiningState]:
    """Where the run in `cfg.run_dir` starts: its own last checkpoint (resume), another run's warm-up
    (--warm-start) or fresh weights (--pretrained, else the initialisation). Loads networks, optimizer and
    scheduler in place; returns the first epoch to run and the mining state carried so far."""
    run = Path(cfg.run_dir)
    state = MiningState()
    start_epoch = 1
    ckpt_path = run / CHECKPOINT
    ckpt = None
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False, map_location=device)
        # a run may resume on another machine, with other threads, keeping other epochs
        if TrainConfig.from_dict(ckpt["config"]).without(RUNTIME_FIELDS) != cfg.without(RUNTIME_FIELDS):
            raise RunError(f"{ckpt_path} was written with a different config; use a new --run-dir")
        print(f"resuming {run} at epoch {ckpt['epoch'] + 1}")
    elif cfg.warm_start:
        ckpt = warm_start_checkpoint(cfg, device)
        if world.is_main:
            copy_warm_up_metrics(Path(cfg.warm_start).parent, run, ckpt["epoch"])
        print(f"starting {run} at epoch {ckpt['epoch'] + 1} from the warm-up in {cfg.warm_start}")
    elif cfg.pretrained:
        _load_pretrained(cfg, nets, cfg.pretrained)
    if ckpt is not None:
        for net, net_state in zip(nets, ckpt["nets"], strict=True):
            net.load_state_dict(net_state)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        state = ckpt.get("mining", state)
        start_epoch = ckpt["epoch"] + 1
    return start_epoch, state


def save_checkpoint(
    cfg: TrainConfig,
    epoch: int,
    nets: list[nn.Module],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    state: MiningState,
) -> None:
    """`last.pt` after `epoch` (what a rerun resumes from), and `epoch-NN.pt` for --keep-epochs."""
    run = Path(cfg.run_dir)
    _save(
        {
            "config": cfg.to_dict(),
            "epoch": epoch,
            "nets": [n.state_dict() for n in nets],
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "mining": state,
        },
        run / CHECKPOINT,
    )
    if epoch in cfg.keep_epochs:
        shutil.copyfile(run / CHECKPOINT, run / f"epoch-{epoch:02d}.pt")


def warm_start_checkpoint(cfg: TrainConfig, device: torch.device) -> dict[str, Any]:
    """The checkpoint named by `cfg.warm_start`, after checking that everything this run has done by
    then is what its own warm-up would have done: the same recipe, two networks trained with CE only."""
    path = Path(cfg.warm_start)
    if not path.is_file():
        raise RunError(f"--warm-start {path}: no such checkpoint")
    ckpt = torch.load(path, weights_only=False, map_location=device)
    parent = TrainConfig.from_dict(ckpt["config"])
    ignore = RUNTIME_FIELDS | METHOD_FIELDS
    ours = cfg.without(ignore)
    differ = sorted(k for k, v in parent.without(ignore).items() if ours[k] != v)
    if differ:
        raise RunError(f"--warm-start {path}: that run differs in {', '.join(differ)}")
    epoch = int(ckpt["epoch"])
    if parent.networks != 2 or cfg.networks != 2:
        raise RunError(f"--warm-start {path}: both runs must train two networks (ce2, asm, asm-fixed, codivision)")
    if parent.mines and epoch > parent.warmup_epochs:
        raise RunError(f"--warm-start {path}: epoch {epoch} of that run is past its warm-up ({parent.warmup_epochs})")
    if epoch > cfg.warmup_epochs:
        raise RunError(f"--warm-start {path}: epoch {epoch} is past this run's warm-up ({cfg.warmup_epochs} epochs)")
    return dict(ckpt)


def copy_warm_up_metrics(parent: Path, run: Path, epochs: int) -> None:
    """Start this run's metrics with the parent's rows of the shared epochs, marked with their origin."""
    rows = [json.loads(line) for line in (parent / "metrics.jsonl").read_text().splitlines() if line.strip()]
    shared = [r | {"from": str(parent)} for r in rows if r["epoch"] <= epochs]
    if len(shared) != epochs:
        raise RunError(f"--warm-start: {parent / 'metrics.jsonl'} lacks rows for epochs 1..{epochs}")
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in shared))


def final_model_thresholds(cfg: TrainConfig, train_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class means (K,) and thresholds (K, 2) of a run that did not mine, from the final model's
    probabilities on its training images: the spec's default statistic and normalisation."""
    means = class_means(train_probs, labels)
    mode: Literal["adaptive", "fixed"] = "fixed" if cfg.fixed_thresholds else "adaptive"
    return means, adaptive_thresholds(means, base=(cfg.t_noisy, cfg.t_clean), mode=mode)


def finalise(cfg: TrainConfig, nets: list[nn.Module], data: Data, spec: InputSpec, state: MiningState) -> Path:
    """Valid metrics and the exported thresholds of the final model, written to `final.pt`."""
    if state.thresholds is not None and state.means is not None:
        means, thresholds, source_epoch = state.means, state.thresholds, state.epoch
        split = "training set, weak view" if cfg.mining_view == "weak" else "training set, un-augmented"
    else:
        train_probs = predict_probs(nets, data.train.pixels, spec, batch_size=cfg.eval_batch_size, engine=cfg.eval_engine)
        means, thresholds = final_model_thresholds(cfg, train_probs, data.train.labels.numpy())
        source_epoch, split = cfg.epochs, "training set, final model, un-augmented"
    valid_probs = predict_probs(nets, data.valid.pixels, spec, batch_size=cfg.eval_batch_size, engine=cfg.eval_engine)
    valid_labels = data.valid.labels.numpy()
    final = {
        "config": cfg.to_dict(),
        "classes": list(data.classes),
        "nets": [n.state_dict() for n in nets],
        "epochs": cfg.epochs,
        "class_means": [float(m) for m in means],
        "thresholds": thresholds.tolist(),
        "threshold_learning": {
            "mode": "fixed" if cfg.fixed_thresholds else "adaptive",
            "statistic": cfg.statistic if state.thresholds is not None else "given-label",
            "normalisation": cfg.normalisation if state.thresholds is not None else "max",
            "momentum": cfg.momentum,
            "source": cfg.source if state.thresholds is not None else "ensemble",
            "epoch": source_epoch,
            "split": split,
        },
        "valid": {
            "accuracy": accuracy(valid_probs, valid_labels),
            "perClassRecall": per_class_recall(valid_probs, valid_labels, data.classes),
            "singleNetworkAccuracy": [
                accuracy(predict_probs([n], data.valid.pixels, spec, engine=cfg.eval_engine), valid_labels) for n in nets
            ],
            "samples": len(valid_labels),
        },
    }
    path = Path(cfg.run_dir) / FINAL
    _save(final, path)
    print(f"final: valid accuracy {final['valid']['accuracy']:.4f}; thresholds in {path}")
    return path


def load_trained(path: Path | str) -> tuple[TrainConfig, list[nn.Module], dict[str, Any]]:
    """Rebuild the networks of a `final.pt` (eval mode) with its config and metadata."""
    final = torch.load(path, weights_only=False, map_location="cpu")
    cfg = TrainConfig.from_dict(final["config"])
    nets = build_nets(cfg, len(final["classes"]), pretrained=False)
    for net, state in zip(nets, final["nets"], strict=True):
        net.load_state_dict(state)
        net.eval()
    return cfg, nets, final
