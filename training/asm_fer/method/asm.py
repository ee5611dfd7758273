"""One ASM step each: the mining pass at the start of an epoch (probabilities of the observed labels
-> Adaptive Threshold Learning -> Sample Mining) and the Tri-Regularization loss of a mini-batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..config import ConfigError, TrainConfig
from ..data.preprocess import InputSpec, normalise
from ..data.views import strong_view, weak_view
from ..device import autocast, device_of, to_device
from ..distributed import World, gather_rows
from ..models.frozen import freeze
from .losses import consistency, mutual, mutual_weight, supervised
from .mining import Rule, Subsets, mine, mining_quality, mining_warning
from .thresholds import adaptive_thresholds, class_means


@dataclass
class MiningState:
    """What carries from one mining epoch to the next (and into the exported bundle)."""

    net_means: np.ndarray | None = None  # (S, K) mu_k per source (S = 1 for the ensemble, M per network)
    means: np.ndarray | None = None  # (K,) mu_k, the mean over sources
    thresholds: np.ndarray | None = None  # (K, 2) as (tau_n, tau_c), the mean over sources
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@torch.no_grad()
def net_probabilities(
    nets: Sequence[nn.Module],
    pixels: torch.Tensor,
    spec: InputSpec,
    *,
    gen: torch.Generator | None,
    batch_size: int,
    view: str = "recipe",
    engine: str = "auto",
) -> np.ndarray:
    """(M, N, K) probabilities of each network, eval mode; on the weak view of kind `view` when `gen` is given."""
    run = freeze(nets, normalise(pixels[:2], spec), engine=engine)
    device = device_of(nets)  # the weak view is made there (on CUDA the GPU augments)
    out = []
    for start in range(0, pixels.shape[0], batch_size):
        x01 = pixels[start : start + batch_size].to(device) / 255
        x = normalise((weak_view(x01, gen, view) if gen is not None else x01) * 255, spec)  # (B, C, H, W)
        out.append(torch.softmax(run(x), 2))  # (M, B, K)
    return torch.cat(out, 1).numpy().astype(np.float64)


def mine_epoch(
    cfg: TrainConfig,
    nets: Sequence[nn.Module],
    pixels: torch.Tensor,
    labels: np.ndarray,
    spec: InputSpec,
    classes: Sequence[str],
    epoch: int,
    state: MiningState,
    truly_noisy: np.ndarray | None,
    world: World,
) -> tuple[Subsets, dict[str, Any]]:
    """Mine the training set for `epoch` (sharded over ranks, gathered); updates `state` and returns
    the subsets and a log row."""
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch + 50_000) if cfg.mining_view == "weak" else None
    mine_here = world.shard(torch.arange(len(labels)), even=False)
    local = net_probabilities(
        nets, pixels[mine_here], spec, gen=gen, view=cfg.weak_view, batch_size=cfg.eval_batch_size, engine=cfg.eval_engine
    )
    probs = gather_rows(local, world, len(labels))  # (M, N, K)
    sources = probs.mean(0, keepdims=True) if cfg.source == "ensemble" else probs  # (S, N, K), S = 1 or M
    previous = state.net_means if state.net_means is not None else [None] * len(sources)
    net_means = np.stack(
        [class_means(p, labels, statistic=cfg.statistic, previous=prev) for p, prev in zip(sources, previous, strict=True)]
    )  # (S, K)
    if state.net_means is not None and cfg.momentum > 0:
        net_means = cfg.momentum * state.net_means + (1 - cfg.momentum) * net_means
    mode: Literal["adaptive", "fixed"] = "fixed" if cfg.fixed_thresholds else "adaptive"
    net_thresholds = np.stack(
        [adaptive_thresholds(m, base=(cfg.t_noisy, cfg.t_clean), mode=mode, normalisation=cfg.normalisation) for m in net_means]
    )  # (S, K, 2)
    rule: Rule = "codivision" if cfg.method == "codivision" else cfg.mining_rule
    if cfg.method == "oracle":  # the control: the true noise mask, thresholds still learned for the bundle
        if truly_noisy is None or not truly_noisy.any():
            raise ConfigError("--method oracle needs a known noise mask (--noise sym-<r> or crowd-1)")
        subsets = Subsets(clean=~truly_noisy, ambiguous=np.zeros_like(truly_noisy), noisy=truly_noisy.copy())
    else:
        subsets = mine(probs, labels, net_thresholds, rule=rule)
    # one pair per class is what the service applies: with per-network sources, the mean over networks
    means, thresholds = net_means.mean(0), net_thresholds.mean(0)  # (K,), (K, 2)
    state.net_means, state.means, state.thresholds, state.epoch = net_means, means, thresholds, epoch
    row: dict[str, Any] = {
        "thresholds": {c: {"noisy": float(t[0]), "clean": float(t[1])} for c, t in zip(classes, thresholds, strict=True)},
        "class_means": {c: float(m) for c, m in zip(classes, means, strict=True)},
        "subsets": subsets.sizes(),
        "subsets_per_class": {
            c: {
                name: int((mask & (labels == k)).sum())
                for name, mask in (("clean", subsets.clean), ("ambiguous", subsets.ambiguous), ("noisy", subsets.noisy))
            }
            for k, c in enumerate(classes)
        },
    }
    if cfg.method != "oracle":  # the oracle's subsets are the truth, whatever the networks say
        last = state.history[-1].get("subsets_per_class") if state.history else None
        warning = mining_warning(epoch, row["subsets_per_class"], means, thresholds, rule=rule, previous=last)
        if warning:
            row["warnings"] = [warning]
    if truly_noisy is not None and truly_noisy.any():
        row["mining"] = mining_quality(subsets, truly_noisy)
        row["mining_per_class"] = {
            c: mining_quality(
                Subsets(subsets.clean[labels == k], subsets.ambiguous[labels == k], subsets.noisy[labels == k]),
                truly_noisy[labels == k],
            )
            for k, c in enumerate(classes)
        }
    state.history.append({"epoch": epoch, **row})
    return subsets, row


def tri_loss(
    cfg: TrainConfig,
    nets: Sequence[nn.Module],
    x01: torch.Tensor,
    y: torch.Tensor,
    subset: torch.Tensor,
    spec: InputSpec,
    gen: torch.Generator,
    epoch: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L = L_sup(clean) + omega L_mut(ambiguous) + gamma L_usc(noisy) for one mini-batch.

    x01: (B, C, H, W) images in [0, 1]; y: (B,) observed labels; subset: (B,) 0 clean, 1 ambiguous,
    2 noisy. Two networks.
    """
    device = device_of(nets)
    weak = to_device(normalise(weak_view(x01, gen, cfg.weak_view) * 255, spec), device)  # (B, C, H, W)
    noisy_rows = torch.nonzero(subset == 2).flatten().to(x01.device)  # x01 is on the networks' device
    strong = to_device(normalise(strong_view(x01[noisy_rows], gen, cfg.strong_view) * 255, spec), device)  # (Bn, C, H, W)
    y, subset = y.to(device), subset.to(device)
    clean, amb, noisy = subset == 0, subset == 1, subset == 2
    with autocast(device, cfg.precision):
        if cfg.forward == "concat":
            both = torch.cat([weak, strong])
            outs = [net(both) for net in nets]  # each (B + Bn, K)
            w_logits, s_logits = [o[: len(weak)] for o in outs], [o[len(weak) :] for o in outs]
            lc, la, ln = [w[clean] for w in w_logits], [w[amb] for w in w_logits], [w[noisy] for w in w_logits]
        else:
            lc = [net(weak[clean]) for net in nets]
            la = [net(weak[amb]) for net in nets]
            ln = [net(weak[noisy]) for net in nets]
            s_logits = [net(strong) for net in nets]
    lam = mutual_weight(epoch, cfg.schedule_epochs, beta=cfg.beta)  # the schedule's E, like the lr decay
    lc, la, ln, s_logits = ([t.float() for t in group] for group in (lc, la, ln, s_logits))
    l_sup = supervised(lc, y[clean], label_smoothing=cfg.label_smoothing)
    l_mut = mutual(la[0], la[1], y[amb], lam, detach=cfg.detach_mutual)
    l_usc = consistency(ln, s_logits, detach=cfg.detach_consistency)
    loss = l_sup + cfg.omega * l_mut + cfg.gamma * l_usc
    predicted = torch.cat([torch.stack(part).mean(0).argmax(1) for part in (lc, la, ln)])
    correct = int((predicted == torch.cat([y[clean], y[amb], y[noisy]])).sum())
    return loss, {"sup": l_sup.item(), "mut": l_mut.item(), "usc": l_usc.item(), "correct": correct}
