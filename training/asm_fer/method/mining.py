"""Sample Mining (asm-method.md): split the training set into clean / ambiguous / noisy on the
probability of the *observed* label, score a split against a known noise mask, and say when a split has
collapsed. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
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


# a subset holding this share of the samples leaves the other two Tri-Regularization terms next to empty: the
# epoch trains one term alone (all noisy: no label is learned from at all), which is no longer ASM
COLLAPSE_SHARE = 0.95
# class means that all lie less than this share of the way from chance (1/K) to certainty (1) say the networks
# hardly tell the classes apart yet (K = 8: below 0.26; the quick try of issue 34 had 0.14)
NEAR_CHANCE = 0.15
_REMEDIES = {
    "noisy": "a longer --warmup-epochs, --normalisation none (thresholds that follow each class mean), or more data",
    "ambiguous": "a longer --warmup-epochs, --normalisation none, or more data",
    "clean": "a longer --warmup-epochs, --threshold-mode fixed (τ_c = T_c for every class), or more data",
    "fitted": "a higher --t-clean or fewer --epochs, if the labels are noisy",
    "starved": "a longer --warmup-epochs, --normalisation none, or more data",
}


def _span(values: np.ndarray) -> str:
    lo, hi = float(values.min()), float(values.max())
    return f"{hi:.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:.2f} to {hi:.2f}"


def mining_warning(
    epoch: int,
    per_class: Mapping[str, Mapping[str, int]],
    means: np.ndarray,
    thresholds: np.ndarray,
    *,
    rule: Rule = "ensemble",
    previous: Mapping[str, Mapping[str, int]] | None = None,
) -> str | None:
    """One line naming what went wrong with a mining epoch, with the options that help, or None.

    per_class: subset sizes per class, {class: {"clean", "ambiguous", "noisy"}} (K classes in order);
    means: (K,) class means mu_k; thresholds: (K, 2) as (tau_n, tau_c); previous: the per-class sizes of the
    last mining epoch (None for the first). Warns when one subset holds COLLAPSE_SHARE of the samples, else when
    a class with samples has lost all its clean ones (it had some in the last mining epoch, or it is the first).
    """
    classes = list(per_class)
    if means.shape != (len(classes),) or thresholds.shape != (len(classes), 2):
        raise ValueError(
            f"means must be ({len(classes)},) and thresholds ({len(classes)}, 2); got {means.shape}, {thresholds.shape}"
        )
    counts = np.array([[per_class[c][s] for s in ("clean", "ambiguous", "noisy")] for c in classes])  # (K, 3)
    present = counts.sum(1) > 0  # (K,)
    chance = 1 / len(classes)
    total, near_chance = int(counts.sum()), float(means[present].max(initial=0)) < chance + NEAR_CHANCE * (1 - chance)
    mu = f"class means μ {_span(means[present])}, chance 1/{len(classes)} = {chance:.2f}"
    tau_n, tau_c = f"τ_n {_span(thresholds[present, 0])}", f"τ_c {_span(thresholds[present, 1])}"
    sizes = counts.sum(0)  # (3,)
    top = int(sizes.argmax())
    name = ("clean", "ambiguous", "noisy")[top]
    if total and sizes[top] >= COLLAPSE_SHARE * total:
        if rule == "codivision":  # its split ignores the thresholds
            what = {
                "clean": "both networks predict the given label of nearly every sample",
                "ambiguous": "the two networks disagree on the given label of nearly every sample",
                "noisy": "neither network predicts the given label of nearly any sample",
            }[name]
        else:
            what = (
                "nearly every given-label confidence "
                + {
                    "clean": f"reaches its class's clean threshold ({tau_c})",
                    "ambiguous": f"lies between its class's thresholds ({tau_n}; {tau_c})",
                    "noisy": f"is below its class's noisy threshold ({tau_n})",
                }[name]
            )
        remedy = name
        if near_chance:
            why = f"the networks are barely trained ({mu}), so {what}"
        elif name == "clean":
            why, remedy = f"the networks fit nearly every given label ({mu}): {what}, so mining separates nothing", "fitted"
        else:
            why = f"{what} ({mu})"
        return f"mining epoch {epoch} put {sizes[top]} of {total} samples in {name}: {why}. Options: {_REMEDIES[remedy]}"
    lost = [
        k
        for k, c in enumerate(classes)
        if present[k] and counts[k, 0] == 0 and (previous is None or previous.get(c, {}).get("clean", 1) > 0)
    ]
    if not lost:
        return None
    named = ", ".join(f"{classes[k]} (0 of {counts[k].sum()}, τ_c {thresholds[k, 1]:.2f}, μ {means[k]:.2f})" for k in lost)
    how = (
        "both networks predict none of their given labels"
        if rule == "codivision"
        else "no given-label confidence reaches their clean threshold"
    )
    return (
        f"mining epoch {epoch} left {len(lost)} of {int(present.sum())} classes without clean samples: {named}; {how}, so "
        f"their labels get no supervised term. Options: {_REMEDIES['starved']}"
    )
