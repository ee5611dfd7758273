"""Label-noise protocols (asm-method.md): `none`, `sym-<r>`, `crowd-1`. Each returns the labels to
train on and the ground-truth mask of wrong labels; seeded through an explicit generator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class NoisyLabels:
    labels: np.ndarray  # (N,) labels to train on
    truly_noisy: np.ndarray  # (N,) bool: the label is wrong w.r.t. the clean/majority label

    @property
    def rate(self) -> float:
        return float(self.truly_noisy.mean()) if len(self.truly_noisy) else 0.0


def symmetric(labels: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator) -> NoisyLabels:
    """In each class, round(rate * n_k) samples get a label drawn uniformly from the other classes."""
    if not 0 <= rate < 1:
        raise ValueError(f"noise rate must be in [0, 1), got {rate}")
    noisy = labels.copy()
    for k in range(num_classes):
        idx = np.flatnonzero(labels == k)
        flip = rng.choice(idx, size=round(rate * len(idx)), replace=False)
        others = rng.integers(0, num_classes - 1, size=len(flip))
        noisy[flip] = others + (others >= k)  # uniform over classes != k
    return NoisyLabels(noisy, noisy != labels)


def crowd_one(votes: np.ndarray, rng: np.random.Generator) -> NoisyLabels:
    """One annotator per image: a vote drawn from the image's emotion votes (N, K). A label is noisy
    when the drawn class is not among the image's majority classes (ties count as majority)."""
    totals = votes.sum(1)
    if (totals == 0).any():
        raise ValueError("every image needs at least one emotion vote for crowd-1")
    cumulative = votes.cumsum(1)  # (N, K)
    draw = rng.integers(0, totals)  # (N,) which vote, 0-based
    chosen = (cumulative <= draw[:, None]).sum(1)
    majority = votes[np.arange(len(votes)), chosen] == votes.max(1)
    return NoisyLabels(chosen, ~majority)


def from_file(file_labels: dict[str, int], names: list[str], labels: np.ndarray) -> NoisyLabels:
    """Labels given by a label file (image name -> label) for every training image; the truth is `labels`."""
    missing = [n for n in names if n not in file_labels]
    if missing:
        raise ValueError(f"the label file has no label for {len(missing)} training images, e.g. {missing[:3]}")
    noisy = np.array([file_labels[n] for n in names], dtype=labels.dtype)
    return NoisyLabels(noisy, noisy != labels)


def apply_noise(spec: str, labels: np.ndarray, votes: np.ndarray, num_classes: int, seed: int) -> NoisyLabels:
    """Parse a `--noise` value and apply it: none | sym-<r> (r in (0, 1), e.g. sym-0.3) | crowd-1.
    (`file:<path>` needs the image names and the dataset format: see `train.load_data`.)"""
    rng = np.random.default_rng(seed)
    if spec == "none":
        return NoisyLabels(labels.copy(), np.zeros(len(labels), dtype=bool))
    if m := re.fullmatch(r"sym-(0?\.\d+)", spec):
        return symmetric(labels, float(m.group(1)), num_classes, rng)
    if spec == "crowd-1":
        return crowd_one(votes, rng)
    raise ValueError(f"unknown noise protocol {spec!r}; expected none, sym-<rate> (e.g. sym-0.3), crowd-1 or file:<path>")


def save_noise(noise: NoisyLabels, names: list[str], path: Path) -> None:
    """The noisy label table of a run: name, label, truly_noisy (CSV)."""
    rows = [f"{n},{int(y)},{int(t)}" for n, y, t in zip(names, noise.labels, noise.truly_noisy, strict=True)]
    path.write_text("name,label,truly_noisy\n" + "\n".join(rows) + "\n")
