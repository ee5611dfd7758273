from __future__ import annotations

import numpy as np
import pytest

from asm_fer.method.thresholds import adaptive_thresholds, class_means


def test_given_label_means_are_per_class_averages() -> None:
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6]])
    labels = np.array([0, 0, 1])
    np.testing.assert_allclose(class_means(probs, labels), [0.8, 0.6])


def test_other_statistics() -> None:
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6]])
    labels = np.array([0, 0, 1])
    np.testing.assert_allclose(class_means(probs, labels, statistic="mean-class-prob"), [2.0 / 3, 1.0 / 3])
    np.testing.assert_allclose(class_means(probs, labels, statistic="predicted-max"), [0.8, 0.6])


def test_class_without_samples_keeps_previous_mean() -> None:
    probs = np.array([[0.9, 0.1, 0.0]])
    labels = np.array([0])
    np.testing.assert_allclose(class_means(probs, labels), [0.9, 1.0, 1.0])
    np.testing.assert_allclose(class_means(probs, labels, previous=np.array([0.5, 0.4, 0.3])), [0.9, 0.4, 0.3])


def test_equal_class_means_give_the_base_pair() -> None:
    t = adaptive_thresholds(np.full(8, 0.63), base=(0.2, 0.8))
    np.testing.assert_allclose(t, np.tile([0.2, 0.8], (8, 1)))


def test_harder_classes_get_proportionally_lower_thresholds() -> None:
    t = adaptive_thresholds(np.array([0.8, 0.4]), base=(0.2, 0.8))
    np.testing.assert_allclose(t, [[0.2, 0.8], [0.1, 0.4]])
    assert (t[:, 0] < t[:, 1]).all()


def test_fixed_mode_ignores_means() -> None:
    t = adaptive_thresholds(np.array([0.8, 0.1]), base=(0.3, 0.7), mode="fixed")
    np.testing.assert_allclose(t, [[0.3, 0.7], [0.3, 0.7]])


def test_bad_base_pair_is_rejected() -> None:
    with pytest.raises(ValueError, match="T_n < T_c"):
        adaptive_thresholds(np.ones(2), base=(0.8, 0.2))
