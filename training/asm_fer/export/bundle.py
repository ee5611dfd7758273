"""The model bundle (`model.json` + ONNX file): the document's sections and where they come from, validating it
against `models/bundle.schema.json`, and reading it back. The schema is the contract with `src/bundle/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..data.ferplus import SPLITS
from ..data.preprocess import InputSpec

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "models" / "bundle.schema.json"
MANIFEST = "model.json"
ONNX_FILE = "model.onnx"
OUTPUT = "probabilities"  # the graph's one output, named in `output`
OPSET = 17
# How the ONNX file stores its weights (model.weightDtype); the graph computes in float32 either way.
WEIGHT_DTYPES = ("float32", "float16")
# Test-time augmentation inside the graph (model.testTimeAugmentation): none, or flip averaging.
TTA_MODES = ("none", "flip")
THRESHOLD_SPLITS = ("auto", "calibration", "train")
# export --noisy-base: the run's base pair (the paper's [0.2, 0.8]) or one fitted on the held-out split's injected noise
NOISY_BASES = ("paper", "fitted")


class BundleError(ValueError):
    """A bundle whose parts disagree or that does not match the schema."""


@dataclass(frozen=True)
class LearnedThresholds:
    """The `thresholds` and `thresholdLearning` sections: what final.pt holds, or what the export learned again."""

    means: list[float]  # (K,) the class means mu_k
    thresholds: list[list[float]]  # (K, 2) as (tau_n, tau_c)
    base: tuple[float, float]  # (T_n, T_c)
    learning: dict[str, Any]  # final.pt's threshold_learning, with the split the export took them from


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def input_section(spec: InputSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "layout": "NCHW",
        "dtype": "float32",
        "channels": spec.channels,
        "height": spec.height,
        "width": spec.width,
        "color": spec.color,
        "resize": "bilinear-fill",
        "scale": spec.scale,
        "mean": list(spec.mean),
        "std": list(spec.std),
    }


def input_spec_from(section: dict[str, Any]) -> InputSpec:
    return InputSpec(
        channels=section["channels"],
        height=section["height"],
        width=section["width"],
        scale=section["scale"],
        mean=tuple(section["mean"]),
        std=tuple(section["std"]),
        name=section["name"],
    )


def validate(doc: dict[str, Any], schema_path: Path = SCHEMA_PATH) -> None:
    """Schema check plus the cross-field rules JSON Schema cannot state."""
    import jsonschema  # here, not at the top: training alone runs where jsonschema is not installed (gpu.sh)

    schema = json.loads(schema_path.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(map(str, e.path)) or "(root)"
        raise BundleError(f"model.json does not match {schema_path.name} at {where}: {e.message}")
    classes = doc["classes"]
    if set(doc["thresholds"]) != set(classes):
        raise BundleError(f"thresholds must have one entry per class {classes}, got {sorted(doc['thresholds'])}")
    for name, t in doc["thresholds"].items():
        if t["noisy"] > t["clean"]:
            raise BundleError(f"threshold of {name}: noisy {t['noisy']} > clean {t['clean']}")
    if len(doc["input"]["mean"]) != doc["input"]["channels"]:
        raise BundleError("input.mean needs one value per channel")


def write_bundle(doc: dict[str, Any], folder: Path) -> Path:
    """Validate, check the ONNX file's sha256 against the document, write `model.json`."""
    validate(doc)
    onnx_path = folder / doc["model"]["file"]
    actual = sha256_file(onnx_path)
    if actual != doc["model"]["sha256"]:
        raise BundleError(f"{onnx_path} has sha256 {actual}, model.json says {doc['model']['sha256']}")
    path = folder / MANIFEST
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def read_bundle(folder: Path | str) -> dict[str, Any]:
    """Load and fully check a bundle folder (schema, cross-field rules, sha256)."""
    folder = Path(folder)
    doc: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    validate(doc)
    actual = sha256_file(folder / doc["model"]["file"])
    if actual != doc["model"]["sha256"]:
        raise BundleError(f"{folder / doc['model']['file']} has sha256 {actual}, model.json says {doc['model']['sha256']}")
    return doc


def code_revision() -> str:
    """The repository's commit (with `-dirty` for uncommitted changes to tracked files); where the tree is a copy
    without git (a lent GPU: training/experiments/gpu.sh), ASM_FER_REVISION as that script recorded it, else unknown."""
    root = Path(__file__).resolve().parents[3]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("ASM_FER_REVISION") or "unknown"
    return rev + ("-dirty" if dirty else "")


def split_name(fmt: str, split: str) -> str:
    """FER+ splits by their folder names (FER2013Valid), others by the split name."""
    return SPLITS[split] if fmt == "ferplus" else split


def architecture(cfg: TrainConfig) -> str:
    if cfg.backbone == "dlib-resnet":  # the resize to the backbone's size is part of the graph
        return f"dlib face-descriptor ResNet at {cfg.backbone_size} px, all-stage head"
    return f"ResNet widths={list(cfg.widths)} blocks={list(cfg.blocks)} stem_stride={cfg.stem_stride}"


def model_section(cfg: TrainConfig, *, networks: int, parameters: int, weights: str, tta: str) -> dict[str, Any]:
    """The `model` section; its sha256 is filled in once the ONNX file is final."""
    return {
        "file": ONNX_FILE,
        "sha256": "",
        "opset": OPSET,
        "networks": networks,
        "architecture": architecture(cfg),
        "parameters": parameters,
        "weightDtype": weights,
        "testTimeAugmentation": tta,
    }


def document(
    cfg: TrainConfig,
    *,
    name: str,
    classes: list[str],
    spec: InputSpec,
    model: dict[str, Any],
    learned: LearnedThresholds,
    measured: dict[str, Any],
    metrics: dict[str, Any],
    epochs: int,
    eval_split: str,
    revision: str,
) -> dict[str, Any]:
    """The `model.json` document of an exported run; `model` is `model_section`'s, `measured` holds the
    calibration, labelQuality and reliability sections (empty without a held-out split)."""
    created = datetime.now(UTC).replace(microsecond=0)
    learning, base = learned.learning, learned.base
    return {
        "schemaVersion": 1,
        "name": name,
        "version": f"{cfg.method}-s{cfg.seed}-{created:%Y%m%d%H%M}",
        "model": model,
        "classes": classes,
        "input": input_section(spec),
        "output": {"name": OUTPUT, "kind": "probabilities"},
        "thresholds": {c: {"clean": t[1], "noisy": t[0]} for c, t in zip(classes, learned.thresholds, strict=True)},
        "thresholdLearning": {
            "mode": learning["mode"],
            "base": {"noisy": base[0], "clean": base[1]},
            "statistic": learning["statistic"],
            "normalisation": learning["normalisation"],
            "source": learning["source"],
            "momentum": learning["momentum"],
            "classMeans": dict(zip(classes, learned.means, strict=True)),
            "epoch": learning["epoch"],
            "split": f"{split_name(cfg.dataset, 'train')} ({learning['split']})",
            **({"fitted": learning["fitted"]} if "fitted" in learning else {}),
        },
        **measured,
        "provenance": {
            "dataset": cfg.dataset,
            "trainSplit": split_name(cfg.dataset, "train"),
            "evalSplit": split_name(cfg.dataset, eval_split),
            "noise": cfg.noise,
            "method": cfg.method,
            "seed": cfg.seed,
            "epochs": epochs,
            "metrics": metrics,
            "createdAt": created.isoformat().replace("+00:00", "Z"),
            "codeRevision": revision,
            "config": cfg.to_dict(),
        },
    }
