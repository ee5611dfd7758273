"""Tri-Regularization (asm-method.md, MAN form): supervised CE on clean samples, mutual learning on
ambiguous samples, weak/strong consistency on noisy samples. Every term is a mean over the samples
it is given and is exactly 0 for an empty subset (never NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _zero(like: torch.Tensor) -> torch.Tensor:
    return like.sum() * 0.0  # keeps the graph (and device/dtype) while contributing nothing


def supervised(logits: Sequence[torch.Tensor], labels: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean over networks of CE(f_m(x), y); logits: M tensors (B, K), labels (B,) class indices or (B, K)
    target distributions (e.g. crowd vote shares)."""
    if labels.shape[0] == 0:
        return _zero(logits[0])
    return torch.stack([F.cross_entropy(lg, labels, label_smoothing=label_smoothing) for lg in logits]).mean()


def symmetric_kl(logits1: torch.Tensor, logits2: torch.Tensor, *, detach: bool = False) -> torch.Tensor:
    """1/2 [KL(p2 || p1) + KL(p1 || p2)], summed over classes, mean over samples; (B, K) each.
    detach=True uses each network's distribution as a fixed target for the other."""
    if logits1.shape[0] == 0:
        return _zero(logits1)
    lp1, lp2 = F.log_softmax(logits1, 1), F.log_softmax(logits2, 1)  # (B, K)
    t1, t2 = (lp1.detach(), lp2.detach()) if detach else (lp1, lp2)
    kl_21 = (t2.exp() * (t2 - lp1)).sum(1)  # KL(p2 || p1), (B,)
    kl_12 = (t1.exp() * (t1 - lp2)).sum(1)  # KL(p1 || p2), (B,)
    return 0.5 * (kl_21 + kl_12).mean()


def mutual(
    logits1: torch.Tensor, logits2: torch.Tensor, labels: torch.Tensor, lam: float, *, detach: bool = False
) -> torch.Tensor:
    """(1 - lambda) * CE-form + lambda * symmetric KL, on the ambiguous samples."""
    return (1 - lam) * supervised([logits1, logits2], labels) + lam * symmetric_kl(logits1, logits2, detach=detach)


def consistency(weak: Sequence[torch.Tensor], strong: Sequence[torch.Tensor], *, detach: bool = False) -> torch.Tensor:
    """1/2 sum_m MSE(softmax f_m(x_w), softmax f_m(x_s)), MSE being the mean over samples *and* classes
    (MAN's `F.mse_loss`; the supplement's gamma sweep is on this scale: summing over K classes instead
    would make gamma = 1 act like gamma = K). detach=True treats the weak view's prediction as a fixed target."""
    if weak[0].shape[0] == 0:
        return _zero(weak[0])
    terms = []
    for w, s in zip(weak, strong, strict=True):
        pw = F.softmax(w, 1)
        terms.append(F.mse_loss(pw.detach() if detach else pw, F.softmax(s, 1)))  # mean over (B, K)
    return 0.5 * torch.stack(terms).sum()


def mutual_weight(epoch: int, epochs: int, *, beta: float = 0.65, peak: float = 0.9) -> float:
    """lambda(t) = 0.9 exp(-beta (1 - t / (0.9 E))^2); held at 0.9 after t = 0.9 E [choice: a ramp
    that does not fall again]. lambda(11) ~ 0.545 and lambda(90) = 0.9 for E = 100."""
    ramp_end = 0.9 * epochs
    progress = min(epoch / ramp_end, 1.0)
    return peak * math.exp(-beta * (1 - progress) ** 2)
