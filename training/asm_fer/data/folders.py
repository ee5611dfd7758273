"""Scans the two generic layouts: ImageFolder (`<root>/<split>/<class>/<image>`) and a CSV manifest
(`<root>/<split>.csv` with a `path,label` header; paths relative to the CSV). Classes are the
sorted class folder names / label values of the training split, so train and valid agree.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .ferplus import DatasetLayoutError, Sample

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


def _one_hot(label: int, k: int) -> tuple[int, ...]:
    return tuple(int(i == label) for i in range(k))


def imagefolder_classes(root: Path | str) -> tuple[str, ...]:
    train = Path(root) / "train"
    if not train.is_dir():
        raise DatasetLayoutError(f"{train} not found: expected the ImageFolder layout <root>/<split>/<class>/<image>")
    names = tuple(sorted(p.name for p in train.iterdir() if p.is_dir()))
    if len(names) < 2:
        raise DatasetLayoutError(f"{train} has {len(names)} class folders, expected at least 2")
    return names


def scan_imagefolder(root: Path | str, split: str) -> list[Sample]:
    classes = imagefolder_classes(root)
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder} not found: expected the ImageFolder layout <root>/{split}/<class>/<image>")
    unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise DatasetLayoutError(f"{folder} has class folders {unknown} that train/ does not have")
    samples = [
        Sample(path=path, label=k, votes=_one_hot(k, len(classes)))
        for k, name in enumerate(classes)
        if (folder / name).is_dir()
        for path in sorted((folder / name).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not samples:
        raise DatasetLayoutError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return samples


def _read_manifest(csv_path: Path) -> list[tuple[int, str, str]]:
    if not csv_path.is_file():
        raise DatasetLayoutError(f"{csv_path} not found: expected a manifest <root>/<split>.csv with columns path,label")
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"path", "label"} <= set(reader.fieldnames):
            raise DatasetLayoutError(f"{csv_path} header is {reader.fieldnames}, expected at least path,label")
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row["path"] or not row["label"]:
                raise DatasetLayoutError(f"{csv_path} row {line} has an empty path or label")
            rows.append((line, row["path"], row["label"].strip()))
    return rows


def manifest_classes(root: Path | str) -> tuple[str, ...]:
    return tuple(sorted({label for _, _, label in _read_manifest(Path(root) / "train.csv")}))


def scan_manifest(root: Path | str, split: str) -> list[Sample]:
    classes = manifest_classes(root)
    csv_path = Path(root) / f"{split}.csv"
    samples = []
    for line, rel, label in _read_manifest(csv_path):
        if label not in classes:
            raise DatasetLayoutError(f"{csv_path} row {line} has label {label!r}, which train.csv does not have")
        path = (csv_path.parent / rel).resolve()
        if not path.is_file():
            raise DatasetLayoutError(f"{csv_path} row {line} names {rel}, which does not exist")
        k = classes.index(label)
        samples.append(Sample(path=path, label=k, votes=_one_hot(k, len(classes))))
    return samples
