"""Exports a trained run (`final.pt`) as a model bundle: the ensemble as one ONNX graph with a dynamic
batch axis, `onnx.checker`, onnxruntime-vs-PyTorch parity on a batch, accuracy of the ONNX graph on
the evaluation split through the service's preprocessing, sha256, and a schema-valid `model.json`.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from .bundle import input_section, sha256_file, write_bundle
from .data import scan
from .data.dataset import load_images
from .data.ferplus import SPLITS
from .evaluate import accuracy, per_class_recall
from .resnet import Ensemble, count_parameters
from .train import input_spec, load_trained
from .transforms import InputSpec, normalise

OPSET = 17
ONNX_FILE = "model.onnx"
OUTPUT = "probabilities"
# float32 graphs reorder reductions differently in onnxruntime and PyTorch; 1e-4 absolute on
# probabilities is far below anything that can move a verdict and far above such reordering noise.
PARITY_ATOL = 1e-4


def code_revision() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def split_name(fmt: str, split: str) -> str:
    """FER+ splits by their folder names (FER2013Valid), others by the split name."""
    return SPLITS[split] if fmt == "ferplus" else split


def export_onnx(model: torch.nn.Module, spec: InputSpec, path: Path) -> None:
    model.eval()
    dummy = torch.zeros(2, spec.channels, spec.height, spec.width)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=[spec.name],
        output_names=[OUTPUT],
        dynamic_axes={spec.name: {0: "batch"}, OUTPUT: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def onnx_probs(path: Path, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Run the exported graph on (N, C, H, W) inputs -> (N, K) probabilities."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = [sess.run([OUTPUT], {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float64)


def check_parity(model: torch.nn.Module, path: Path, x: torch.Tensor) -> float:
    with torch.no_grad():
        expected = model(x).numpy()
    got = onnx_probs(path, x.numpy())
    err = float(np.abs(expected - got).max())
    if err > PARITY_ATOL:
        raise RuntimeError(f"onnxruntime and PyTorch disagree by {err:.2e} (> {PARITY_ATOL}) on {path}")
    return err


def export_bundle(
    final_path: Path | str, out: Path, *, name: str, data_root: str | None = None, eval_split: str = "valid"
) -> dict[str, Any]:
    """Write `out/model.onnx` + `out/model.json` from a `final.pt`; returns the model.json document."""
    cfg, nets, final = load_trained(final_path)
    spec = input_spec(cfg)
    classes: list[str] = final["classes"]
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ONNX_FILE
    ensemble = Ensemble(nets).eval()
    export_onnx(ensemble, spec, onnx_path)

    _, samples = scan(cfg.dataset, data_root or cfg.data, eval_split)
    valid = load_images(samples, spec, desc=f"decode {eval_split}")
    x = normalise(valid.pixels, spec)  # (N, C, H, W)
    err = check_parity(ensemble, onnx_path, x[:64])
    probs = onnx_probs(onnx_path, x.numpy())
    labels = valid.labels.numpy()
    metrics = {
        "accuracy": accuracy(probs, labels),
        "perClassRecall": per_class_recall(probs, labels, classes),
        "samples": len(labels),
        "singleNetworkAccuracy": final["valid"]["singleNetworkAccuracy"],
    }

    means, thresholds, learning = final["class_means"], final["thresholds"], final["threshold_learning"]
    created = datetime.now(UTC).replace(microsecond=0)
    doc: dict[str, Any] = {
        "schemaVersion": 1,
        "name": name,
        "version": f"{cfg.method}-s{cfg.seed}-{created:%Y%m%d%H%M}",
        "model": {
            "file": ONNX_FILE,
            "sha256": "",
            "opset": OPSET,
            "networks": len(nets),
            "architecture": f"ResNet widths={list(cfg.widths)} blocks={list(cfg.blocks)} stem_stride={cfg.stem_stride}",
            "parameters": count_parameters(ensemble),
        },
        "classes": classes,
        "input": input_section(spec),
        "output": {"name": OUTPUT, "kind": "probabilities"},
        "thresholds": {c: {"clean": t[1], "noisy": t[0]} for c, t in zip(classes, thresholds, strict=True)},
        "thresholdLearning": {
            "mode": learning["mode"],
            "base": {"noisy": cfg.t_noisy, "clean": cfg.t_clean},
            "statistic": learning["statistic"],
            "normalisation": learning["normalisation"],
            "source": learning["source"],
            "momentum": learning["momentum"],
            "classMeans": dict(zip(classes, means, strict=True)),
            "epoch": learning["epoch"],
            "split": f"{split_name(cfg.dataset, 'train')} ({learning['split']})",
        },
        "provenance": {
            "dataset": cfg.dataset,
            "trainSplit": split_name(cfg.dataset, "train"),
            "evalSplit": split_name(cfg.dataset, eval_split),
            "noise": cfg.noise,
            "method": cfg.method,
            "seed": cfg.seed,
            "epochs": final["epochs"],
            "metrics": metrics,
            "createdAt": created.isoformat().replace("+00:00", "Z"),
            "codeRevision": code_revision(),
            "config": cfg.to_dict(),
        },
    }

    doc["model"]["sha256"] = sha256_file(onnx_path)
    write_bundle(doc, out)
    print(
        f"ok: {out} ({onnx_path.stat().st_size / 1e6:.1f} MB), {eval_split} accuracy {metrics['accuracy']:.4f} "
        f"on {len(labels)} images, onnxruntime-vs-torch max |diff| {err:.1e}"
    )
    return doc
