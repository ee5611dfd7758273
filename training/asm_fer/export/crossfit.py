"""Cross-fitted calibration (issue 17): K runs trained with `--calibration-fold I/K`, I = 0..K-1, each hold out
one of K class-stratified folds of the training set, so together they give every training image a probability
from a model that never saw it (out-of-fold, as Confident Learning computes them). `asm-fer export --crossfit
RUN0 ... RUN{K-1}` fits the temperature, learns the thresholds and measures the label-quality score and the
per-class reliability on all of them instead of on one 10 % split: K times the images, for K trainings.

The pooled probabilities come from K models, the exported graph is one model (any of them, or one trained on
everything); the estimates carry over to the extent the K models behave alike, which is what cross-validation
assumes too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoints import load_trained
from ..config import TrainConfig
from ..data import scan
from ..data.dataset import calibration_split, load_images, stratified_limit
from ..data.preprocess import normalise
from ..evaluate import torch_probs
from ..models.resnet import Ensemble
from ..run import input_spec
from .bundle import BundleError

# what the K runs must share with each other and with the exported run: the same images, split the same way
SAME = ("data", "dataset", "limit", "seed", "input_size", "channels")


@dataclass(frozen=True)
class OutOfFold:
    names: list[str]
    labels: np.ndarray  # (N,) the dataset's own labels
    votes: np.ndarray  # (N, K) crowd votes (one-hot where the dataset has none)
    probs: np.ndarray  # (N, C) each image's probabilities from the one run that held it out, at T = 1
    folds: int
    share: float  # of the (limited) training set: all of it but the classes with a single image


def out_of_fold(finals: Sequence[Path], *, like: TrainConfig, tta: str, data_root: str | None = None) -> OutOfFold:
    """Each run's ensemble (with `tta`) on the fold it held out, pooled; `like` is the exported run's config."""
    runs = [(path, *load_trained(path)) for path in finals]
    folds = [cfg.fold for _, cfg, _, _ in runs]
    k = folds[0][1] if folds[0] else 0
    if any(f is None for f in folds) or sorted(f[0] for f in folds if f) != list(range(k)) or {f[1] for f in folds if f} != {k}:
        got = ", ".join(f"{p.parent.name}: {cfg.calibration_fold or 'no fold'}" for p, cfg, _, _ in runs)
        raise BundleError(f"--crossfit needs K runs trained with --calibration-fold 0/K .. K-1/K, each once; got {got}")
    for path, cfg, _, _ in runs:
        differ = [f for f in SAME if getattr(cfg, f) != getattr(like, f)]
        if differ:
            raise BundleError(f"--crossfit {path}: trained on other images than the exported run ({', '.join(differ)} differ)")
    spec = input_spec(like)
    _, samples = scan(like.dataset, data_root or like.data, "train")
    samples = stratified_limit(samples, like.limit, like.seed)
    names: list[str] = []
    labels, votes, probs = [], [], []
    for _, cfg, nets, _ in runs:
        _, held = calibration_split(samples, 0.0, cfg.seed, cfg.fold)
        images = load_images(held, spec, desc=f"decode fold {cfg.calibration_fold}")
        probs.append(torch_probs(Ensemble(nets, flip=tta == "flip").eval(), normalise(images.pixels, spec)))
        names += images.names
        labels.append(images.labels.numpy())
        votes.append(images.votes)
    return OutOfFold(
        names=names,
        labels=np.concatenate(labels),
        votes=np.concatenate(votes),
        probs=np.concatenate(probs),
        folds=k,
        share=len(names) / len(samples),
    )
