"""Scans the standard FER+ layout (`FER2013<Split>/label.csv` + PNGs) into labelled samples.

Label rule (documented in docs/training.md): the label is the emotion class with the most of the 10 votes;
ties between emotion classes go to the class that comes first in FER+ column order (neutral first);
rows whose top emotion count is not strictly larger than both the `unknown` and `NF` counts are
dropped (unknown/NF majority, ties included), as are rows with no emotion vote.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
VOTE_COLUMNS: tuple[str, ...] = (*CLASSES, "unknown", "NF")
SPLITS: dict[str, str] = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}


@dataclass(frozen=True)
class Sample:
    """One labelled image. `votes` holds the per-class vote counts (FER+: the 8 emotion columns;
    single-label datasets: one-hot). `box` (x, y, width, height, pixels) crops the face first."""

    path: Path
    label: int
    votes: tuple[int, ...]
    box: tuple[int, int, int, int] | None = None


class DatasetLayoutError(ValueError):
    """The dataset on disk does not have the expected layout or content."""


def majority_label(votes: np.ndarray) -> int | None:
    """The label of one row of 10 FER+ vote counts, or None when the row is dropped.

    votes: (10,) counts in `VOTE_COLUMNS` order.
    """
    emotion = votes[: len(CLASSES)]
    top = int(emotion.max())
    if top == 0 or top <= int(votes[len(CLASSES) :].max()):
        return None
    return int(np.argmax(emotion))  # argmax returns the first maximum: the documented tie rule


def _parse_row(row: list[str], csv_path: Path, line: int) -> tuple[str, np.ndarray]:
    expected = 2 + len(VOTE_COLUMNS)
    if len(row) != expected:
        raise DatasetLayoutError(
            f"{csv_path} row {line} has {len(row)} columns, expected {expected} "
            f"(image name, face box, {len(VOTE_COLUMNS)} vote counts)"
        )
    name = row[0].strip()
    if not name:
        raise DatasetLayoutError(f"{csv_path} row {line} has an empty image name")
    try:
        votes = np.array([int(v) for v in row[2:]], dtype=np.int64)
    except ValueError:
        raise DatasetLayoutError(
            f"{csv_path} row {line} has a non-integer vote count in {row[2:]!r}, expected 10 integers"
        ) from None
    if (votes < 0).any() or votes.sum() > 10:
        raise DatasetLayoutError(
            f"{csv_path} row {line} has vote counts {votes.tolist()}, expected 10 counts >= 0 summing to at most 10"
        )
    return name, votes


def read_ferplus_votes(csv_path: Path) -> list[tuple[int, str, np.ndarray]]:
    """(row number, image name, (10,) vote counts) of every row of a FER+ label.csv."""
    with csv_path.open(newline="") as f:
        return [(line, *_parse_row(row, csv_path, line)) for line, row in enumerate(csv.reader(f), start=1) if row]


def scan_ferplus(root: Path | str, split: str) -> list[Sample]:
    """All kept samples of one FER+ split, sorted by file name.

    root: folder holding `FER2013Train/`, `FER2013Valid/`, ...; split: train | valid | test.
    """
    if split not in SPLITS:
        raise DatasetLayoutError(f"unknown FER+ split {split!r}, expected one of {sorted(SPLITS)}")
    folder = Path(root) / SPLITS[split]
    csv_path = folder / "label.csv"
    if not csv_path.is_file():
        raise DatasetLayoutError(f"{csv_path} not found: expected the FER+ layout <root>/{SPLITS[split]}/label.csv")
    samples: list[Sample] = []
    for line, name, votes in read_ferplus_votes(csv_path):
        label = majority_label(votes)
        if label is None:
            continue
        path = folder / name
        if not path.is_file():
            raise DatasetLayoutError(f"{csv_path} row {line} names {name}, which is not in {folder}")
        samples.append(Sample(path=path, label=label, votes=tuple(int(v) for v in votes[: len(CLASSES)])))
    if not samples:
        raise DatasetLayoutError(f"{csv_path} holds no usable rows")
    return sorted(samples, key=lambda s: s.path.name)
