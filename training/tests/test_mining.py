from __future__ import annotations

import numpy as np
import pytest

from asm_fer.method.mining import COLLAPSE_SHARE, Subsets, mine, mining_quality, mining_warning
from asm_fer.method.thresholds import adaptive_thresholds

THRESHOLDS = np.array([[0.2, 0.8], [0.1, 0.4]])  # (K, 2) as (tau_n, tau_c)


def _two_nets(p_label_1: list[float], p_label_2: list[float], labels: list[int]) -> np.ndarray:
    """(2, N, 2) probabilities whose label-column equals the given values."""
    out = np.zeros((2, len(labels), 2))
    for m, values in enumerate((p_label_1, p_label_2)):
        for i, (p, y) in enumerate(zip(values, labels, strict=True)):
            out[m, i, y], out[m, i, 1 - y] = p, 1 - p
    return out


def test_ensemble_rule_uses_the_observed_labels_class_thresholds() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = _two_nets([0.9, 0.5, 0.1, 0.5, 0.3, 0.0], [0.7, 0.5, 0.2, 0.3, 0.3, 0.1], labels.tolist())
    s = mine(probs, labels, THRESHOLDS)
    # means: 0.8 0.5 0.15 | 0.4 0.3 0.05
    assert s.clean.tolist() == [True, False, False, True, False, False]
    assert s.noisy.tolist() == [False, False, True, False, False, True]
    assert s.ambiguous.tolist() == [False, True, False, False, True, False]


def test_both_nets_rule_needs_agreement() -> None:
    labels = np.array([0, 0])
    probs = _two_nets([0.9, 0.1], [0.7, 0.3], labels.tolist())  # mean 0.8 and 0.2
    s = mine(probs, labels, THRESHOLDS, rule="both-nets")
    assert s.sizes() == {"clean": 0, "ambiguous": 2, "noisy": 0}


def test_codivision_rule_uses_argmax_agreement() -> None:
    labels = np.array([0, 0, 0])
    probs = _two_nets([0.9, 0.9, 0.1], [0.6, 0.4, 0.3], labels.tolist())
    s = mine(probs, labels, THRESHOLDS, rule="codivision")
    assert (s.clean.tolist(), s.ambiguous.tolist(), s.noisy.tolist()) == (
        [True, False, False],
        [False, True, False],
        [False, False, True],
    )


@pytest.mark.parametrize("rule", ["ensemble", "both-nets", "codivision"])
def test_partition_is_disjoint_and_covering(rule: str) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=(2, 500))
    labels = rng.integers(0, 4, 500)
    s = mine(probs, labels, adaptive_thresholds(rng.uniform(0.3, 0.9, 4)), rule=rule)  # type: ignore[arg-type]
    total = s.clean.astype(int) + s.ambiguous.astype(int) + s.noisy.astype(int)
    assert (total == 1).all()


def test_partition_is_monotone_in_the_base_pair() -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=(2, 500))
    labels = rng.integers(0, 4, 500)
    means = rng.uniform(0.3, 0.9, 4)
    narrow = mine(probs, labels, adaptive_thresholds(means, base=(0.3, 0.7)))
    wide = mine(probs, labels, adaptive_thresholds(means, base=(0.1, 0.9)))
    assert (wide.clean <= narrow.clean).all() and (wide.noisy <= narrow.noisy).all()
    assert wide.ambiguous.sum() > narrow.ambiguous.sum()


def test_mining_quality_against_a_planted_mask() -> None:
    s = Subsets(
        clean=np.array([1, 0, 0, 0, 1], bool), ambiguous=np.array([0, 1, 0, 0, 0], bool), noisy=np.array([0, 0, 1, 1, 0], bool)
    )
    truth = np.array([0, 0, 1, 0, 1], bool)
    q = mining_quality(s, truth)
    assert q == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "noisy_kept_clean": 0.5})
    empty = Subsets(clean=np.ones(3, bool), ambiguous=np.zeros(3, bool), noisy=np.zeros(3, bool))
    assert mining_quality(empty, np.zeros(3, bool)) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "noisy_kept_clean": 0.0}


def test_per_network_thresholds() -> None:
    labels = np.array([0, 0])
    probs = _two_nets([0.5, 0.5], [0.5, 0.15], labels.tolist())
    per_net = np.array([[[0.2, 0.8], [0.1, 0.4]], [[0.1, 0.4], [0.1, 0.4]]])  # (M, K, 2)
    both = mine(probs, labels, per_net, rule="both-nets")
    assert both.clean.tolist() == [False, False]  # net 1 needs 0.8 for class 0
    assert both.noisy.tolist() == [False, False]
    lenient = mine(probs, labels, per_net[[1, 1]], rule="both-nets")  # both nets with tau = (0.1, 0.4)
    assert lenient.clean.tolist() == [True, False]
    ens = mine(probs, labels, per_net)  # mean thresholds for class 0: (0.15, 0.6); s = 0.5 and 0.325
    assert ens.ambiguous.tolist() == [True, True]


def _per_class(rows: list[tuple[int, int, int]]) -> dict[str, dict[str, int]]:
    return {f"c{k}": {"clean": c, "ambiguous": a, "noisy": n} for k, (c, a, n) in enumerate(rows)}


def test_a_mining_epoch_with_every_sample_noisy_is_named_with_its_cause_and_options() -> None:
    # the quick try of issue 34: two epochs on 500 images, the networks near chance after one epoch of warm-up
    means = np.array([0.14, 0.12, 0.11, 0.13])
    line = mining_warning(2, _per_class([(0, 0, 200), (0, 0, 150), (0, 0, 100), (0, 0, 50)]), means, adaptive_thresholds(means))
    assert line is not None and "\n" not in line
    assert line.startswith("mining epoch 2 put 500 of 500 samples in noisy: ")
    assert "τ_n 0.16 to 0.20" in line and "μ 0.11 to 0.14, chance 1/4 = 0.25" in line and "barely trained" in line
    assert "--warmup-epochs" in line and "--normalisation none" in line


def test_the_other_way_round_every_sample_clean_under_normalisation_none() -> None:
    means = np.array([0.14, 0.12, 0.11, 0.13])
    thresholds = adaptive_thresholds(means, normalisation="none")
    line = mining_warning(2, _per_class([(199, 1, 0), (150, 0, 0), (100, 0, 0), (50, 0, 0)]), means, thresholds)
    assert line is not None and line.startswith("mining epoch 2 put 499 of 500 samples in clean: ")
    assert "τ_c 0.09 to 0.11" in line and "--threshold-mode fixed" in line


def test_a_split_just_below_the_collapse_share_is_not_a_collapse() -> None:
    means = np.array([0.6, 0.5])
    assert COLLAPSE_SHARE == 0.95
    assert mining_warning(5, _per_class([(3, 0, 57), (3, 0, 37)]), means, adaptive_thresholds(means)) is None  # 94 %
    line = mining_warning(5, _per_class([(3, 0, 57), (2, 0, 38)]), means, adaptive_thresholds(means))  # 95 %
    assert line is not None and line.startswith("mining epoch 5 put 95 of 100 samples in noisy: ")
    assert "barely trained" not in line  # 0.6 is past chance (1/2) by more than NEAR_CHANCE of the way to 1


def test_a_class_that_loses_its_clean_samples_is_named_once() -> None:
    means = np.array([0.6, 0.3, 0.5])
    thresholds = adaptive_thresholds(means)
    now = _per_class([(30, 10, 5), (0, 8, 2), (20, 10, 15)])
    line = mining_warning(7, now, means, thresholds, previous=_per_class([(30, 10, 5), (3, 5, 2), (20, 10, 15)]))
    assert line is not None and line.startswith("mining epoch 7 left 1 of 3 classes without clean samples: c1 (0 of 10")
    assert "τ_c 0.40" in line and "μ 0.30" in line
    assert mining_warning(8, now, means, thresholds, previous=now) is None  # still none: said already
    assert mining_warning(4, now, means, thresholds) is not None  # the first mining epoch: it had them all in warm-up
    empty = _per_class([(30, 10, 5), (0, 0, 0), (20, 10, 15)])  # a class without samples has nothing to lose
    assert mining_warning(4, empty, means, thresholds) is None


def test_codivision_is_explained_by_the_networks_predictions_not_thresholds() -> None:
    means = np.array([0.3, 0.3])
    line = mining_warning(3, _per_class([(0, 2, 60), (0, 1, 40)]), means, adaptive_thresholds(means), rule="codivision")
    assert line is not None and "neither network predicts the given label" in line and "τ_n" not in line
