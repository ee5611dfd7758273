"""The model bundle (`model.json` + ONNX file): building the document, validating it against
`models/bundle.schema.json`, and reading it back. The schema is the contract with `src/bundle/`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..data.preprocess import InputSpec

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "models" / "bundle.schema.json"
MANIFEST = "model.json"
# How the ONNX file stores its weights (model.weightDtype); the graph computes in float32 either way.
WEIGHT_DTYPES = ("float32", "float16")
# Test-time augmentation inside the graph (model.testTimeAugmentation): none, or flip averaging.
TTA_MODES = ("none", "flip")
THRESHOLD_SPLITS = ("auto", "calibration", "train")
# export --noisy-base: the run's base pair (the paper's [0.2, 0.8]) or one fitted on the held-out split's injected noise
NOISY_BASES = ("paper", "fitted")


class BundleError(ValueError):
    """A bundle whose parts disagree or that does not match the schema."""


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
