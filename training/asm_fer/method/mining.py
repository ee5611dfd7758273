"""Sample Mining (asm-method.md): split the training set into clean / ambiguous / noisy on the
probability of the *observed* label, and score a split against a known noise mask. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Rule = Literal["ensemble", "both-nets", "codivision"]


@dataclass(frozen=True)
class Subsets:
    """Boolean masks of shape (N,); disjoint and covering."""

    clean: np.ndarray
    ambiguous: np.ndarray
    noisy: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"clean": int(self.clean.sum()), "ambiguous": int(self.ambiguous.sum()), "noisy": int(self.noisy.sum())}


def given_label_confidence(net_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(M, N, K) per-network probabilities, (N,) labels -> (M, N) probability of each sample's label."""
    return net_probs[:, np.arange(labels.shape[0]), labels]


def mine(net_probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, *, rule: Rule = "ensemble") -> Subsets:
    """Split samples by the thresholds of their observed class.

    net_probs: (M, N, K) probabilities of the M networks; labels: (N,); thresholds: (K, 2) as
    (tau_n, tau_c) per class, or (M, K, 2) with each network's own thresholds (source "per-network").
    ensemble (default): s = mean over networks of p_label; clean if s >= tau_c, noisy if s < tau_n
    (per-network thresholds: their mean over networks).
    both-nets: clean if every network's p_label >= its tau_c, noisy if every one's < its tau_n.
    codivision (MAN's baseline; ignores thresholds): clean if every network predicts the label,
    noisy if none does.
    Everything else is ambiguous.
    """
    if net_probs.ndim != 3 or net_probs.shape[1] != labels.shape[0]:
        raise ValueError(f"net_probs must be (M, N, K) with N = {labels.shape[0]}, got {net_probs.shape}")
    conf = given_label_confidence(net_probs, labels)  # (M, N)
    per_net = np.broadcast_to(thresholds, (net_probs.shape[0], *thresholds.shape[-2:]))  # (M, K, 2)
    tau_n, tau_c = per_net[:, labels, 0], per_net[:, labels, 1]  # (M, N), (M, N)
    if rule == "ensemble":
        s = conf.mean(0)
        clean, noisy = s >= tau_c.mean(0), s < tau_n.mean(0)
    elif rule == "both-nets":
        clean, noisy = (conf >= tau_c).all(0), (conf < tau_n).all(0)
    elif rule == "codivision":
        agree = net_probs.argmax(2) == labels  # (M, N)
        clean, noisy = agree.all(0), ~agree.any(0)
    else:
        raise ValueError(f"unknown mining rule {rule!r}")
    return Subsets(clean=clean, ambiguous=~(clean | noisy), noisy=noisy)


def mining_quality(subsets: Subsets, truly_noisy: np.ndarray) -> dict[str, float]:
    """Precision / recall / F1 of the noisy subset against a ground-truth mask (N,), and the share of
    truly mislabelled samples that were kept as clean. Undefined ratios are reported as 0."""
    flagged = subsets.noisy
    tp = int((flagged & truly_noisy).sum())
    precision = tp / int(flagged.sum()) if flagged.any() else 0.0
    recall = tp / int(truly_noisy.sum()) if truly_noisy.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    kept = int((subsets.clean & truly_noisy).sum()) / int(truly_noisy.sum()) if truly_noisy.any() else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "noisy_kept_clean": kept}
