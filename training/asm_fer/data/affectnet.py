"""Scans AffectNet-style CSVs: `training.csv` / `validation.csv` with the columns
`subDirectory_filePath, face_x, face_y, face_width, face_height, ..., expression`, images under
`Manually_Annotated_Images/`. Expression codes 0-7 are neutral, happiness, sadness, surprise, fear,
disgust, anger, contempt; 8-10 (none, uncertain, no face) are dropped, and so is contempt for the
7-class protocol. The face box, when the columns are present, crops the image before resizing.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .ferplus import DatasetLayoutError, Sample

AFFECTNET_CLASSES: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt")
CSV_FILES = {"train": "training.csv", "valid": "validation.csv", "test": "validation.csv"}
IMAGE_DIR = "Manually_Annotated_Images"
BOX_COLUMNS = ("face_x", "face_y", "face_width", "face_height")


def scan_affectnet(root: Path | str, split: str, *, num_classes: int = 8) -> list[Sample]:
    """Samples of one split with expression < num_classes (7 or 8), in file order."""
    if split not in CSV_FILES:
        raise DatasetLayoutError(f"unknown AffectNet split {split!r}, expected train or valid")
    csv_path = Path(root) / CSV_FILES[split]
    if not csv_path.is_file():
        raise DatasetLayoutError(f"{csv_path} not found: expected <root>/{CSV_FILES[split]} (AffectNet layout)")
    samples = []
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        if not {"subDirectory_filePath", "expression"} <= fields:
            raise DatasetLayoutError(
                f"{csv_path} header is {reader.fieldnames}, expected at least subDirectory_filePath and expression"
            )
        has_box = set(BOX_COLUMNS) <= fields
        for line, row in enumerate(reader, start=2):
            try:
                label = int(row["expression"])
                box = tuple(int(float(row[c])) for c in BOX_COLUMNS) if has_box else None
            except ValueError:
                raise DatasetLayoutError(f"{csv_path} row {line} has a non-numeric expression or face box") from None
            if not 0 <= label < num_classes:
                continue
            path = Path(root) / IMAGE_DIR / row["subDirectory_filePath"]
            if not path.is_file():
                raise DatasetLayoutError(f"{csv_path} row {line} names {row['subDirectory_filePath']}, but {path} does not exist")
            votes = tuple(int(k == label) for k in range(num_classes))
            samples.append(Sample(path=path, label=label, votes=votes, box=box))  # type: ignore[arg-type]
    if not samples:
        raise DatasetLayoutError(f"{csv_path} holds no rows with expression 0-{num_classes - 1}")
    return samples
