"""Which thresholds the exported `noisy` verdict uses (export --noisy-base fitted, issue 29 §3): chosen out of
sample on the calibration split among a few candidates, by the verdict's F1 at finding the wrong labels of
injected-noise draws.

Candidates, simplest first (a tie goes to the earlier one):
- `run`: the training run's own last-epoch thresholds, as they are;
- `fixed`: the paper's pair (the run's T_n, T_c) for every class;
- `shared`: one base pair and mode (adaptive: tau_k = base * rho_k from the class means; fixed) fitted over
  BASE_GRID, T_c keeping the pair's ratio;
- `per-class-<m>`: `shared`, then per class the T_n of BASE_GRID with the best pooled F1 (the others at their
  shared values), shrunk toward the shared value by m fitting items' worth; strongest shrinkage first.
Each candidate that fits is fitted on one of FOLDS class-stratified folds of the images and scored on the
other, both ways round; its score is the F1 of the TP / FP / FN pooled over both held-out halves (so a candidate
without fitting scores its plain F1 on all draws). The winner is refitted on all images.
Pure functions over arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..data.noise import NoisyLabels
from ..method.thresholds import Normalisation, Statistic, adaptive_thresholds, class_means

Mode = Literal["adaptive", "fixed"]
MODES: tuple[Mode, ...] = ("adaptive", "fixed")
# the T_n tried (T_c = T_n * the base pair's ratio, kept <= 1), and the injected draws each is scored on
BASE_GRID = np.round(np.arange(0.02, 0.61, 0.01), 2)
FIT_DRAWS = 5
# per-class-<m>: how many fitting items' worth of pull toward the shared thresholds; strongest (simplest) first
SHRINKAGE = (400, 100, 25)
FOLDS = 2


@dataclass(frozen=True)
class Draws:
    """Injected-noise draws of the held-out images' labels, stacked: item i is image `image[i]` given label
    `given[i]`, which is wrong when `wrong[i]`."""

    image: np.ndarray  # (M,) index into the held-out images
    given: np.ndarray  # (M,) the injected label
    wrong: np.ndarray  # (M,) bool: not the image's true label

    @classmethod
    def stack(cls, draws: Sequence[NoisyLabels]) -> Draws:
        """Each draw labels all N images: (D draws of N) -> M = D * N items."""
        n = len(draws[0].labels)
        return cls(
            np.tile(np.arange(n), len(draws)),
            np.concatenate([d.labels for d in draws]),
            np.concatenate([d.truly_noisy for d in draws]).astype(bool),
        )

    def of(self, images: np.ndarray) -> Draws:
        """The items of the images in the (N,) mask `images`, indexed into those images alone."""
        keep = images[self.image]
        rank = np.cumsum(images) - 1
        return Draws(rank[self.image[keep]], self.given[keep], self.wrong[keep])


@dataclass(frozen=True)
class Rule:
    """Thresholds a verdict could use, with what model.json records beside them."""

    thresholds: np.ndarray  # (K, 2) as (tau_n, tau_c)
    mode: Mode  # the rule online re-estimation re-derives thresholds with
    base: tuple[float, float]  # (T_n, T_c)
    means: np.ndarray  # (K,) the class means mu_k they came from


# a candidate: (probs (N, K), labels (N,) of the images to fit on, their draws) -> its rule
Fit = Callable[[np.ndarray, np.ndarray, Draws], Rule]


@dataclass(frozen=True)
class Choice:
    name: str
    rule: Rule  # the winner refitted on all images
    scores: dict[str, float]  # every candidate's out-of-fold F1, simplest first
    f1: float  # the rule's F1 on all draws (in sample where it was fitted)


def tally(flags: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """(TP, FP, FN) of `flags` at finding `wrong`, both (..., M) bool -> (..., 3)."""
    return np.stack([(flags & wrong).sum(-1), (flags & ~wrong).sum(-1), (~flags & wrong).sum(-1)], axis=-1)


def counts(thresholds: np.ndarray, probs: np.ndarray, draws: Draws) -> np.ndarray:
    """(TP, FP, FN), shape (3,), of `noisy` (p(given) < tau_n of the given class; `thresholds` (K, 2)) at finding
    the wrong labels of `draws` over the images whose probabilities are `probs` (N, K)."""
    flags = probs[draws.image, draws.given] < thresholds[draws.given, 0]  # (M,)
    return tally(flags, draws.wrong)


def f1_score(tp_fp_fn: np.ndarray) -> np.ndarray:
    """F1 = 2 TP / (2 TP + FP + FN) of counts (..., 3); 0 where nothing was flagged or wrong."""
    tp, fp, fn = tp_fp_fn[..., 0], tp_fp_fn[..., 1], tp_fp_fn[..., 2]
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def f1_of(thresholds: np.ndarray, probs: np.ndarray, draws: Draws) -> float:
    """The verdict's F1 with `thresholds` (K, 2) on `draws` of the images whose probabilities are `probs` (N, K)."""
    return float(f1_score(counts(thresholds, probs, draws)))


def fit_shared(
    probs: np.ndarray,
    labels: np.ndarray,
    draws: Draws,
    *,
    ratio: float,
    statistic: Statistic,
    normalisation: Normalisation,
) -> Rule:
    """The `shared` candidate: the mode and T_n of BASE_GRID (T_c = ratio * T_n <= 1) whose thresholds (class means
    from `probs` (N, K) and `labels` (N,)) give the best F1 on `draws`; the first in grid order on a tie, adaptive
    first."""
    means = class_means(probs, labels, statistic=statistic)
    grid = [(mode, float(t)) for mode in MODES for t in BASE_GRID if t * ratio <= 1]
    rules = [adaptive_thresholds(means, base=(t, t * ratio), mode=mode, normalisation=normalisation) for mode, t in grid]
    scores = [f1_of(tau, probs, draws) for tau in rules]
    best = int(np.argmax(scores))
    mode, t = grid[best]
    return Rule(rules[best], mode, (t, t * ratio), means)


def best_per_class(p: np.ndarray, draws: Draws, start: np.ndarray, *, grid: np.ndarray) -> np.ndarray:
    """Per class k, the T_n of `grid` (G,) whose verdict has the best F1 pooled over all items, every other class
    at its `start` (K,) T_n; of tied values the one nearest start[k]. `p` (M,) is each item's p(given). -> (K,)"""
    flags = p < start[draws.given]  # (M,)
    picked = start.astype(np.float64).copy()
    for k in range(len(start)):
        mine = draws.given == k
        rest = tally(flags[~mine], draws.wrong[~mine])  # (3,)
        own = tally(p[mine][None, :] < grid[:, None], draws.wrong[mine][None, :])  # (G, 3)
        score = f1_score(rest + own)  # (G,)
        tied = grid[score == score.max()]
        picked[k] = tied[np.argmin(np.abs(tied - start[k]))]
    return picked


def shrink(fitted: np.ndarray, shared: np.ndarray, items: np.ndarray, strength: float) -> np.ndarray:
    """(n_k * t_k + m * shared_k) / (n_k + m) per class: `fitted` t_k, `shared`, `items` n_k all (K,); m =
    `strength` > 0, so a class with no items keeps its shared value."""
    return np.asarray((items * fitted + strength * shared) / (items + strength), dtype=np.float64)


def fit_per_class(probs: np.ndarray, labels: np.ndarray, draws: Draws, shared: Rule, *, strength: float) -> Rule:
    """The `per-class-<m>` candidate: `shared` (fitted on the same images), then per class the T_n of
    `best_per_class` shrunk toward the shared one (`shrink`, n_k = items given label k over the draws);
    T_c = the base pair's ratio * T_n, at most 1. Mode and base stay the shared ones. probs (N, K), labels (N,)."""
    ratio = shared.base[1] / shared.base[0]
    start = shared.thresholds[:, 0]
    grid = BASE_GRID[BASE_GRID * ratio <= 1]
    picked = best_per_class(probs[draws.image, draws.given], draws, start, grid=grid)
    items = np.bincount(draws.given, minlength=len(start))
    noisy = shrink(picked, start, items, strength)
    return Rule(np.stack([noisy, np.minimum(noisy * ratio, 1.0)], axis=1), shared.mode, shared.base, shared.means)


def candidates(run: Rule, *, statistic: Statistic, normalisation: Normalisation) -> dict[str, Fit]:
    """The candidates, simplest first. `run` holds the run's own thresholds, mode, base (the paper's pair, which
    `fixed` uses) and class means."""
    ratio = run.base[1] / run.base[0]

    def fixed(probs: np.ndarray, labels: np.ndarray, draws: Draws) -> Rule:
        means = class_means(probs, labels, statistic=statistic)
        return Rule(np.tile(np.asarray(run.base, dtype=np.float64), (len(means), 1)), "fixed", run.base, means)

    def shared(probs: np.ndarray, labels: np.ndarray, draws: Draws) -> Rule:
        return fit_shared(probs, labels, draws, ratio=ratio, statistic=statistic, normalisation=normalisation)

    def per_class(strength: float) -> Fit:
        return lambda probs, labels, draws: fit_per_class(probs, labels, draws, shared(probs, labels, draws), strength=strength)

    fits: dict[str, Fit] = {"run": lambda probs, labels, draws: run, "fixed": fixed, "shared": shared}
    return fits | {f"per-class-{m}": per_class(m) for m in SHRINKAGE}


def stratified_folds(labels: np.ndarray, *, seed: int, folds: int = FOLDS) -> np.ndarray:
    """Each image's fold in [0, folds), shape (N,): every class dealt out in turn over a seeded shuffle, so the
    folds differ in size by at most one image overall and per class."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        fold[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return fold


def out_of_fold_f1(fit: Fit, probs: np.ndarray, labels: np.ndarray, draws: Draws, fold: np.ndarray) -> float:
    """F1 of the TP / FP / FN pooled over every fold, each scored with `fit` fitted on the other folds.
    probs (N, K), labels (N,), fold (N,)."""
    total = np.zeros(3, dtype=np.int64)
    for f in np.unique(fold):
        test = fold == f
        rule = fit(probs[~test], labels[~test], draws.of(~test))
        total += counts(rule.thresholds, probs[test], draws.of(test))
    return float(f1_score(total))


def choose(probs: np.ndarray, labels: np.ndarray, draws: Draws, fits: dict[str, Fit], *, seed: int) -> Choice:
    """The candidate of `fits` (simplest first) with the best `out_of_fold_f1` over FOLDS class-stratified folds
    of the images (probs (N, K), labels (N,)), the first on a tie, refitted on all of them."""
    fold = stratified_folds(labels, seed=seed)
    scores = {name: out_of_fold_f1(fit, probs, labels, draws, fold) for name, fit in fits.items()}
    name = max(scores, key=lambda candidate: scores[candidate])
    rule = fits[name](probs, labels, draws)
    return Choice(name, rule, scores, f1_of(rule.thresholds, probs, draws))
