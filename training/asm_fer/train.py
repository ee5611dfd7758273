"""The training loop, top to bottom: (mine) -> per-subset losses -> step -> evaluate -> log -> checkpoint.

Methods: `ce` (one network) and `ce2` (two, ensembled) train with cross-entropy on every sample;
`asm`, `asm-fixed` and `codivision` warm up with cross-entropy, then mine the training set at the
start of every epoch and train with Tri-Regularization (asm.py). A rerun with the same run folder
resumes from the last completed epoch. At the end, `final.pt` holds the networks, Valid metrics and
the thresholds the bundle exports: those of the last mining epoch, or, for methods that never mine,
Adaptive Threshold Learning applied once to the final model on the un-augmented training set.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .asm import MiningState, mine_epoch, tri_loss
from .config import METHOD_FIELDS, RUNTIME_FIELDS, TrainConfig
from .data import read_label_file, scan
from .data.dataset import ImageSet, load_images, stratified_limit
from .device import autocast, device_of, place, resolve_device, to_device
from .distributed import World, all_sum, init_world, leave, wrap
from .dlib_classifier import dlib_classifier, param_groups
from .evaluate import accuracy, per_class_recall, predict_probs
from .losses import mutual_weight, supervised, symmetric_kl
from .mining import Subsets
from .noise import apply_noise, from_file, save_noise
from .plots import plot_curves, plot_mining
from .resnet import ResNet, load_torchvision_weights
from .thresholds import adaptive_thresholds, class_means
from .transforms import InputSpec, normalise, weak_view

CHECKPOINT = "last.pt"
FINAL = "final.pt"


@dataclass
class Data:
    classes: tuple[str, ...]
    train: ImageSet  # labels are the (possibly noisy) labels to train on
    valid: ImageSet
    truly_noisy: np.ndarray  # (N_train,) bool mask of wrong training labels
    true_labels: np.ndarray  # (N_train,) the dataset's own (clean / majority) labels


def input_spec(cfg: TrainConfig) -> InputSpec:
    c = cfg.channels
    return InputSpec(channels=c, height=cfg.input_size, width=cfg.input_size, mean=(0.5,) * c, std=(0.5,) * c)


def load_data(cfg: TrainConfig, *, save_labels: bool = True) -> Data:
    spec = input_spec(cfg)
    classes, train_samples = scan(cfg.dataset, cfg.data, "train")
    _, valid_samples = scan(cfg.dataset, cfg.data, "valid")
    train_samples = stratified_limit(train_samples, cfg.limit, cfg.seed)
    valid_samples = stratified_limit(valid_samples, cfg.limit if cfg.valid_limit < 0 else cfg.valid_limit, cfg.seed)
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
    print(f"train {len(train)} images ({cfg.noise}: {noise.rate:.1%} wrong labels), valid {len(valid_samples)}")
    return Data(classes, train, load_images(valid_samples, spec, desc="decode valid"), noise.truly_noisy, true_labels)


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


def _subset_codes(subsets: Subsets) -> torch.Tensor:
    """(N,) 0 clean, 1 ambiguous, 2 noisy."""
    return torch.from_numpy(subsets.ambiguous.astype(np.int64) + 2 * subsets.noisy.astype(np.int64))


def _run_epoch(
    nets: list[nn.Module],
    opt: torch.optim.Optimizer,
    data: ImageSet,
    spec: InputSpec,
    cfg: TrainConfig,
    epoch: int,
    subsets: Subsets | None,
    world: World,
) -> dict[str, float]:
    """One pass over this rank's share of a shuffled training set; `nets` are the modules to train
    (DDP wrappers when distributed)."""
    # per-epoch streams, so that a resumed run continues exactly; the order is the same on every rank
    order = world.shard(torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)), even=True)
    gen = torch.Generator().manual_seed((cfg.seed * 100_003 + epoch) * 64 + world.rank + 1)
    batch_size = cfg.batch_size // world.size
    codes = _subset_codes(subsets) if subsets is not None else None
    device = device_of(nets)
    for net in nets:
        net.train()
    total, correct, loss_sum = 0, 0, 0.0
    parts_sum: dict[str, float] = {}
    bar = tqdm(
        range(0, len(order), batch_size),
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        leave=False,
        mininterval=5,
        disable=not world.is_main,
    )
    for start in bar:
        idx = order[start : start + batch_size]
        if len(idx) < 2:  # batch norm needs two samples
            continue
        x01, y = data.pixels[idx] / 255, data.labels[idx]  # (B, C, H, W), (B,)
        if codes is None:
            x, y = normalise(weak_view(x01, gen, cfg.weak_view) * 255, spec), y.to(device)
            if cfg.stability:  # the plain images ride along in the same forward pass
                x = torch.cat([x, normalise(x01 * 255, spec)])
            with autocast(device):
                outputs = [net(to_device(x, device)).float() for net in nets]  # each (B or 2B, K)
            logits = [out[: len(idx)] for out in outputs]
            loss = supervised(logits, y, label_smoothing=cfg.label_smoothing)
            if cfg.stability:
                steady = torch.stack([symmetric_kl(lg, out[len(idx) :]) for lg, out in zip(logits, outputs, strict=True)]).mean()
                loss = loss + cfg.stability * steady
                parts_sum["stability"] = parts_sum.get("stability", 0.0) + steady.item() * len(idx)
            hits = int((torch.stack(logits).mean(0).argmax(1) == y).sum())
        else:
            loss, parts = tri_loss(cfg, nets, x01, y, codes[idx], spec, gen, epoch)
            hits = int(parts.pop("correct"))
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v * len(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        total += len(idx)
        loss_sum += loss.item() * len(idx)
        correct += hits
        bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
    names = sorted(parts_sum)
    n_all, hits_all, loss_all, *sums = all_sum([total, correct, loss_sum, *(parts_sum[k] for k in names)], world)
    stats = {"loss": loss_all / max(n_all, 1), "train_accuracy": hits_all / max(n_all, 1)}
    return stats | {f"loss_{k}": v / max(n_all, 1) for k, v in zip(names, sums, strict=True)}


def _load_pretrained(nets: list[nn.Module], path: str) -> None:
    """Start from `path`: another run's checkpoint (fine-tuning; network i takes its network i mod its
    count, so a one-network run seeds both) or a torchvision-named ResNet state dict."""
    weights = torch.load(path, weights_only=True, map_location="cpu")
    if "nets" in weights:
        for i, net in enumerate(nets):
            net.load_state_dict(weights["nets"][i % len(weights["nets"])])
        print(f"fine-tuning from the {len(weights['nets'])} network(s) of {path}")
        return
    for net in nets:
        skipped = load_torchvision_weights(net, weights)
    print(f"initialised from {path}; kept their own initialisation: {', '.join(skipped) or 'none'}")


def train(cfg: TrainConfig, data: Data | None = None) -> Path:
    """Train (or resume) the run in `cfg.run_dir`; returns the path of the final checkpoint."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    world, device = init_world(resolve_device(cfg.device))
    run = Path(cfg.run_dir)
    if world.is_main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    data = data or load_data(cfg, save_labels=world.is_main)
    spec = input_spec(cfg)
    nets = build_nets(cfg, len(data.classes))
    if world.size > 1 and cfg.forward != "concat":
        raise SystemExit("distributed training needs --forward concat (one forward per network and step)")
    if cfg.stability and cfg.mines:
        raise SystemExit("--stability is for ce and ce2; ASM's own consistency term covers its noisy samples")
    place(nets, device)
    models = wrap(nets, world, device)
    print(f"device: {device}, rank {world.rank} of {world.size}")
    opt = torch.optim.Adam(param_groups(nets, backbone_lr=cfg.backbone_lr), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.epoch_lr_decay)
    state = MiningState()
    start_epoch = 1
    ckpt_path = run / CHECKPOINT
    ckpt = None
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False, map_location=device)
        # a run may resume on another machine, with other threads, keeping other epochs
        if TrainConfig.from_dict(ckpt["config"]).without(RUNTIME_FIELDS) != cfg.without(RUNTIME_FIELDS):
            raise SystemExit(f"{ckpt_path} was written with a different config; use a new --run-dir")
        print(f"resuming {run} at epoch {ckpt['epoch'] + 1}")
    elif cfg.warm_start:
        ckpt = warm_start_checkpoint(cfg, device)
        if world.is_main:
            copy_warm_up_metrics(Path(cfg.warm_start).parent, run, ckpt["epoch"])
        print(f"starting {run} at epoch {ckpt['epoch'] + 1} from the warm-up in {cfg.warm_start}")
    elif cfg.pretrained:
        _load_pretrained(nets, cfg.pretrained)
    if ckpt is not None:
        for net, net_state in zip(nets, ckpt["nets"], strict=True):
            net.load_state_dict(net_state)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        state = ckpt.get("mining", state)
        start_epoch = ckpt["epoch"] + 1
    train_labels, valid_labels = data.train.labels.numpy(), data.valid.labels.numpy()
    with (run / "metrics.jsonl").open("a") if world.is_main else contextlib.nullcontext() as log:
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0, lr = time.time(), sched.get_last_lr()[0]
            row: dict[str, Any] = {"epoch": epoch}
            subsets = None
            if cfg.mines and epoch > cfg.warmup_epochs:
                subsets, mined = mine_epoch(
                    cfg, nets, data.train.pixels, train_labels, spec, data.classes, epoch, state, data.truly_noisy, world
                )
                row |= mined | {"mining_seconds": round(time.time() - t0, 1)}
                row["lambda"] = mutual_weight(epoch, cfg.schedule_epochs, beta=cfg.beta)
            t1 = time.time()
            row |= _run_epoch(models, opt, data.train, spec, cfg, epoch, subsets, world)
            seconds = time.time() - t1
            sched.step()
            if log is None:
                continue
            probs = predict_probs(nets, data.valid.pixels, spec, batch_size=cfg.eval_batch_size, engine=cfg.eval_engine)
            if cfg.log_fit and data.truly_noisy.any():
                row["fit"] = fit_to_labels(
                    predict_probs(nets, data.train.pixels, spec, batch_size=cfg.eval_batch_size, engine=cfg.eval_engine),
                    train_labels,
                    data.true_labels,
                )
            row |= {
                "valid_accuracy": accuracy(probs, valid_labels),
                "lr": lr,
                "seconds": round(time.time() - t0, 1),
                "images_per_second": round(len(data.train) / seconds, 1),
            }
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps({k: v for k, v in row.items() if not isinstance(v, dict)} | {"subsets": row.get("subsets")}))
            plot_curves(run / "metrics.jsonl", run / "curves.png")
            plot_mining(run / "metrics.jsonl", run / "mining.png")
            _save(
                {
                    "config": cfg.to_dict(),
                    "epoch": epoch,
                    "nets": [n.state_dict() for n in nets],
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "mining": state,
                },
                ckpt_path,
            )
            if epoch in cfg.keep_epochs:
                shutil.copyfile(ckpt_path, run / f"epoch-{epoch:02d}.pt")
    final = run / FINAL
    if world.is_main:
        finalise(cfg, nets, data, spec, state)
    leave(world)
    return final


def fit_to_labels(probs: np.ndarray, labels: np.ndarray, true_labels: np.ndarray) -> dict[str, float]:
    """How far the model fits its training labels, from its un-augmented predictions (N, K), labels and
    true labels (N,): `wrong` = share of mislabelled samples predicted as their wrong given label
    (memorised), `wrong_true` = share of them predicted as their true class (corrected), `right` = share
    of correctly labelled samples predicted as their label."""
    pred, noisy = probs.argmax(1), labels != true_labels  # (N,), (N,)
    return {
        "wrong": float((pred == labels)[noisy].mean()) if noisy.any() else 0.0,
        "wrong_true": float((pred == true_labels)[noisy].mean()) if noisy.any() else 0.0,
        "right": float((pred == labels)[~noisy].mean()) if (~noisy).any() else 0.0,
    }


def warm_start_checkpoint(cfg: TrainConfig, device: torch.device) -> dict[str, Any]:
    """The checkpoint named by `cfg.warm_start`, after checking that everything this run has done by
    then is what its own warm-up would have done: the same recipe, two networks trained with CE only."""
    path = Path(cfg.warm_start)
    if not path.is_file():
        raise SystemExit(f"--warm-start {path}: no such checkpoint")
    ckpt = torch.load(path, weights_only=False, map_location=device)
    parent = TrainConfig.from_dict(ckpt["config"])
    ignore = RUNTIME_FIELDS | METHOD_FIELDS
    ours = cfg.without(ignore)
    differ = sorted(k for k, v in parent.without(ignore).items() if ours[k] != v)
    if differ:
        raise SystemExit(f"--warm-start {path}: that run differs in {', '.join(differ)}")
    epoch = int(ckpt["epoch"])
    if parent.networks != 2 or cfg.networks != 2:
        raise SystemExit(f"--warm-start {path}: both runs must train two networks (ce2, asm, asm-fixed, codivision)")
    if parent.mines and epoch > parent.warmup_epochs:
        raise SystemExit(f"--warm-start {path}: epoch {epoch} of that run is past its warm-up ({parent.warmup_epochs})")
    if epoch > cfg.warmup_epochs:
        raise SystemExit(f"--warm-start {path}: epoch {epoch} is past this run's warm-up ({cfg.warmup_epochs} epochs)")
    return dict(ckpt)


def copy_warm_up_metrics(parent: Path, run: Path, epochs: int) -> None:
    """Start this run's metrics with the parent's rows of the shared epochs, marked with their origin."""
    rows = [json.loads(line) for line in (parent / "metrics.jsonl").read_text().splitlines() if line.strip()]
    shared = [r | {"from": str(parent)} for r in rows if r["epoch"] <= epochs]
    if len(shared) != epochs:
        raise SystemExit(f"--warm-start: {parent / 'metrics.jsonl'} lacks rows for epochs 1..{epochs}")
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
