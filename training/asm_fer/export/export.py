"""Exports a trained run (`final.pt`) as a model bundle: the ensemble as one ONNX graph (`graph.py`), the
temperature, thresholds and reliability measured on held-out images (`calibrate.py`, `crossfit.py`), accuracy of
the ONNX graph on the evaluation split through the service's preprocessing, and a schema-valid `model.json`
(`bundle.py`) naming the graph's sha256.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..checkpoints import final_model_thresholds, load_trained
from ..config import TrainConfig
from ..data import scan
from ..data.dataset import load_images
from ..data.preprocess import normalise
from ..evaluate import accuracy, onnx_probs, per_class_recall, torch_probs
from ..method.label_quality import log_probs, softmax_t
from ..models.resnet import Ensemble, count_parameters
from ..run import Data, input_spec, load_data
from .bundle import (
    NOISY_BASES,
    ONNX_FILE,
    THRESHOLD_SPLITS,
    TTA_MODES,
    WEIGHT_DTYPES,
    BundleError,
    LearnedThresholds,
    code_revision,
    document,
    model_section,
    sha256_file,
    split_name,
    write_bundle,
)
from .calibrate import HeldOut, calibration_section, learn_thresholds, measured_sections
from .crossfit import OutOfFold, out_of_fold
from .graph import check_parity, export_onnx, round_weights_to_float16


def check_choices(*, noisy_base: str, weights: str, tta: str, thresholds_from: str) -> None:
    for option, value, allowed in (
        ("noisy_base", noisy_base, NOISY_BASES),
        ("weights", weights, WEIGHT_DTYPES),
        ("tta", tta, TTA_MODES),
        ("thresholds_from", thresholds_from, THRESHOLD_SPLITS),
    ):
        if value not in allowed:
            raise ValueError(f"{option} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class Plan:
    """Where an export takes its numbers from, decided before anything is computed."""

    held_out: bool  # a calibration split (the run's own, or cross-fitted folds) to fit the temperature and measure on
    out_of_sample: bool  # the thresholds are learned on that split
    recompute: bool  # in-sample thresholds recomputed through the graph, which computes other probabilities than final.pt's
    crossfit: bool

    @property
    def needs_run_data(self) -> bool:
        """The run's own split when it is the calibration split, its training images when the thresholds are
        recomputed in sample; a cross-fitted export needs neither."""
        return (self.held_out and not self.crossfit) or self.recompute


def plan(cfg: TrainConfig, *, tta: str, thresholds_from: str, noisy_base: str, crossfit: bool) -> Plan:
    held_out = cfg.calibration_share > 0 or crossfit
    if thresholds_from == "train" and crossfit:
        raise BundleError("--crossfit gives out-of-fold thresholds; --thresholds-from train asks for in-sample ones")
    if noisy_base == "fitted" and (not held_out or thresholds_from == "train"):
        raise BundleError("--noisy-base fitted fits on a held-out split: train with --calibration (or use --crossfit)")
    if thresholds_from == "calibration" and not held_out:
        raise BundleError("--thresholds-from calibration: this run held out no calibration split (train it with --calibration)")
    out_of_sample = held_out and thresholds_from != "train"
    # a mining run's thresholds belong to the probabilities it mined on; flip averaging or a temperature
    # changes them, and only a held-out split can give thresholds for the new ones
    recompute = not out_of_sample and (tta != "none" or held_out)
    if cfg.mines and recompute:
        change = f"--tta {tta}" if tta != "none" else "the fitted temperature"
        raise BundleError(
            f"{change} would serve other probabilities than the ones the {cfg.method} run mined its thresholds on; "
            "export it with --tta none, or from a run trained with --calibration (thresholds from that split)"
        )
    return Plan(held_out, out_of_sample, recompute, crossfit)


def held_out_split(cfg: TrainConfig, oof: OutOfFold | None, data: Data | None, ensemble: nn.Module) -> HeldOut | None:
    """The images the export calibrates on, with the ensemble's probabilities at T = 1; None without any."""
    where = {"from": split_name(cfg.dataset, "train"), "seed": cfg.seed}
    if oof is not None:
        split = {"share": oof.share, "samples": len(oof.names), "ids": oof.names, "folds": oof.folds}
        return HeldOut(oof.labels, oof.votes, oof.probs, where | split, None)
    if cfg.calibration_share == 0:
        return None
    assert data is not None and data.calibration is not None
    x = normalise(data.calibration.pixels, input_spec(cfg))  # (N, C, H, W)
    split = {"share": cfg.calibration_share, "samples": len(data.calibration), "ids": data.calibration.names}
    split |= {"fold": cfg.calibration_fold} if cfg.fold else {}
    return HeldOut(data.calibration.labels.numpy(), data.calibration.votes, torch_probs(ensemble, x), where | split, x)


def evaluate_graph(
    reference: nn.Module, onnx_path: Path, cfg: TrainConfig, classes: list[str], *, root: str, split: str
) -> tuple[dict[str, Any], float]:
    """Accuracy and per-class recall of the ONNX graph on `split` through the service's preprocessing, and its
    largest difference from `reference` (PyTorch) on a batch."""
    spec = input_spec(cfg)
    _, samples = scan(cfg.dataset, root, split)
    images = load_images(samples, spec, desc=f"decode {split}")
    x = normalise(images.pixels, spec)  # (N, C, H, W)
    err = check_parity(reference, onnx_path, x[:64])
    probs, labels = onnx_probs(onnx_path, x.numpy()), images.labels.numpy()
    metrics = {"accuracy": accuracy(probs, labels), "perClassRecall": per_class_recall(probs, labels, classes)}
    return metrics | {"samples": len(labels)}, err


def served_probs(held: HeldOut, onnx_path: Path, temperature: float) -> np.ndarray:
    """The held-out images' probabilities (N, K) as the bundle serves them: the exported graph's on the run's own
    split; the K cross-fitted runs' graphs are not exported, so theirs at the fitted temperature."""
    if held.x is None:
        return softmax_t(log_probs(held.probs), temperature)
    return onnx_probs(onnx_path, held.x.numpy())


def exported_thresholds(
    cfg: TrainConfig,
    final: dict[str, Any],
    steps: Plan,
    onnx_path: Path,
    *,
    graph: str,
    held: tuple[HeldOut, np.ndarray] | None,
    data: Data | None,
    fit: bool,
) -> LearnedThresholds:
    """final.pt's thresholds, learned again out of sample on the held-out split (`held`: it and the served
    probabilities there), or recomputed in sample through the graph."""
    run = LearnedThresholds(final["class_means"], final["thresholds"], (cfg.t_noisy, cfg.t_clean), final["threshold_learning"])
    if steps.out_of_sample:
        assert held is not None
        where = (
            f"out-of-fold probabilities of {held[0].split['folds']} cross-fitted runs, temperature applied"
            if steps.crossfit
            else f"calibration split ({cfg.calibration_share:.0%}, never trained on), {graph}"
        )
        return learn_thresholds(held[1], held[0], run, fit=fit, seed=cfg.seed, split=where)
    if not steps.recompute:
        return run
    # the thresholds of a run that did not mine come from its final model's training-set probabilities; the graph
    # now computes other ones, so they are recomputed through the graph itself
    assert data is not None
    train_probs = onnx_probs(onnx_path, normalise(data.train.pixels, input_spec(cfg)).numpy())
    means, thresholds = final_model_thresholds(cfg, train_probs, data.train.labels.numpy())
    split = f"training set, {graph}, un-augmented"
    return replace(run, means=means.tolist(), thresholds=thresholds.tolist(), learning=run.learning | {"split": split})


def export_bundle(
    final_path: Path | str,
    out: Path,
    *,
    name: str,
    data_root: str | None = None,
    eval_split: str = "valid",
    weights: str = "float32",
    tta: str = "none",
    thresholds_from: str = "auto",
    crossfit: Sequence[Path] = (),
    noisy_base: str = "paper",
) -> dict[str, Any]:
    """Write `out/model.onnx` + `out/model.json` from a `final.pt`; returns the model.json document.
    `weights` is the dtype the ONNX file stores its weights in (WEIGHT_DTYPES); `tta` the test-time
    augmentation built into the graph (TTA_MODES); `thresholds_from` where the class means of the thresholds
    come from (THRESHOLD_SPLITS). A run with a calibration split gets its temperature fitted there and folded
    into the graph, and its label-quality score and per-class reliability measured there. `crossfit` (the
    final.pt files of K runs trained with --calibration-fold 0/K .. K-1/K) replaces that split with all their
    out-of-fold probabilities (crossfit.py). `noisy_base` (NOISY_BASES): the run's base pair and mode (paper), or
    the thresholds chosen out of fold there among candidates by the `noisy` verdict's F1 on injected noise
    (fitted; calibrate.choose_thresholds, threshold_choice.py)."""
    check_choices(noisy_base=noisy_base, weights=weights, tta=tta, thresholds_from=thresholds_from)
    revision = code_revision()  # before this export writes into the tree (models/default is tracked)
    cfg, nets, final = load_trained(final_path)
    oof = out_of_fold(crossfit, like=cfg, tta=tta, data_root=data_root) if crossfit else None
    steps = plan(cfg, tta=tta, thresholds_from=thresholds_from, noisy_base=noisy_base, crossfit=oof is not None)
    classes: list[str] = final["classes"]
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ONNX_FILE
    ensemble = Ensemble(nets, flip=tta == "flip").eval()
    data = load_data(replace(cfg, data=data_root or cfg.data), save_labels=False) if steps.needs_run_data else None
    held = held_out_split(cfg, oof, data, ensemble)
    calibration = calibration_section(held) if held is not None else None
    if calibration is not None:
        ensemble.temperature = calibration["temperature"]
    reference = round_weights_to_float16(ensemble) if weights == "float16" else ensemble
    export_onnx(reference, input_spec(cfg), onnx_path, weights=weights)
    metrics, err = evaluate_graph(reference, onnx_path, cfg, classes, root=data_root or cfg.data, split=eval_split)
    metrics["singleNetworkAccuracy"] = final["valid"]["singleNetworkAccuracy"]
    served = None
    if held is not None and calibration is not None:
        served = (held, served_probs(held, onnx_path, calibration["temperature"]))
    graph = "exported graph" + (f", {tta} averaged" if tta != "none" else "") + (", temperature folded" if steps.held_out else "")
    learned = exported_thresholds(cfg, final, steps, onnx_path, graph=graph, held=served, data=data, fit=noisy_base == "fitted")
    measured: dict[str, Any] = {}
    if served is not None and calibration is not None:
        measured = measured_sections(served[1], served[0], calibration, np.asarray(learned.thresholds), classes, cfg.seed)
    model = model_section(cfg, networks=len(nets), parameters=count_parameters(ensemble), weights=weights, tta=tta)
    doc = document(
        cfg,
        name=name,
        classes=classes,
        spec=input_spec(cfg),
        model=model,
        learned=learned,
        measured=measured,
        metrics=metrics,
        epochs=final["epochs"],
        eval_split=eval_split,
        revision=revision,
    )
    doc["model"]["sha256"] = sha256_file(onnx_path)
    write_bundle(doc, out)
    print(
        f"ok: {out} ({onnx_path.stat().st_size / 1e6:.1f} MB, {weights} weights, test-time augmentation {tta}), "
        f"{eval_split.title()} accuracy {metrics['accuracy']:.4f} on all {metrics['samples']} {eval_split.title()} images, "
        f"onnxruntime-vs-torch max |diff| {err:.1e}"
    )
    return doc
