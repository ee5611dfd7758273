"""Issue 29 §3: the export's verdict thresholds chosen out of fold among candidates, on planted data (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from asm_fer.data.noise import NoisyLabels
from asm_fer.export.threshold_choice import (
    BASE_GRID,
    SHRINKAGE,
    Draws,
    Rule,
    best_per_class,
    candidates,
    choose,
    f1_of,
    fit_per_class,
    fit_shared,
    shrink,
    stratified_folds,
)
from asm_fer.method.label_quality import prf

NAMES = ["run", "fixed", "shared", *(f"per-class-{m}" for m in SHRINKAGE)]
# the run's own thresholds in these tests: far too strict, so `run` never wins by accident
STRICT_RUN = Rule(np.tile([0.5, 0.9], (3, 1)), "adaptive", (0.2, 0.8), np.ones(3))


def planted(n_rare: int, *, seed: int = 0, n_common: int = 300) -> tuple[np.ndarray, np.ndarray, Draws]:
    """Three classes, a quarter of each given label wrong. Classes 0 and 1: wrong labels at p(given) in
    [0.02, 0.18], right ones in [0.3, 1] (best T_n about 0.18-0.3). Class 2, with `n_rare` items: wrong labels at
    p < 0.04, and half of the right ones at p in [0.06, 0.18], the other half near 1 (so its class mean, and with
    it the adaptive scaling, stays close to the others'): only a T_n near 0.05 spares them.
    -> probs (N, 3), true labels (N,), one draw of given labels."""
    rng = np.random.default_rng(seed)
    given = np.repeat([0, 1, 2], [n_common, n_common, n_rare])
    n = len(given)
    wrong = rng.random(n) < 0.25
    low = rng.random(n) < 0.5
    common = np.where(wrong, rng.uniform(0.02, 0.18, n), rng.uniform(0.3, 1.0, n))
    rare = np.where(wrong, rng.uniform(0.0, 0.04, n), np.where(low, rng.uniform(0.06, 0.18, n), rng.uniform(0.8, 1.0, n)))
    v = np.where(given < 2, common, rare)
    true = np.where(wrong, (given + 1) % 3, given)
    probs = np.repeat(((1 - v) / 2)[:, None], 3, axis=1)  # (N, 3)
    probs[np.arange(n), given] = v
    probs[wrong, true[wrong]] = 1 - v[wrong]
    probs[wrong, 3 - given[wrong] - true[wrong]] = 0.0
    return probs, true, Draws.stack([NoisyLabels(given, wrong)])


def test_shrink_formula_by_hand() -> None:
    got = shrink(np.array([0.1, 0.3, 0.05]), np.array([0.2, 0.2, 0.2]), np.array([0, 100, 300]), 100)
    np.testing.assert_allclose(got, [0.2, (100 * 0.3 + 100 * 0.2) / 200, (300 * 0.05 + 100 * 0.2) / 400])


def test_a_rare_class_with_many_items_and_its_own_best_threshold_makes_a_per_class_candidate_win() -> None:
    probs, labels, draws = planted(300)
    choice = choose(probs, labels, draws, candidates(STRICT_RUN, statistic="given-label", normalisation="max"), seed=0)
    assert list(choice.scores) == NAMES
    assert choice.name.startswith("per-class-")
    assert choice.scores[choice.name] > choice.scores["shared"] + 0.05
    # the shared fit leaves class 2 near the others; the winner gives it its own, much lower T_n
    shared = fit_shared(probs, labels, draws, ratio=4, statistic="given-label", normalisation="max")
    assert shared.thresholds[2, 0] > 0.12 and choice.rule.thresholds[2, 0] < 0.09
    np.testing.assert_allclose(choice.rule.thresholds[:, 1], 4 * choice.rule.thresholds[:, 0])
    assert (choice.rule.mode, choice.rule.base) == (shared.mode, shared.base)
    assert choice.f1 == f1_of(choice.rule.thresholds, probs, draws) > f1_of(shared.thresholds, probs, draws)


def test_shrinkage_keeps_a_rare_class_with_few_items_near_the_shared_threshold() -> None:
    probs, labels, draws = planted(4)
    shared = fit_shared(probs, labels, draws, ratio=4, statistic="given-label", normalisation="max")
    start = shared.thresholds[:, 0]
    raw = best_per_class(probs[draws.image, draws.given], draws, start, grid=BASE_GRID[BASE_GRID <= 0.25])
    assert abs(raw[2] - start[2]) > 0.1  # unshrunk, its 4 items would pull it far
    n_2 = int((draws.given == 2).sum())
    for m in SHRINKAGE:
        got = fit_per_class(probs, labels, draws, shared, strength=m).thresholds[2, 0]
        assert got == pytest.approx((n_2 * raw[2] + m * start[2]) / (n_2 + m))
        assert abs(got - start[2]) < 0.02


def test_the_choice_is_the_first_best_out_of_fold_score_and_candidates_without_fitting_score_their_plain_f1() -> None:
    probs, labels, draws = planted(40, seed=3)
    fits = candidates(STRICT_RUN, statistic="given-label", normalisation="max")
    choice = choose(probs, labels, draws, fits, seed=7)
    best = max(choice.scores.values())
    assert choice.name == next(name for name in NAMES if choice.scores[name] == best)
    p = probs[draws.image, draws.given]
    assert choice.scores["fixed"] == pytest.approx(prf(p < 0.2, draws.wrong)["f1"])
    assert choice.scores["run"] == pytest.approx(prf(p < 0.5, draws.wrong)["f1"])
    # identical candidates tie: the simpler (earlier) one is chosen
    same = {"run": fits["fixed"], "fixed": fits["fixed"]}
    assert choose(probs, labels, draws, same, seed=7).name == "run"


def test_stratified_folds_split_every_class_in_halves_reproducibly() -> None:
    labels = np.repeat([0, 1, 2], [7, 4, 1])
    fold = stratified_folds(labels, seed=5)
    assert set(fold) == {0, 1} and abs(int((fold == 0).sum()) - int((fold == 1).sum())) <= 1
    for k in (0, 1):
        assert abs(int((fold[labels == k] == 0).sum()) - int((fold[labels == k] == 1).sum())) <= 1
    np.testing.assert_array_equal(fold, stratified_folds(labels, seed=5))
    assert any((stratified_folds(labels, seed=s) != fold).any() for s in range(6, 12))


def test_draws_of_a_subset_index_into_that_subset() -> None:
    draws = Draws.stack([NoisyLabels(np.array([0, 1, 2]), np.array([False, True, False]))] * 2)
    part = draws.of(np.array([False, True, True]))
    np.testing.assert_array_equal(part.image, [0, 1, 0, 1])
    np.testing.assert_array_equal(part.given, [1, 2, 1, 2])
    np.testing.assert_array_equal(part.wrong, [True, False, True, False])
