"""Decodes scanned samples once into memory: (N, C, H, W) pixels in [0, 255], labels and votes.

FER+ Train is 28k 48x48 images (about 260 MB as float32), so holding it in memory and augmenting
whole batches is far faster on a CPU than a per-image DataLoader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .ferplus import Sample
from .preprocess import InputSpec, load_pixels


@dataclass
class ImageSet:
    pixels: torch.Tensor  # (N, C, H, W) float32 in [0, 255]
    labels: torch.Tensor  # (N,) int64
    votes: np.ndarray  # (N, K) vote counts; one-hot of the label where a dataset has no votes
    names: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_images(samples: Sequence[Sample], spec: InputSpec, *, desc: str = "decode") -> ImageSet:
    pixels = np.empty((len(samples), spec.channels, spec.height, spec.width), dtype=np.float32)
    for i, s in enumerate(tqdm(samples, desc=desc, unit="img", leave=False, mininterval=2)):
        pixels[i] = load_pixels(s.path, spec, s.box)
    return ImageSet(
        pixels=torch.from_numpy(pixels),
        labels=torch.tensor([s.label for s in samples], dtype=torch.int64),
        votes=np.array([s.votes for s in samples], dtype=np.int64),
        names=[s.path.name for s in samples],
    )


def stratified_limit(samples: Sequence[Sample], limit: int, seed: int) -> list[Sample]:
    """A class-stratified subset of about `limit` samples (every class keeps at least one)."""
    if limit <= 0 or limit >= len(samples):
        return list(samples)
    rng = np.random.default_rng(seed)
    labels = np.array([s.label for s in samples])
    keep: list[int] = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        n = max(1, round(limit * len(idx) / len(samples)))
        keep.extend(rng.choice(idx, size=min(n, len(idx)), replace=False).tolist())
    return [samples[i] for i in sorted(keep)]


# a stream of its own, so the split does not depend on (or shift) the draws of --limit and of the noise
CALIBRATION_STREAM = 17


def calibration_split(
    samples: Sequence[Sample], share: float, seed: int, fold: tuple[int, int] | None = None
) -> tuple[list[Sample], list[Sample]]:
    """(train, calibration): about `share` of each class held out, seeded; order kept within each part.
    A class with a single sample stays in training (its calibration figure would be one coin flip).
    With `fold` = (I, K) the calibration part is fold I of K class-stratified folds instead (`share` is
    ignored): each class is shuffled once per (seed, K) and dealt round-robin, so the K folds of one seed
    partition the samples and differ in size by at most one per class."""
    if fold is None and share <= 0:
        return list(samples), []
    labels = np.array([s.label for s in samples])
    held = np.zeros(len(samples), dtype=bool)
    if fold is not None:
        i, k = fold
        rng = np.random.default_rng([seed, CALIBRATION_STREAM, k])
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            if len(idx) > 1:
                held[idx[i::k]] = True
    else:
        rng = np.random.default_rng([seed, CALIBRATION_STREAM])
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            n = min(len(idx) - 1, max(1, round(share * len(idx))))
            held[rng.choice(idx, size=n, replace=False)] = True
    return [s for s, h in zip(samples, held, strict=True) if not h], [s for s, h in zip(samples, held, strict=True) if h]
