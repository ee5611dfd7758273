"""Issue 17: the held-out calibration split, temperature scaling, the label-quality scores and the per-class
reliability the exporter measures on that split."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from asm_fer.checkpoints import load_trained
from asm_fer.config import RunError
from asm_fer.data import scan
from asm_fer.data.dataset import calibration_split, load_images
from asm_fer.data.preprocess import normalise
from asm_fer.evaluate import onnx_probs
from asm_fer.export.bundle import BundleError, input_spec_from, read_bundle
from asm_fer.export.calibrate import injected_noise, reliability
from asm_fer.export.export import export_bundle
from asm_fer.export.threshold_choice import BASE_GRID, FIT_DRAWS, FOLDS, SHRINKAGE, Draws, Rule, candidates, choose, fit_shared
from asm_fer.fixtures import tiny_config
from asm_fer.method.label_quality import (
    auroc,
    average_precision,
    ece,
    fit_temperature,
    mistakenness,
    normalized_margin,
    prf,
    self_confidence,
    softmax_t,
)
from asm_fer.method.thresholds import adaptive_thresholds, class_means
from asm_fer.run import CALIBRATION_IDS, load_data
from asm_fer.train import train


def test_calibration_split_is_stratified_reproducible_and_disjoint(ferplus_root: Path) -> None:
    _, samples = scan("ferplus", ferplus_root, "train")
    kept, held = calibration_split(samples, 0.2, seed=3)
    assert {s.path.name for s in kept}.isdisjoint(s.path.name for s in held)
    assert len(kept) + len(held) == len(samples)
    per_class, held_per_class = Counter(s.label for s in samples), Counter(s.label for s in held)
    assert all(held_per_class[k] == round(0.2 * n) for k, n in per_class.items())  # 2 of each class's 10
    again = calibration_split(samples, 0.2, seed=3)[1]
    assert [s.path.name for s in again] == [s.path.name for s in held]
    assert [s.path.name for s in calibration_split(samples, 0.2, seed=4)[1]] != [s.path.name for s in held]
    assert calibration_split(samples, 0.0, seed=3) == (list(samples), [])


def test_a_run_never_trains_on_its_calibration_split(ferplus_root: Path, tmp_path: Path) -> None:
    cfg = replace(tiny_config(ferplus_root, tmp_path / "run"), calibration=0.2)
    data = load_data(cfg)
    assert data.calibration is not None
    held = (tmp_path / "run" / CALIBRATION_IDS).read_text().split()
    assert held == data.calibration.names
    trained_on = [line.split(",")[0] for line in (tmp_path / "run" / "labels.csv").read_text().splitlines()[1:]]
    assert len(trained_on) == len(data.train) == 64 and set(trained_on).isdisjoint(held)


def test_fine_tune_refuses_a_parent_with_another_calibration_split(fixtures: Path, tmp_path: Path) -> None:
    cfg = replace(
        tiny_config(fixtures / "ferplus", tmp_path / "ft"),
        calibration=0.3,
        pretrained=str(fixtures / "run" / "final.pt"),
        epochs=1,
    )
    with pytest.raises(RunError, match=r"held out another calibration split .* calibration"):
        train(cfg)


def test_bundle_names_the_split_the_run_held_out(fixtures: Path) -> None:
    doc = read_bundle(fixtures / "bundle")
    split = doc["calibration"]["split"]
    assert split["ids"] == (fixtures / "run" / CALIBRATION_IDS).read_text().split()
    assert split["samples"] == len(split["ids"]) == 16 and split["share"] == 0.2


def test_temperature_recovers_planted_overconfidence() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20000, 8)) * 1.5
    labels = np.array([rng.choice(8, p=p) for p in softmax_t(logits, 1.0)])  # calibrated at T = 1
    for planted in (0.5, 3.0):  # under- and over-confident
        t = fit_temperature(logits * planted, labels)
        assert t == pytest.approx(planted, rel=0.05)
        assert ece(softmax_t(logits * planted, t), labels) < ece(softmax_t(logits * planted, 1.0), labels) / 3


def test_bundle_temperature_is_folded_into_its_graph(fixtures: Path) -> None:
    doc = read_bundle(fixtures / "bundle")
    spec = input_spec_from(doc["input"])
    _, samples = scan("ferplus", fixtures / "ferplus", "valid")
    x = normalise(load_images(samples, spec).pixels, spec)
    from asm_fer.checkpoints import load_trained

    _, nets, _ = load_trained(fixtures / "run" / "final.pt")
    with torch.no_grad():
        logits = nets[0](x)
    t = doc["calibration"]["temperature"]
    np.testing.assert_allclose(
        onnx_probs(fixtures / "bundle" / "model.onnx", x.numpy()), torch.softmax(logits / t, 1).numpy(), atol=1e-5
    )
    assert doc["calibration"]["ece"]["after"] <= doc["calibration"]["ece"]["before"]
    assert doc["calibration"]["nll"]["after"] <= doc["calibration"]["nll"]["before"]


def test_score_formulas_by_hand() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])
    labels = np.array([1, 0])
    np.testing.assert_allclose(self_confidence(p, labels), [0.2, 0.5])
    np.testing.assert_allclose(normalized_margin(p, labels), [(0.2 - 0.7 + 1) / 2, 0.5])
    h = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))
    # row 0: the prediction (0) disagrees with the label (1); row 1: argmax picks 0, the label
    np.testing.assert_allclose(mistakenness(p, labels), [(np.exp(-h) + 1) / 2, (1 - np.exp(-np.log(2))) / 2])


def test_average_precision_and_auroc_by_hand() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    positive = np.array([True, False, True, False])
    assert average_precision(scores, positive) == pytest.approx((1 + 2 / 3) / 2)
    assert auroc(scores, positive) == pytest.approx(3 / 4)  # pairs (pos, neg) ranked right: 3 of 4
    assert average_precision(positive.astype(float), positive) == 1.0 and auroc(positive.astype(float), positive) == 1.0
    assert auroc(np.zeros(4), positive) == 0.5


def test_reliability_counts_the_verdict_against_the_injected_truth(fixtures: Path) -> None:
    doc = read_bundle(fixtures / "bundle")
    spec = input_spec_from(doc["input"])
    ids = set(doc["calibration"]["split"]["ids"])
    _, samples = scan("ferplus", fixtures / "ferplus", "train")
    held = load_images([s for s in samples if s.path.name in ids], spec)
    probs = onnx_probs(fixtures / "bundle" / "model.onnx", normalise(held.pixels, spec).numpy())
    noise, noisy = injected_noise(held.labels.numpy(), held.votes, 8, doc["reliability"]["seed"])
    assert noise == doc["reliability"]["noise"] == "crowd-1"
    tau = np.array([[doc["thresholds"][c]["noisy"], doc["thresholds"][c]["clean"]] for c in doc["classes"]])
    assert reliability(probs, noisy, tau, doc["classes"]) == doc["reliability"]["perClass"]
    per_class = doc["reliability"]["perClass"].values()
    assert sum(r["submitted"] for r in per_class) == doc["reliability"]["samples"] == 16
    assert sum(r["mislabelled"] for r in per_class) == int(noisy.truly_noisy.sum())
    # planted: every noisy verdict right and every wrong label found gives 1.0 / 1.0
    perfect = np.full((4, 2), 0.1)
    perfect[[0, 1], [0, 1]] = 0.9
    from asm_fer.data.noise import NoisyLabels

    planted = NoisyLabels(np.array([0, 1, 1, 0]), np.array([False, False, True, True]))
    r = reliability(perfect, planted, np.array([[0.5, 0.8], [0.5, 0.8]]), ["a", "b"])
    assert r["a"] == {"submitted": 2, "mislabelled": 1, "flagged": 1, "precision": 1.0, "recall": 1.0}
    assert r["b"]["precision"] == 1.0 and r["b"]["recall"] == 1.0


def test_label_quality_choice_is_the_better_average_precision(fixtures: Path) -> None:
    lq = read_bundle(fixtures / "bundle")["labelQuality"]
    assert lq["score"] == max(lq["averagePrecision"], key=lq["averagePrecision"].get)
    assert set(lq["averagePrecision"]) == {"self-confidence", "normalized-margin"}


def test_fitted_thresholds_are_chosen_out_of_fold_and_every_candidate_is_recorded(fixtures: Path, tmp_path: Path) -> None:
    doc = export_bundle(fixtures / "run" / "final.pt", tmp_path / "b", name="x", noisy_base="fitted")
    learning = doc["thresholdLearning"]
    fitted = learning["fitted"]
    assert fitted["draws"] == FIT_DRAWS and fitted["folds"] == FOLDS == 2 and fitted["noise"] == "crowd-1"
    scores = fitted["candidates"]
    assert list(scores) == ["run", "fixed", "shared", *(f"per-class-{m}" for m in SHRINKAGE)]
    assert fitted["chosen"] == max(scores, key=scores.__getitem__)  # the first of the best: the simplest
    assert read_bundle(tmp_path / "b")["thresholdLearning"]["fitted"] == fitted  # schema-valid, written as returned
    # the same draws from the bundle's own graph on its calibration split
    spec = input_spec_from(doc["input"])
    _, samples = scan("ferplus", fixtures / "ferplus", "train")
    names = set(doc["calibration"]["split"]["ids"])
    cal = load_images([s for s in samples if s.path.name in names], spec)
    probs = onnx_probs(tmp_path / "b" / "model.onnx", normalise(cal.pixels, spec).numpy())
    labels = cal.labels.numpy()
    draws = [injected_noise(labels, cal.votes, 8, i)[1] for i in range(FIT_DRAWS)]
    given = np.concatenate([d.labels for d in draws])
    wrong = np.concatenate([d.truly_noisy for d in draws])
    p = np.concatenate([probs[np.arange(len(d.labels)), d.labels] for d in draws])
    got = np.array([[doc["thresholds"][c]["noisy"], doc["thresholds"][c]["clean"]] for c in doc["classes"]])
    # `f1` is the exported thresholds' on all draws; a candidate that fits nothing scores its plain F1 there
    assert fitted["f1"] == pytest.approx(prf(p < got[given, 0], wrong)["f1"])
    assert scores["fixed"] == pytest.approx(prf(p < 0.2, wrong)["f1"])
    cfg, _, final = load_trained(fixtures / "run" / "final.pt")
    assert (cfg.seed, cfg.t_noisy, cfg.t_clean) == (0, 0.2, 0.8)  # the draws' seeds above, the `fixed` pair
    run_tau = np.array(final["thresholds"])
    assert scores["run"] == pytest.approx(prf(p < run_tau[given, 0], wrong)["f1"])
    rule = final["threshold_learning"]
    opts = {"statistic": rule["statistic"], "normalisation": rule["normalisation"]}
    mu = class_means(probs, labels, statistic=rule["statistic"])
    run_base = adaptive_thresholds(mu, base=(cfg.t_noisy, cfg.t_clean), mode=rule["mode"], normalisation=rule["normalisation"])
    assert fitted["runBaseF1"] == pytest.approx(prf(p < run_base[given, 0], wrong)["f1"])
    # the shared candidate on all images is still the best of its grid (brute force, as before issue 29)
    stacked = Draws.stack(draws)
    shared = fit_shared(probs, labels, stacked, ratio=4, **opts)
    best = max(
        prf(p < adaptive_thresholds(mu, base=(t, 4 * t), mode=m, normalisation=rule["normalisation"])[given, 0], wrong)["f1"]
        for m in ("adaptive", "fixed")
        for t in BASE_GRID
        if 4 * t <= 1
    )
    assert prf(p < shared.thresholds[given, 0], wrong)["f1"] == pytest.approx(best)
    # the export's choice is the pure function's on these probabilities, refitted on all of them
    own = Rule(run_tau, rule["mode"], (cfg.t_noisy, cfg.t_clean), np.array(final["class_means"]))
    choice = choose(probs, labels, stacked, candidates(own, **opts), seed=cfg.seed)
    assert choice.name == fitted["chosen"] and choice.scores == pytest.approx(scores)
    np.testing.assert_allclose(got, choice.rule.thresholds)
    assert (learning["mode"], learning["base"]["noisy"]) == (choice.rule.mode, pytest.approx(choice.rule.base[0]))


def test_fitted_base_needs_a_held_out_split(fixtures: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="held-out split"):
        export_bundle(fixtures / "run" / "final.pt", tmp_path / "b", name="x", noisy_base="fitted", thresholds_from="train")
