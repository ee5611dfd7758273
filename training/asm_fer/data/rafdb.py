"""Scans RAF-DB basic (`EmoLabel/list_patition_label.txt` + `Image/aligned/<name>_aligned.jpg`).

Labels 1-7 in the file are surprise, fear, disgust, happiness, sadness, anger, neutral; the split is
the file-name prefix (`train_` / `test_`). RAF-DB has no validation split: `valid` reads `test`, as
the papers this project compares with do.
"""

from __future__ import annotations

from pathlib import Path

from .ferplus import DatasetLayoutError, Sample

RAFDB_CLASSES: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"  # sic: the dataset's own spelling


def aligned_path(root: Path, name: str) -> Path:
    return root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg"


def read_rafdb_labels(label_file: Path) -> list[tuple[int, str, int]]:
    """(line number, image name, 0-based label) of every row of a RAF-DB label file (the partition
    file, or a noisy label file in the same format)."""
    rows = []
    for line, text in enumerate(label_file.read_text().splitlines(), start=1):
        parts = text.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(RAFDB_CLASSES):
            raise DatasetLayoutError(f"{label_file} line {line} is {text!r}, expected '<image name> <label 1-7>'")
        rows.append((line, parts[0], int(parts[1]) - 1))
    return rows


def scan_rafdb(root: Path | str, split: str) -> list[Sample]:
    """All samples of one split (train | valid | test), sorted by file name."""
    root = Path(root)
    prefix = {"train": "train_", "valid": "test_", "test": "test_"}.get(split)
    if prefix is None:
        raise DatasetLayoutError(f"unknown RAF-DB split {split!r}, expected train, valid or test")
    label_file = root / LABEL_FILE
    if not label_file.is_file():
        raise DatasetLayoutError(f"{label_file} not found: expected the RAF-DB basic layout <root>/{LABEL_FILE}")
    samples: list[Sample] = []
    for line, name, label in read_rafdb_labels(label_file):
        if not name.startswith(prefix):
            continue
        path = aligned_path(root, name)
        if not path.is_file():
            raise DatasetLayoutError(f"{label_file} line {line} names {name}, but {path} does not exist")
        votes = tuple(int(k == label) for k in range(len(RAFDB_CLASSES)))
        samples.append(Sample(path=path, label=label, votes=votes))
    if not samples:
        raise DatasetLayoutError(f"{label_file} lists no {prefix}* images")
    return sorted(samples, key=lambda s: s.path.name)
