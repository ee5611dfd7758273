"""Issue 17: k-fold cross-fitted calibration. K runs trained with --calibration-fold I/K hold out disjoint folds
that cover the training set; `export --crossfit` measures the bundle's calibration sections on all of them."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from asm_fer.checkpoints import load_trained
from asm_fer.config import ConfigError, TrainConfig
from asm_fer.data import scan
from asm_fer.data.dataset import calibration_split, load_images
from asm_fer.data.preprocess import normalise
from asm_fer.evaluate import torch_probs
from asm_fer.export.bundle import BundleError, read_bundle
from asm_fer.export.export import export_bundle
from asm_fer.fixtures import tiny_config
from asm_fer.method.label_quality import log_probs, softmax_t
from asm_fer.method.thresholds import adaptive_thresholds, class_means
from asm_fer.models.resnet import Ensemble
from asm_fer.run import CALIBRATION_IDS, input_spec
from asm_fer.train import train


def test_the_folds_of_one_seed_partition_each_class(ferplus_root: Path) -> None:
    _, samples = scan("ferplus", ferplus_root, "train")
    folds = [calibration_split(samples, 0.0, seed=3, fold=(i, 3))[1] for i in range(3)]
    names = [[s.path.name for s in f] for f in folds]
    assert sum(map(len, names)) == len(samples) == len({n for f in names for n in f})  # disjoint, all covered
    for c, n in Counter(s.label for s in samples).items():  # 10 per class: folds of 4, 3, 3
        assert sorted(sum(s.label == c for s in f) for f in folds) == sorted([n // 3 + (i < n % 3) for i in range(3)])
    for i in range(3):
        kept, held = calibration_split(samples, 0.0, seed=3, fold=(i, 3))
        assert [s.path.name for s in held] == names[i]  # reproducible
        assert {s.path.name for s in kept}.isdisjoint(names[i]) and len(kept) + len(held) == len(samples)
    assert [s.path.name for s in calibration_split(samples, 0.0, seed=4, fold=(0, 3))[1]] != names[0]


def test_a_fold_is_named_i_of_k_and_excludes_a_share() -> None:
    assert TrainConfig(calibration_fold="1/4").calibration_share == 0.25
    assert TrainConfig(calibration=0.1).calibration_share == 0.1 and TrainConfig().fold is None
    for bad in ("4/4", "1/1", "-1/3", "a/b", "2"):
        with pytest.raises(ConfigError, match="calibration_fold"):
            TrainConfig(calibration_fold=bad)
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig(calibration=0.1, calibration_fold="0/2")


@pytest.fixture(scope="module")
def fold_runs(ferplus_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("folds")
    finals = []
    for i in range(2):
        cfg = replace(tiny_config(ferplus_root, root / f"fold{i}"), epochs=2, calibration_fold=f"{i}/2")
        train(cfg)
        finals.append(root / f"fold{i}" / "final.pt")
    return finals


def test_crossfit_export_measures_on_every_out_of_fold_image(ferplus_root: Path, fold_runs: list[Path], tmp_path: Path) -> None:
    doc = export_bundle(fold_runs[0], tmp_path / "bundle", name="x", data_root=str(ferplus_root), crossfit=fold_runs)
    assert doc == read_bundle(tmp_path / "bundle")
    split = doc["calibration"]["split"]
    held = [(run.parent / CALIBRATION_IDS).read_text().split() for run in fold_runs]
    assert split["folds"] == 2 and split["ids"] == held[0] + held[1] and split["samples"] == 80 and split["share"] == 1.0
    assert doc["reliability"]["samples"] == 80
    # recomputed from the public pieces: each run's ensemble on the fold it held out, pooled, at the fitted T
    _, samples = scan("ferplus", ferplus_root, "train")
    probs, labels = [], []
    for i, final in enumerate(fold_runs):
        cfg, nets, _ = load_trained(final)
        images = load_images(calibration_split(samples, 0.0, cfg.seed, (i, 2))[1], input_spec(cfg))
        probs.append(torch_probs(Ensemble(nets).eval(), normalise(images.pixels, input_spec(cfg))))
        labels.append(images.labels.numpy())
    pooled = softmax_t(log_probs(np.concatenate(probs)), doc["calibration"]["temperature"])
    mu = class_means(pooled, np.concatenate(labels))
    np.testing.assert_allclose([doc["thresholdLearning"]["classMeans"][c] for c in doc["classes"]], mu, atol=1e-6)
    tau = adaptive_thresholds(mu)
    np.testing.assert_allclose([doc["thresholds"][c]["noisy"] for c in doc["classes"]], tau[:, 0], atol=1e-6)
    assert "2 cross-fitted runs" in doc["thresholdLearning"]["split"]


def test_crossfit_refuses_missing_folds_and_other_images(ferplus_root: Path, fold_runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="each once"):
        export_bundle(fold_runs[0], tmp_path / "a", name="x", crossfit=fold_runs[:1])
    with pytest.raises(BundleError, match="each once"):
        export_bundle(fold_runs[0], tmp_path / "b", name="x", crossfit=[fold_runs[0], fold_runs[0]])
    other = replace(tiny_config(ferplus_root, tmp_path / "seed1"), epochs=1, seed=1)
    train(other)
    with pytest.raises(BundleError, match="seed differ"):
        export_bundle(tmp_path / "seed1" / "final.pt", tmp_path / "c", name="x", crossfit=fold_runs)
    with pytest.raises(BundleError, match="in-sample"):
        export_bundle(fold_runs[0], tmp_path / "d", name="x", crossfit=fold_runs, thresholds_from="train")
