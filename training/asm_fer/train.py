"""The training loop, top to bottom: (mine) -> per-subset losses -> step -> evaluate -> log -> checkpoint.

Methods: `ce` (one network) and `ce2` (two, ensembled) train with cross-entropy on every sample;
`asm`, `asm-fixed` and `codivision` warm up with cross-entropy, then mine the training set at the
start of every epoch and train with Tri-Regularization (asm.py). A rerun with the same run folder
resumes from the last completed epoch. At the end, `final.pt` holds the networks, Valid metrics and
the thresholds the bundle exports: those of the last mining epoch, or, for methods that never mine,
Adaptive Threshold Learning applied once to the final model on the un-augmented training set. Where a
run starts, its checkpoints and its end live in run.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .checkpoints import FINAL, finalise, restore, save_checkpoint
from .config import ConfigError, Precision, RunError, TrainConfig
from .data.dataset import ImageSet
from .data.preprocess import InputSpec, normalise
from .data.views import weak_view
from .device import autocast, device_of, machine, place, resolve_device, resolve_precision, to_device
from .distributed import World, all_sum, init_world, leave, wrap
from .evaluate import accuracy, predict_probs
from .method.asm import mine_epoch, tri_loss
from .method.losses import mutual_weight, supervised, symmetric_kl
from .method.mining import Subsets
from .models.dlib_classifier import param_groups, refresh_norm
from .reports.plots import plot_curves, plot_mining
from .run import Data, build_nets, input_spec, load_data


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
    votes = torch.from_numpy(data.votes / data.votes.sum(1, keepdims=True)).float() if cfg.targets == "votes" else None
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
        # the views are made where the networks are (on CUDA the GPU augments; on the CPU this is the CPU batch)
        x01, y = data.pixels[idx].to(device) / 255, data.labels[idx]  # (B, C, H, W), (B,)
        if codes is None:
            x, y = normalise(weak_view(x01, gen, cfg.weak_view) * 255, spec), y.to(device)
            if cfg.stability:  # the plain images ride along in the same forward pass
                x = torch.cat([x, normalise(x01 * 255, spec)])
            with autocast(device, cfg.precision):
                outputs = [net(to_device(x, device)).float() for net in nets]  # each (B or 2B, K)
            logits = [out[: len(idx)] for out in outputs]
            target = votes[idx].to(device) if votes is not None else y  # (B, K) vote shares or (B,) labels
            loss = supervised(logits, target, label_smoothing=cfg.label_smoothing)
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


def train(cfg: TrainConfig, data: Data | None = None) -> Path:
    """Train (or resume) the run in `cfg.run_dir`; returns the path of the final checkpoint."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    world, device = init_world(resolve_device(cfg.device))
    run = Path(cfg.run_dir)
    cfg = dataclasses.replace(cfg, precision=_run_precision(cfg, run, device))
    if world.is_main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    data = data or load_data(cfg, save_labels=world.is_main)
    spec = input_spec(cfg)
    nets = build_nets(cfg, len(data.classes))
    if world.size > 1 and cfg.forward != "concat":
        raise ConfigError("distributed training needs --forward concat (one forward per network and step)")
    if cfg.stability and cfg.mines:
        raise ConfigError("--stability is for ce and ce2; ASM's own consistency term covers its noisy samples")
    place(nets, device)
    models = wrap(nets, world, device)
    print(f"device: {device}, rank {world.rank} of {world.size}")
    opt = torch.optim.Adam(param_groups(nets, backbone_lr=cfg.backbone_lr), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.epoch_lr_decay)
    start_epoch, state = restore(cfg, nets, opt, sched, device, world)
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
                for warning in mined.get("warnings", []):
                    if cfg.strict:
                        raise RunError(f"{warning} (--strict; without it the run resumes here)")
                    if world.is_main:
                        print(f"warning: {warning}")
                row["lambda"] = mutual_weight(epoch, cfg.schedule_epochs, beta=cfg.beta)
            t1 = time.time()
            row |= _run_epoch(models, opt, data.train, spec, cfg, epoch, subsets, world)
            seconds = time.time() - t1
            sched.step()
            refresh_norm(nets, data.train.pixels, spec)  # a dlib head's eval-mode norm, before mining / Valid / export
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
                "machine": machine(),
            }
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(console_line(row))
            plot_curves(run / "metrics.jsonl", run / "curves.png")
            plot_mining(run / "metrics.jsonl", run / "mining.png")
            save_checkpoint(cfg, epoch, nets, opt, sched, state)
    final = run / FINAL
    if world.is_main:
        finalise(cfg, nets, data, spec, state)
    leave(world)
    return final


def console_line(row: dict[str, Any]) -> str:
    """The epoch's metrics row as one console line: its numbers, the subset sizes and, rounded, the fit to the
    labels and the noisy subset's precision / recall / F1 (metrics.jsonl keeps the rest: per class, thresholds,
    the machine; a warning has a line of its own)."""
    line = {k: v for k, v in row.items() if not isinstance(v, dict | list)} | {"subsets": row.get("subsets")}
    if "fit" in row:
        line["fit"] = {k: round(v, 3) for k, v in row["fit"].items()}
    if "mining" in row:
        line["mining"] = {k: round(row["mining"][k], 3) for k in ("precision", "recall", "f1")}
    return json.dumps(line)


def _run_precision(cfg: TrainConfig, run: Path, device: torch.device) -> Precision:
    """The precision this run trains in, fixed at its start: `--precision auto` is decided once from the machine
    (device.resolve_precision) and written to config.json, so a run resumed on another kind of CPU keeps its
    arithmetic; a run folder whose config says otherwise keeps what it began with (an older run's `auto`
    meant fp32 on the CPU, bf16 on CUDA, and autocast still reads it so)."""
    if cfg.precision != "auto":
        return cfg.precision
    if (run / "config.json").is_file():
        begun: Precision = json.loads((run / "config.json").read_text()).get("precision", "auto")
        return begun
    chosen = resolve_precision("auto", device)
    print(f"precision: {chosen} (auto, on {machine()['cpu']})")
    return chosen


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
