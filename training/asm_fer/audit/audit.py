"""Dataset audit: every labelled image of a dataset split checked against a model bundle's thresholds.

The verdict is the service's (`src/audit/judge.ts`) and training's Sample Mining rule on one
network output: clean if p(label) >= tau_c, noisy if p(label) < tau_n, ambiguous otherwise, with the
per-class thresholds stored in the bundle. Inference runs in-process on the bundle's ONNX graph
with the bundle's preprocessing, so a whole dataset is audited without a running service.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import scan
from ..data.dataset import load_images
from ..data.ferplus import DatasetLayoutError, Sample
from ..data.noise import apply_noise
from ..data.preprocess import normalise
from ..evaluate import accuracy, confusion_matrix, onnx_probs, per_class_recall
from ..export.bundle import input_spec_from, read_bundle
from ..method.mining import Subsets, mine, mining_quality

VERDICTS = ("clean", "ambiguous", "noisy")


@dataclass(frozen=True)
class Audit:
    """Verdicts of one audited split; arrays are aligned with `samples`."""

    bundle: dict[str, Any]
    classes: tuple[str, ...]
    samples: list[Sample]
    labels: np.ndarray  # (N,) submitted labels
    probs: np.ndarray  # (N, K)
    verdicts: np.ndarray  # (N,) index into VERDICTS
    truly_noisy: np.ndarray | None  # (N,) bool when the labels were corrupted on purpose

    @property
    def label_prob(self) -> np.ndarray:
        p: np.ndarray = self.probs[np.arange(len(self.labels)), self.labels]
        return p

    @property
    def predicted(self) -> np.ndarray:
        pred: np.ndarray = self.probs.argmax(1)
        return pred

    @property
    def thresholds(self) -> np.ndarray:
        """(K, 2) as (noisy, clean) per class, in the bundle's class order."""
        return bundle_thresholds(self.bundle, self.classes)

    def counts(self) -> np.ndarray:
        """(K, 3) number of items per submitted class and verdict."""
        k = len(self.classes)
        return np.bincount(self.labels * 3 + self.verdicts, minlength=k * 3).reshape(k, 3)

    def confusion(self) -> np.ndarray:
        """(K, K) rows = submitted label, columns = predicted label."""
        return confusion_matrix(self.probs, self.labels, len(self.classes))

    def recognition(self) -> dict[str, Any]:
        """How the predictions match the submitted labels: accuracy, recall per class (None for a class
        without items) and its mean over the classes with items, and the share of items predicted as each class."""
        recall = per_class_recall(self.probs, self.labels, self.classes)
        present = [r for r in recall.values() if r is not None]
        shares = np.bincount(self.predicted, minlength=len(self.classes)) / len(self.labels)
        return {
            "accuracy": accuracy(self.probs, self.labels),
            "recall": recall,
            "mean_recall": float(np.mean(present)),
            "predicted_share": dict(zip(self.classes, shares.tolist(), strict=True)),
        }

    def quality(self) -> dict[str, float] | None:
        """Precision / recall / F1 of the `noisy` verdict when the truth is known."""
        if self.truly_noisy is None:
            return None
        noisy = self.verdicts == VERDICTS.index("noisy")
        ambiguous = self.verdicts == VERDICTS.index("ambiguous")
        return mining_quality(Subsets(clean=~(noisy | ambiguous), ambiguous=ambiguous, noisy=noisy), self.truly_noisy)


def bundle_thresholds(doc: dict[str, Any], classes: Sequence[str]) -> np.ndarray:
    """(K, 2) as (noisy, clean) per class from a bundle's `thresholds` object."""
    t = doc["thresholds"]
    return np.array([[t[c]["noisy"], t[c]["clean"]] for c in classes])


def run_audit(
    bundle_dir: Path | str,
    data: Path | str,
    *,
    fmt: str = "ferplus",
    split: str = "valid",
    noise: str = "none",
    seed: int = 0,
    limit: int = 0,
) -> Audit:
    """Audit one split of a dataset. `noise` corrupts the dataset's labels first (sym-<r>, crowd-1)
    so that the verdicts can be scored against a known truth."""
    bundle_dir = Path(bundle_dir)
    doc = read_bundle(bundle_dir)
    classes, samples = scan(fmt, data, split)
    if tuple(doc["classes"]) != tuple(classes):
        raise DatasetLayoutError(f"the bundle's classes {doc['classes']} differ from the dataset's {list(classes)}")
    if limit > 0:
        samples = samples[:limit]
    if not samples:
        raise DatasetLayoutError(f"no labelled images in the {split} split of {data}")
    spec = input_spec_from(doc["input"])
    images = load_images(samples, spec, desc=f"decode {split}")
    corrupted = apply_noise(noise, images.labels.numpy(), images.votes, len(classes), seed)
    probs = onnx_probs(bundle_dir / doc["model"]["file"], normalise(images.pixels, spec).numpy())
    subsets = mine(probs[None], corrupted.labels, bundle_thresholds(doc, classes))
    return Audit(
        bundle=doc,
        classes=tuple(classes),
        samples=samples,
        labels=corrupted.labels,
        probs=probs,
        verdicts=np.where(subsets.clean, 0, np.where(subsets.noisy, 2, 1)),
        truly_noisy=corrupted.truly_noisy if noise != "none" else None,
    )


def write_flagged_csv(audit: Audit, path: Path) -> int:
    """Every item not judged clean, noisy first, each group by ascending probability of its label."""
    flagged = np.flatnonzero(audit.verdicts != 0)
    order = flagged[np.lexsort((audit.label_prob[flagged], -audit.verdicts[flagged]))]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        header = ["path", "label", "verdict", "label_probability", "predicted", "confidence", "tau_noisy", "tau_clean"]
        w.writerow(header + (["truly_noisy"] if audit.truly_noisy is not None else []))
        for i in order:
            label = int(audit.labels[i])
            row = [
                str(audit.samples[i].path),
                audit.classes[label],
                VERDICTS[audit.verdicts[i]],
                f"{audit.label_prob[i]:.4f}",
                audit.classes[audit.predicted[i]],
                f"{audit.probs[i].max():.4f}",
                *(f"{t:.4f}" for t in audit.thresholds[label]),
            ]
            w.writerow(row + ([int(audit.truly_noisy[i])] if audit.truly_noisy is not None else []))
    return len(order)


def most_confident_noisy(audit: Audit, k: int, per_class: int) -> list[int]:
    """Items judged noisy whose prediction (another class) is most confident, up to `per_class` per class."""
    idx = np.flatnonzero((audit.verdicts == 2) & (audit.labels == k))
    return [int(i) for i in idx[np.argsort(-audit.probs[idx].max(1))][:per_class]]


def most_ambiguous(audit: Audit, k: int, per_class: int) -> list[int]:
    """Items judged ambiguous with the smallest margin between their two most likely classes."""
    idx = np.flatnonzero((audit.verdicts == 1) & (audit.labels == k))
    top2 = np.sort(audit.probs[idx], axis=1)[:, -2:]
    return [int(i) for i in idx[np.argsort(top2[:, 1] - top2[:, 0])][:per_class]]


def summary_lines(audit: Audit) -> Sequence[str]:
    counts = audit.counts().sum(0)
    n = int(counts.sum())
    lines = [f"{n} items: " + ", ".join(f"{v} {c} ({c / n:.1%})" for v, c in zip(VERDICTS, counts, strict=True))]
    rec = audit.recognition()
    lines.append(
        f"prediction = submitted label for {rec['accuracy']:.2%}; mean class recall {rec['mean_recall']:.3f} ("
        + ", ".join(f"{c} {r:.3f}" for c, r in rec["recall"].items() if r is not None)
        + ")"
    )
    lines.append("predicted classes: " + ", ".join(f"{c} {share:.1%}" for c, share in rec["predicted_share"].items()))
    quality = audit.quality()
    if quality is not None:
        lines.append(
            f"noisy verdict vs the known corruption: precision {quality['precision']:.3f}, "
            f"recall {quality['recall']:.3f}, F1 {quality['f1']:.3f}"
        )
    return lines
