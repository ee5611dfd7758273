"""How far each training view moves a trained model (issue 16): accuracy and share of `neutral` predictions
of a bundle on a class-stratified subset of FER+ Train, on the plain images, the weak view and both strong
views (`man`, the default, and `harsh`, the view before issue 16). Seeded; prints a markdown table.

    training/.venv/bin/python training/experiments/strong_views.py [BUNDLE] [DATA] [N]
    # defaults: models/default ../shared/data/ferplus 5000
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from asm_fer.data import scan
from asm_fer.data.dataset import load_images, stratified_limit
from asm_fer.data.preprocess import normalise
from asm_fer.data.views import strong_view, weak_view
from asm_fer.export.bundle import input_spec_from, read_bundle


def main(bundle: Path, data_root: str, n: int) -> None:
    spec = input_spec_from(read_bundle(bundle)["input"])
    _, samples = scan("ferplus", data_root, "train")
    data = load_images(stratified_limit(samples, n, seed=0), spec, desc="decode train")
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    labels, x01 = data.labels.numpy(), data.pixels / 255
    print(f"{len(labels)} Train images; true share of neutral {(labels == 0).mean():.3f}\n")
    print("| view | accuracy | share predicted neutral |\n|---|---|---|")
    for view in ("plain", "weak", "man", "harsh"):
        gen = torch.Generator().manual_seed(0)
        v = x01 if view == "plain" else weak_view(x01, gen) if view == "weak" else strong_view(x01, gen, view)
        x = normalise(v * 255, spec).numpy().astype(np.float32)
        probs = np.concatenate([session.run(None, {name: x[i : i + 512]})[0] for i in range(0, len(x), 512)])
        pred = probs.argmax(1)
        shown = view if view in ("plain", "weak") else f"strong ({view})"
        print(f"| {shown} | {(pred == labels).mean():.3f} | {(pred == 0).mean():.3f} |")


if __name__ == "__main__":
    args = sys.argv[1:]
    bundle = Path(args[0] if args else "models/default")
    main(bundle, args[1] if len(args) > 1 else "../shared/data/ferplus", int(args[2]) if len(args) > 2 else 5000)
