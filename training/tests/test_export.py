from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from asm_fer.checkpoints import load_trained
from asm_fer.cli import main
from asm_fer.data import scan
from asm_fer.data.dataset import load_images
from asm_fer.data.preprocess import normalise, preprocess_file
from asm_fer.evaluate import onnx_probs
from asm_fer.export.bundle import SCHEMA_PATH, TTA_MODES, WEIGHT_DTYPES, BundleError, input_spec_from, read_bundle, validate
from asm_fer.export.export import export_bundle
from asm_fer.export.graph import FLOAT16_MIN_ELEMENTS, PARITY_ATOL, export_onnx, round_weights_to_float16, store_float16
from asm_fer.models.resnet import Ensemble


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


def calibration_inputs(fixtures: Path, doc: dict) -> tuple[torch.Tensor, np.ndarray]:
    """The bundle's calibration split (by the ids it names) as network inputs, with their labels."""
    spec = input_spec_from(doc["input"])
    ids = set(doc["calibration"]["split"]["ids"])
    _, samples = scan("ferplus", fixtures / "ferplus", "train")
    held = load_images([s for s in samples if s.path.name in ids], spec)
    return normalise(held.pixels, spec), held.labels.numpy()


def test_thresholds_come_from_the_calibration_split_through_the_graph(fixtures: Path) -> None:
    doc = read_bundle(fixtures / "bundle")
    x, labels = calibration_inputs(fixtures, doc)
    probs = onnx_probs(fixtures / "bundle" / "model.onnx", x.numpy())
    means = np.array([probs[labels == k, k].mean() for k in range(len(doc["classes"]))])
    np.testing.assert_allclose([doc["thresholdLearning"]["classMeans"][c] for c in doc["classes"]], means)
    got = np.array([[doc["thresholds"][c]["noisy"], doc["thresholds"][c]["clean"]] for c in doc["classes"]])
    np.testing.assert_allclose(got, np.outer(means / means.max(), [0.2, 0.8]))
    assert "calibration split" in doc["thresholdLearning"]["split"]


def test_in_sample_thresholds_on_request(fixtures: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    export_bundle(fixtures / "run" / "final.pt", out, name="x", data_root=str(fixtures / "ferplus"), thresholds_from="train")
    doc = read_bundle(out)
    assert doc["thresholdLearning"]["split"].startswith("FER2013Train (training set, exported graph, temperature folded")
    assert doc["calibration"]["temperature"] == read_bundle(fixtures / "bundle")["calibration"]["temperature"]
    assert doc["thresholds"] != read_bundle(fixtures / "bundle")["thresholds"]


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
        (lambda d: d["model"].update(weightDtype="int8"), "model/weightDtype"),
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


@pytest.fixture(scope="module")
def float16_bundle(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture run exported again through the CLI, storing float16 weights."""
    out = tmp_path_factory.mktemp("float16") / "bundle"
    run, data = fixtures / "run", fixtures / "ferplus"
    assert main(["export", "--run", str(run), "--out", str(out), "--data", str(data), "--weights", "float16"]) == 0
    return out


def valid_inputs(fixtures: Path) -> torch.Tensor:
    """The fixture's Valid images as the network input, as the export measures them."""
    spec = input_spec_from(read_bundle(fixtures / "bundle")["input"])
    _, samples = scan("ferplus", fixtures / "ferplus", "valid")
    return normalise(load_images(samples, spec).pixels, spec)


def test_float16_bundle_is_smaller_and_float32_at_its_edges(fixtures: Path, float16_bundle: Path) -> None:
    doc = read_bundle(float16_bundle)
    assert doc["model"]["weightDtype"] == "float16"
    assert read_bundle(fixtures / "bundle")["model"]["weightDtype"] == "float32"
    size16 = (float16_bundle / "model.onnx").stat().st_size
    size32 = (fixtures / "bundle" / "model.onnx").stat().st_size
    assert size16 < 0.6 * size32

    graph = onnx.load(str(float16_bundle / "model.onnx"))
    onnx.checker.check_model(graph, full_check=True)
    float_inits = [i for i in graph.graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    half_inits = [i for i in graph.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert half_inits, "no initializer is stored as float16"
    assert all(np.prod(i.dims) < FLOAT16_MIN_ELEMENTS for i in float_inits)
    casts = {n.input[0] for n in graph.graph.node if n.op_type == "Cast"}
    assert casts == {i.name for i in half_inits}

    sess = ort.InferenceSession(str(float16_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(t.name, t.type) for t in sess.get_inputs()] == [("input", "tensor(float)")]
    assert [(t.name, t.type) for t in sess.get_outputs()] == [("probabilities", "tensor(float)")]
    (probs,) = sess.run(["probabilities"], {"input": np.zeros((3, 1, 48, 48), np.float32)})
    assert probs.dtype == np.float32 and probs.shape == (3, 8)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_float16_graph_computes_the_rounded_torch_model(fixtures: Path, float16_bundle: Path) -> None:
    _, nets, _ = load_trained(fixtures / "run" / "final.pt")
    temperature = read_bundle(float16_bundle)["calibration"]["temperature"]
    reference = round_weights_to_float16(Ensemble(nets, temperature=temperature))
    for t in [*reference.parameters(), *reference.buffers()]:
        if t.is_floating_point():
            assert torch.equal(t, t.half().float())
    x = valid_inputs(fixtures)
    with torch.no_grad():
        expected = reference(x).numpy()
    got = onnx_probs(float16_bundle / "model.onnx", x.numpy())
    assert np.abs(expected - got).max() <= PARITY_ATOL


# Rounding each weight to float16 moves it by at most 2^-11 of itself; on the fixture model without a
# temperature that moves a probability by 3.7e-4 at most (measured); 1e-3 leaves room and is still far below
# what could move a verdict. A folded temperature t divides the logits and so scales their rounding error by
# 1/t: the fixture's underconfident model gets t = 0.11-0.15, where 3.9e-4 and 1.1e-3 were measured.
FLOAT16_VS_FLOAT32_ATOL = 1e-3


def test_float16_graph_agrees_with_the_float32_graph(fixtures: Path, float16_bundle: Path) -> None:
    x = valid_inputs(fixtures).numpy()
    p16 = onnx_probs(float16_bundle / "model.onnx", x)
    p32 = onnx_probs(fixtures / "bundle" / "model.onnx", x)
    diff = np.abs(p16 - p32).max()
    t = read_bundle(fixtures / "bundle")["calibration"]["temperature"]
    assert 0 < diff <= FLOAT16_VS_FLOAT32_ATOL / min(t, 1.0)  # 0 would mean the weights were not rounded at all
    np.testing.assert_array_equal(p16.argmax(1), p32.argmax(1))
    metrics16 = read_bundle(float16_bundle)["provenance"]["metrics"]
    assert metrics16["accuracy"] == read_bundle(fixtures / "bundle")["provenance"]["metrics"]["accuracy"]


def test_float16_storage_refuses_weights_that_were_not_rounded(fixtures: Path, tmp_path: Path) -> None:
    _, nets, _ = load_trained(fixtures / "run" / "final.pt")
    path = tmp_path / "model.onnx"
    export_onnx(Ensemble(nets), input_spec_from(read_bundle(fixtures / "bundle")["input"]), path)
    with pytest.raises(ValueError, match="not exact in float16"):
        store_float16(onnx.load(str(path)))


def test_weight_dtypes_are_the_schemas(fixtures: Path) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert tuple(schema["properties"]["model"]["properties"]["weightDtype"]["enum"]) == WEIGHT_DTYPES


def test_tta_modes_are_the_schemas() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert tuple(schema["properties"]["model"]["properties"]["testTimeAugmentation"]["enum"]) == TTA_MODES


@pytest.fixture(scope="module")
def flip_bundle(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture run exported again through the CLI with test-time flip averaging (and float16 weights,
    whose batch-norm folding must see each network once)."""
    out = tmp_path_factory.mktemp("flip") / "bundle"
    run, data = fixtures / "run", fixtures / "ferplus"
    args = ["export", "--run", str(run), "--out", str(out), "--data", str(data), "--tta", "flip", "--weights", "float16"]
    assert main(args) == 0
    return out


def test_flip_averaged_graph_cannot_tell_an_image_from_its_mirror(fixtures: Path, flip_bundle: Path) -> None:
    assert read_bundle(flip_bundle)["model"]["testTimeAugmentation"] == "flip"
    assert read_bundle(fixtures / "bundle")["model"]["testTimeAugmentation"] == "none"
    x = valid_inputs(fixtures).numpy()
    flipped = onnx_probs(flip_bundle / "model.onnx", x)
    np.testing.assert_allclose(flipped, onnx_probs(flip_bundle / "model.onnx", x[..., ::-1].copy()), atol=1e-6)
    plain = onnx_probs(fixtures / "bundle" / "model.onnx", x)
    assert np.abs(plain - onnx_probs(fixtures / "bundle" / "model.onnx", x[..., ::-1].copy())).max() > 1e-3
    # The reference is the float16-rounded network the graph stores, averaged by hand over the image and its
    # mirror: comparing with the float32 network instead would measure rounding amplified by 1/temperature
    # (t = 0.15 on the fixture makes 3.7e-4 become up to 1.1e-3, depending on how the fixture trained).
    _, nets, _ = load_trained(fixtures / "run" / "final.pt")
    net = round_weights_to_float16(nets[0])
    with torch.no_grad():
        logits = (net(torch.from_numpy(x)) + net(torch.from_numpy(x).flip(3))) / 2
    t = read_bundle(flip_bundle)["calibration"]["temperature"]  # fitted on the flip-averaged probabilities
    np.testing.assert_allclose(flipped, torch.softmax(logits / t, 1).numpy(), atol=PARITY_ATOL)


def test_flip_averaged_bundle_carries_thresholds_of_its_own_probabilities(fixtures: Path, flip_bundle: Path) -> None:
    doc = read_bundle(flip_bundle)
    x, labels = calibration_inputs(fixtures, doc)
    probs = onnx_probs(flip_bundle / "model.onnx", x.numpy())
    means = np.array([probs[labels == k, k].mean() for k in range(len(doc["classes"]))])
    np.testing.assert_allclose([doc["thresholdLearning"]["classMeans"][c] for c in doc["classes"]], means)
    got = np.array([[doc["thresholds"][c]["noisy"], doc["thresholds"][c]["clean"]] for c in doc["classes"]])
    np.testing.assert_allclose(got, np.outer(means / means.max(), [0.2, 0.8]))
    plain = read_bundle(fixtures / "bundle")["thresholds"]
    assert any(abs(doc["thresholds"][c]["noisy"] - plain[c]["noisy"]) > 1e-4 for c in doc["classes"])
    assert "flip averaged" in doc["thresholdLearning"]["split"]


def test_flip_averaging_is_refused_for_a_run_that_mined(fixtures: Path, tmp_path: Path) -> None:
    final = torch.load(fixtures / "run" / "final.pt", weights_only=False)
    final["config"]["method"] = "asm"
    final["nets"] = final["nets"] * 2
    (tmp_path / "run").mkdir()
    torch.save(final, tmp_path / "run" / "final.pt")
    with pytest.raises(BundleError, match="--tta flip would serve other probabilities"):
        export_bundle(tmp_path / "run" / "final.pt", tmp_path / "bundle", name="x", tta="flip", thresholds_from="train")
    with pytest.raises(BundleError, match="the fitted temperature would serve other probabilities"):
        export_bundle(tmp_path / "run" / "final.pt", tmp_path / "bundle", name="x", thresholds_from="train")
    # with a held-out split the thresholds are learnt anew for the served probabilities
    doc = export_bundle(
        tmp_path / "run" / "final.pt", tmp_path / "bundle", name="x", data_root=str(fixtures / "ferplus"), tta="flip"
    )
    assert "calibration split" in doc["thresholdLearning"]["split"]


def test_code_revision_without_git_is_the_one_recorded_for_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the tree without .git (training/experiments/gpu.sh on a lent GPU) names the commit gpu-pack.sh
    recorded in ASM_FER_REVISION; without either the bundle says unknown."""
    import subprocess

    from asm_fer.export import bundle

    def no_git(*args: object, **kwargs: object) -> None:
        raise subprocess.CalledProcessError(128, "git")

    monkeypatch.setattr(bundle.subprocess, "run", no_git)
    monkeypatch.setenv("ASM_FER_REVISION", "abc1234")
    assert bundle.code_revision() == "abc1234"
    monkeypatch.delenv("ASM_FER_REVISION")
    assert bundle.code_revision() == "unknown"
