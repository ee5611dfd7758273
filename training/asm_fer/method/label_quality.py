"""Scores that rank submitted labels, and the calibration of the probabilities they come from (issue 17).
Pure functions over arrays; the service computes the same scores (src/audit/label-quality.ts).

- self-confidence: p(label), cleanlab's default label-quality score;
- normalized-margin: (p(label) - max_{j != label} p_j + 1) / 2, in [0, 1];
- mistakenness (FiftyOne, classifications): (s * exp(-H(p)) + 1) / 2, s = +1 when the prediction differs
  from the label and -1 when it agrees, H the natural-log entropy: near 1 a confident disagreement, near 0 a
  confident agreement, 0.5 when the model knows nothing.
Temperature scaling: one scalar T, softmax(logits / T), fitted by minimising the negative log-likelihood.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

QualityScore = Literal["self-confidence", "normalized-margin"]
QUALITY_SCORES: tuple[QualityScore, ...] = ("self-confidence", "normalized-margin")
ECE_BINS = 15


def self_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.asarray(probs[np.arange(len(labels)), labels])


def normalized_margin(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return np.asarray((self_confidence(probs, labels) - others.max(1) + 1) / 2)


def quality(probs: np.ndarray, labels: np.ndarray, score: QualityScore) -> np.ndarray:
    """The label-quality score named `score`: higher means the label is more likely right."""
    if score == "self-confidence":
        return self_confidence(probs, labels)
    if score == "normalized-margin":
        return normalized_margin(probs, labels)
    raise ValueError(f"unknown label-quality score {score!r}; expected one of {QUALITY_SCORES}")


def mistakenness(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 0, 1)
    entropy = -(p * np.log(np.where(p > 0, p, 1))).sum(1)  # 0 log 0 = 0
    sign = np.where(probs.argmax(1) != labels, 1.0, -1.0)
    return np.asarray((sign * np.exp(-entropy) + 1) / 2)


def prf(flags: np.ndarray, wrong: np.ndarray) -> dict[str, float | int]:
    """How flags fare at finding the wrong labels: flagged count, precision, recall and F1 (0 where undefined)."""
    tp = int((flags & wrong).sum())
    precision = tp / int(flags.sum()) if flags.any() else 0.0
    recall = tp / int(wrong.sum()) if wrong.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"flagged": int(flags.sum()), "precision": precision, "recall": recall, "f1": f1}


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision of ranking by `scores`, highest first, at finding `positive` (no interpolation,
    ties broken by order: as scikit-learn's average_precision_score up to tie handling)."""
    if not positive.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = positive[order].astype(np.float64)
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at * hits).sum() / hits.sum())


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive ranks above a negative (ties count half): the Mann-Whitney statistic."""
    pos, neg = int(positive.sum()), int((~positive).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


def log_probs(probs: np.ndarray) -> np.ndarray:
    """Logits up to a per-row constant, which softmax ignores: what temperature scaling divides."""
    return np.asarray(np.log(np.clip(probs, 1e-12, 1)))


def softmax_t(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(1, keepdims=True))


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(self_confidence(probs, labels), 1e-12, 1)).mean())


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top class: sum over equal-width confidence bins of
    |accuracy - mean confidence| weighted by the bin's share of samples."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, low: float = 0.05, high: float = 20.0) -> float:
    """The T in [low, high] minimising the NLL of softmax(logits / T): golden-section search on log T
    (the NLL is unimodal in T for a fixed set of logits)."""
    lo, hi = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return nll(softmax_t(logits, float(np.exp(log_t))), labels)

    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(80):  # the bracket shrinks by 0.618 per step: 80 steps are far below float precision
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return float(np.exp((lo + hi) / 2))
