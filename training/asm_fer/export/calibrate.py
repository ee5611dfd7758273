"""What the exporter measures on a run's held-out calibration split (issue 17), none of it on images a
network was trained on: the temperature, the thresholds (Adaptive Threshold Learning out of sample, with the base
pair fitted if asked), the label-quality score to serve, and how far a `noisy` verdict can be trusted per
submitted class. The verdict is judged against injected noise whose truth is known: crowd-1
where the dataset has several votes per image (one annotator's vote, wrong when it is not a majority class,
as E4 does on Valid), sym-0.2 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.noise import NoisyLabels, apply_noise
from ..method.label_quality import (
    ECE_BINS,
    QUALITY_SCORES,
    average_precision,
    ece,
    fit_temperature,
    log_probs,
    nll,
    quality,
    softmax_t,
)
from ..method.thresholds import adaptive_thresholds, class_means
from .bundle import LearnedThresholds
from .threshold_choice import FIT_DRAWS, FOLDS, Choice, Draws, Rule, candidates, choose, f1_of

FALLBACK_NOISE = "sym-0.2"


@dataclass(frozen=True)
class HeldOut:
    """The images an export calibrates on (the run's calibration split, or cross-fitted folds) with the run's
    probabilities on them at T = 1."""

    labels: np.ndarray  # (N,) the dataset's own labels
    votes: np.ndarray  # (N, K) crowd votes (one-hot where the dataset has none)
    probs: np.ndarray  # (N, K) at T = 1
    split: dict[str, Any]  # model.json's calibration.split
    x: torch.Tensor | None  # (N, C, H, W) network input of the run's own split; None for cross-fitted folds


def temperature_section(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """The fitted temperature of the graph's probabilities (N, K) against `labels`, with ECE and NLL at
    T = 1 and at T."""
    logits = log_probs(probs)
    t = fit_temperature(logits, labels)
    scaled = softmax_t(logits, t)
    return {
        "temperature": t,
        "folded": True,
        "ece": {"before": ece(probs, labels), "after": ece(scaled, labels), "bins": ECE_BINS},
        "nll": {"before": nll(probs, labels), "after": nll(scaled, labels)},
    }


def injected_noise(labels: np.ndarray, votes: np.ndarray, num_classes: int, seed: int) -> tuple[str, NoisyLabels]:
    """crowd-1 when some image has more than one vote, else sym-0.2; (protocol, labels)."""
    spec = "crowd-1" if (votes.sum(1) > 1).any() else FALLBACK_NOISE
    return spec, apply_noise(spec, labels, votes, num_classes, seed)


def reliability(probs: np.ndarray, noisy: NoisyLabels, thresholds: np.ndarray, classes: list[str]) -> dict[str, dict[str, Any]]:
    """Per submitted class: items, wrong ones, noisy verdicts, and the verdict's precision and recall
    (null where undefined). `thresholds` is (K, 2) of (tau_n, tau_c)."""
    labels = noisy.labels
    flagged = probs[np.arange(len(labels)), labels] < thresholds[labels, 0]
    out: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(classes):
        mine = labels == k
        wrong, hit = noisy.truly_noisy[mine], flagged[mine]
        tp = int((wrong & hit).sum())
        out[name] = {
            "submitted": int(mine.sum()),
            "mislabelled": int(wrong.sum()),
            "flagged": int(hit.sum()),
            "precision": tp / int(hit.sum()) if hit.any() else None,
            "recall": tp / int(wrong.sum()) if wrong.any() else None,
        }
    return out


def label_quality_section(probs: np.ndarray, noisy: NoisyLabels, noise: str) -> dict[str, Any]:
    """The score with the best average precision at finding the wrong labels (lowest score first)."""
    ap = {s: average_precision(-quality(probs, noisy.labels, s), noisy.truly_noisy) for s in QUALITY_SCORES}
    best = max(QUALITY_SCORES, key=lambda s: ap[s])
    return {"score": best, "averagePrecision": ap, "noise": noise}


def calibration_section(held: HeldOut) -> dict[str, Any]:
    """model.json's `calibration`: the split and the temperature fitted on it (`temperature_section`)."""
    calibration = {"split": held.split, **temperature_section(held.probs, held.labels)}
    print(
        f"temperature {calibration['temperature']:.3f} on {len(held.labels)} calibration images: "
        f"ECE {calibration['ece']['before']:.4f} -> {calibration['ece']['after']:.4f}, "
        f"NLL {calibration['nll']['before']:.4f} -> {calibration['nll']['after']:.4f}"
    )
    return calibration


def choose_thresholds(probs: np.ndarray, held: HeldOut, run: LearnedThresholds, *, seed: int) -> tuple[Choice, dict[str, Any]]:
    """The verdict's thresholds chosen out of fold among `threshold_choice.candidates` on FIT_DRAWS injected
    draws of the held-out images (probabilities (N, K)), and model.json's `thresholdLearning.fitted` for them:
    the draws, the exported thresholds' F1 on all of them, the run's base pair and mode's F1 there (ATL on the
    held-out class means), and every candidate's out-of-fold F1."""
    learning = run.learning
    k = probs.shape[1]
    injected = [injected_noise(held.labels, held.votes, k, seed + i) for i in range(FIT_DRAWS)]
    draws = Draws.stack([d for _, d in injected])
    own = Rule(np.asarray(run.thresholds, dtype=np.float64), learning["mode"], run.base, np.asarray(run.means))
    fits = candidates(own, statistic=learning["statistic"], normalisation=learning["normalisation"])
    choice = choose(probs, held.labels, draws, fits, seed=seed)
    mu = class_means(probs, held.labels, statistic=learning["statistic"])
    run_base = adaptive_thresholds(mu, base=run.base, mode=learning["mode"], normalisation=learning["normalisation"])
    fitted = {
        "noise": injected[0][0],
        "draws": FIT_DRAWS,
        "f1": choice.f1,
        "runBaseF1": f1_of(run_base, probs, draws),
        "chosen": choice.name,
        "folds": FOLDS,
        "candidates": choice.scores,
    }
    print(f"noisy thresholds chosen out of fold ({FOLDS} folds) on {FIT_DRAWS} {fitted['noise']} draws:")
    for name, score in choice.scores.items():
        print(f"  {name:14s} out-of-fold F1 {score:.3f}" + ("  <- chosen" if name == choice.name else ""))
    rule = choice.rule
    print(
        f"  exported: {choice.name}, {rule.mode} base T_n {rule.base[0]:.2f} (F1 {choice.f1:.3f} on all draws; "
        f"the run's base {run.base[0]}: {fitted['runBaseF1']:.3f})"
    )
    return choice, fitted


def learn_thresholds(
    probs: np.ndarray, held: HeldOut, run: LearnedThresholds, *, fit: bool, seed: int, split: str
) -> LearnedThresholds:
    """Adaptive Threshold Learning, same formula and options as the `run`'s, on the held-out probabilities (N, K)
    of images no network was fitted on (Confident Learning's out-of-sample requirement); with `fit`, the
    thresholds `choose_thresholds` picks there instead (which may be the run's own)."""
    learning = run.learning
    if fit:
        choice, fitted = choose_thresholds(probs, held, run, seed=seed)
        rule = choice.rule
        if choice.name == "run":
            split = f"{learning.get('split', 'training set')} (the run's own; chosen out of fold on the {split})"
        learning = {**learning, "mode": rule.mode, "fitted": fitted, "split": split}
        return LearnedThresholds(rule.means.tolist(), rule.thresholds.tolist(), rule.base, learning)
    mu = class_means(probs, held.labels, statistic=learning["statistic"])
    tau = adaptive_thresholds(mu, base=run.base, mode=learning["mode"], normalisation=learning["normalisation"])
    return LearnedThresholds(mu.tolist(), tau.tolist(), run.base, {**learning, "split": split})


def measured_sections(
    probs: np.ndarray, held: HeldOut, calibration: dict[str, Any], thresholds: np.ndarray, classes: list[str], seed: int
) -> dict[str, Any]:
    """model.json's `calibration`, `labelQuality` and `reliability` sections from the graph's probabilities (N, K)
    on the held-out images, with labels corrupted by `injected_noise`; `thresholds` (K, 2) are the exported ones."""
    noise, noisy = injected_noise(held.labels, held.votes, len(classes), seed)
    measured = {
        "calibration": calibration,
        "labelQuality": label_quality_section(probs, noisy, noise),
        "reliability": {
            "noise": noise,
            "seed": seed,
            "samples": len(held.labels),
            "perClass": reliability(probs, noisy, thresholds, classes),
        },
    }
    print(
        f"label-quality score: {measured['labelQuality']['score']} "
        f"(average precision {measured['labelQuality']['averagePrecision']})"
    )
    for c, r in measured["reliability"]["perClass"].items():
        print(
            f"  {c:10s} {noise}: {r['submitted']:5d} submitted, {r['mislabelled']:4d} wrong, {r['flagged']:4d} noisy, "
            f"precision {r['precision']}, recall {r['recall']}"
        )
    return measured
