"""Probabilities (N, K) of the trained networks on in-memory images, of a network module on its inputs, or of an
exported ONNX graph, and the E1 metrics computed from them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from .data.preprocess import InputSpec, normalise
from .export.bundle import OUTPUT
from .models.frozen import freeze


@torch.no_grad()
def predict_probs(
    nets: Sequence[nn.Module], pixels: torch.Tensor, spec: InputSpec, *, batch_size: int = 512, engine: str = "auto"
) -> np.ndarray:
    """Ensemble probabilities (softmax of the mean of logits), shape (N, K)."""
    run = freeze(nets, normalise(pixels[:2], spec), engine=engine)
    out = [
        torch.softmax(run(normalise(pixels[start : start + batch_size], spec)).mean(0), 1)
        for start in range(0, pixels.shape[0], batch_size)
    ]
    return torch.cat(out).numpy().astype(np.float64)


def torch_probs(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512) -> np.ndarray:
    """`model` (an `Ensemble`, which outputs probabilities) on (N, C, H, W) inputs -> (N, K), float64."""
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).double().numpy()


def onnx_probs(path: Path, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Run the exported graph on (N, C, H, W) inputs -> (N, K) probabilities."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = [sess.run([OUTPUT], {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float64)


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """probs (N, K), labels (N,) -> fraction of argmax == label."""
    return float((probs.argmax(1) == labels).mean()) if len(labels) else 0.0


def per_class_recall(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, float | None]:
    """Recall of each class (None for a class absent from `labels`)."""
    pred = probs.argmax(1)
    out: dict[str, float | None] = {}
    for k, name in enumerate(classes):
        mask = labels == k
        out[name] = float((pred[mask] == k).mean()) if mask.any() else None
    return out


def confusion_matrix(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true label, columns = predicted."""
    return np.bincount(labels * num_classes + probs.argmax(1), minlength=num_classes**2).reshape(num_classes, num_classes)
