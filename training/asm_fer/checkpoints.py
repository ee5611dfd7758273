"""A run folder's checkpoints: where a run starts (resume, warm start from another run's warm-up, pretrained
weights), `last.pt` / `epoch-NN.pt` after each epoch, its end (`final.pt`: Valid metrics and the thresholds
the bundle exports), and reloading it. Checkpoints pickle `MiningState`; `load_checkpoint` reads those
written before the package was grouped by stage too.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .config import METHOD_FIELDS, RUNTIME_FIELDS, RunError, TrainConfig
from .data.preprocess import InputSpec
from .distributed import World
from .evaluate import accuracy, per_class_recall, predict_probs
from .method.asm import MiningState
from .method.thresholds import adaptive_thresholds, class_means
from .models.resnet import load_torchvision_weights
from .run import Data, build_nets

CHECKPOINT = "last.pt"
FINAL = "final.pt"
# Where the classes a checkpoint pickles lived before the package was grouped by stage (issue 30): runs
# started by an older copy resume here, so their `MiningState` is looked up under its new module.
MOVED_MODULES = {"asm_fer.asm": "asm_fer.method.asm"}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)


class _MovedModulesPickle:
    """The `pickle_module` torch.load takes: pickle, with `_Unpickler` mapping MOVED_MODULES."""

    Unpickler = _Unpickler

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return _Unpickler(file, **kwargs).load()


def load_checkpoint(path: Path | str, *, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint or `final.pt` of this code or of one written before the moves in MOVED_MODULES; the
    whole pickle (MiningState, config dicts), so only for run folders this project wrote."""
    ckpt: dict[str, Any] = torch.load(path, weights_only=False, map_location=map_location, pickle_module=_MovedModulesPickle)
    return ckpt


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
        ckpt = load_checkpoint(ckpt_path, map_location=device)
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
    ckpt = load_checkpoint(path, map_location=device)
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
    scope = valid_scope(cfg, len(valid_labels), data.valid_total)
    print(f"final: Valid accuracy {final['valid']['accuracy']:.4f} {scope}; thresholds in {path}")
    return path


def valid_scope(cfg: TrainConfig, images: int, total: int) -> str:
    """What a Valid accuracy of the run was measured on, e.g. 'on all 3526 Valid images' or, under --limit or
    --valid-limit, 'on 501 of 3526 Valid images (a class-stratified subset: --limit 500; ...)'."""
    if images >= total:
        return f"on all {images} Valid images"
    flag = f"--valid-limit {cfg.valid_limit}" if cfg.valid_limit > 0 else f"--limit {cfg.limit}"
    return f"on {images} of {total} Valid images (a class-stratified subset: {flag}; --valid-limit 0 validates on all)"


def load_trained(path: Path | str) -> tuple[TrainConfig, list[nn.Module], dict[str, Any]]:
    """Rebuild the networks of a `final.pt` (eval mode) with its config and metadata."""
    final = load_checkpoint(path)
    cfg = TrainConfig.from_dict(final["config"])
    nets = build_nets(cfg, len(final["classes"]), pretrained=False)
    for net, state in zip(nets, final["nets"], strict=True):
        net.load_state_dict(state)
        net.eval()
    return cfg, nets, final
