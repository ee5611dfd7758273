"""Adaptive Threshold Learning (asm-method.md): per-class clean/noisy thresholds from mean class
probabilities. Pure functions over arrays.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Statistic = Literal["given-label", "mean-class-prob", "predicted-max"]
Normalisation = Literal["max", "none"]


def class_means(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    statistic: Statistic = "given-label",
    previous: np.ndarray | None = None,
) -> np.ndarray:
    """mu_k per class, shape (K,).

    probs: (N, K) probabilities; labels: (N,) observed labels in [0, K).
    given-label: mean of p_k over samples labelled k (the default);
    mean-class-prob: mean of p_k over all samples;
    predicted-max: mean max-probability over samples predicted k.
    A class with no samples keeps `previous[k]` (1.0 when there is no previous value).
    """
    n, k = probs.shape
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    means = np.ones(k) if previous is None else previous.astype(np.float64).copy()
    if statistic == "mean-class-prob":
        return probs.mean(0) if n else means
    if statistic == "given-label":
        groups, values = labels, probs[np.arange(n), labels]
    elif statistic == "predicted-max":
        groups, values = probs.argmax(1), probs.max(1)
    else:
        raise ValueError(f"unknown statistic {statistic!r}")
    counts = np.bincount(groups, minlength=k)
    sums = np.bincount(groups, weights=values, minlength=k)
    present = counts > 0
    means[present] = sums[present] / counts[present]
    return means


def adaptive_thresholds(
    means: np.ndarray,
    *,
    base: tuple[float, float] = (0.2, 0.8),
    mode: Literal["adaptive", "fixed"] = "adaptive",
    normalisation: Normalisation = "max",
) -> np.ndarray:
    """Per-class (tau_n, tau_c), shape (K, 2).

    adaptive + max: rho_k = mu_k / max_j mu_j, tau = base * rho_k, so equal class means give the base
    pair for every class and harder classes get proportionally lower thresholds.
    fixed: the base pair for every class.
    """
    t_noisy, t_clean = base
    if not 0 <= t_noisy < t_clean <= 1:
        raise ValueError(f"base thresholds must satisfy 0 <= T_n < T_c <= 1, got {base}")
    k = means.shape[0]
    if mode == "fixed":
        rho = np.ones(k)
    elif normalisation == "max":
        top = means.max()
        rho = means / top if top > 0 else np.ones(k)
    else:
        rho = means.astype(np.float64)
    return np.stack([t_noisy * rho, t_clean * rho], axis=1)
