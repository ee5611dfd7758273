"""Dataset layouts, each one scanner (find the samples) plus its class names; then `dataset.py` makes tensors
through `preprocess.py` (the input contract the service shares), `noise.py` corrupts labels by a protocol and
`views.py` augments for training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .affectnet import AFFECTNET_CLASSES, scan_affectnet
from .ferplus import CLASSES as FERPLUS_CLASSES
from .ferplus import DatasetLayoutError, Sample, majority_label, read_ferplus_votes, scan_ferplus
from .folders import imagefolder_classes, manifest_classes, scan_imagefolder, scan_manifest
from .rafdb import RAFDB_CLASSES, aligned_path, read_rafdb_labels, scan_rafdb

FORMATS = ("ferplus", "rafdb", "affectnet", "affectnet7", "imagefolder", "manifest")


def scan(fmt: str, root: Path | str, split: str) -> tuple[tuple[str, ...], list[Sample]]:
    """Class names and the samples of one split of a dataset in layout `fmt`."""
    layouts: dict[str, tuple[Callable[[Path | str, str], list[Sample]], Callable[[], tuple[str, ...]]]] = {
        "ferplus": (scan_ferplus, lambda: FERPLUS_CLASSES),
        "rafdb": (scan_rafdb, lambda: RAFDB_CLASSES),
        "affectnet": (scan_affectnet, lambda: AFFECTNET_CLASSES),
        "affectnet7": (lambda r, s: scan_affectnet(r, s, num_classes=7), lambda: AFFECTNET_CLASSES[:7]),
        "imagefolder": (scan_imagefolder, lambda: imagefolder_classes(root)),
        "manifest": (scan_manifest, lambda: manifest_classes(root)),
    }
    if fmt not in layouts:
        raise DatasetLayoutError(f"unknown dataset format {fmt!r}, expected one of {FORMATS}")
    scanner, classes = layouts[fmt]
    return classes(), scanner(root, split)


def read_label_file(fmt: str, path: Path | str) -> dict[str, int]:
    """Labels from a file in a dataset's own label format, keyed by the image file name the scanner
    uses: FER+ `label.csv` (majority of the votes; dropped rows are left out) or a RAF-DB
    `<image> <label 1-7>` list such as the published noisy-label files."""
    path = Path(path)
    if not path.is_file():
        raise DatasetLayoutError(f"label file {path} not found")
    if fmt == "ferplus":
        majority = {name: majority_label(votes) for _, name, votes in read_ferplus_votes(path)}
        return {name: label for name, label in majority.items() if label is not None}
    if fmt == "rafdb":
        return {aligned_path(Path(), name).name: label for _, name, label in read_rafdb_labels(path)}
    raise DatasetLayoutError(f"label files are read for the ferplus and rafdb formats, not {fmt!r}")


__all__ = ["FORMATS", "DatasetLayoutError", "Sample", "read_label_file", "scan"]
