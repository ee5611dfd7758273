from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from asm_fer.bundle import BundleError, input_spec_from, read_bundle, validate
from asm_fer.transforms import preprocess_file


@pytest.mark.smoke
def test_exported_bundle_is_valid_and_batch_dynamic(fixtures: Path) -> None:
    doc = read_bundle(fixtures / "bundle")
    assert doc["classes"][0] == "neutral" and len(doc["classes"]) == 8
    assert doc["provenance"]["metrics"]["samples"] == 40
    sess = ort.InferenceSession(str(fixtures / "bundle" / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        (probs,) = sess.run(["probabilities"], {"input": np.zeros((batch, 1, 48, 48), np.float32)})
        assert probs.shape == (batch, 8)
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_thresholds_come_from_the_run(fixtures: Path) -> None:
    import torch

    doc = read_bundle(fixtures / "bundle")
    final = torch.load(fixtures / "run" / "final.pt", weights_only=False)
    got = [[doc["thresholds"][c]["noisy"], doc["thresholds"][c]["clean"]] for c in doc["classes"]]
    np.testing.assert_allclose(got, final["thresholds"])
    assert max(t["clean"] for t in doc["thresholds"].values()) == pytest.approx(0.8)


def test_tampered_onnx_is_refused(fixtures: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(fixtures / "bundle", copy)
    with (copy / "model.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="sha256"):
        read_bundle(copy)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["thresholds"].pop("fear"), "one entry per class"),
        (lambda d: d["thresholds"]["fear"].update(noisy=0.9), "noisy 0.9 > clean"),
        (lambda d: d["input"].update(channels=2), "input/channels"),
        (lambda d: d.pop("provenance"), "'provenance' is a required property"),
    ],
)
def test_schema_and_cross_field_rules(fixtures: Path, mutate: object, message: str) -> None:
    doc = json.loads((fixtures / "bundle" / "model.json").read_text())
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(BundleError, match=message.replace("(", "\\(")):
        validate(doc)


def test_parity_vectors_match_preprocessing(fixtures: Path) -> None:
    parity = json.loads((fixtures / "parity" / "parity.json").read_text())
    spec = input_spec_from(read_bundle(fixtures / "bundle")["input"])
    assert parity["input"] == read_bundle(fixtures / "bundle")["input"]
    assert len(parity["cases"]) >= 5
    for case in parity["cases"]:
        tensor = preprocess_file(fixtures / "parity" / case["file"], spec)
        assert list(tensor.shape) == case["shape"][1:]
        np.testing.assert_allclose(tensor.ravel(), case["tensor"], atol=1e-6)
