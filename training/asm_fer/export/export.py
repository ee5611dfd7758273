"""Exports a trained run (`final.pt`) as a model bundle: the ensemble as one ONNX graph with a dynamic
batch axis, `onnx.checker`, onnxruntime-vs-PyTorch parity on a batch, accuracy of the ONNX graph on
the evaluation split through the service's preprocessing, sha256, and a schema-valid `model.json`.

With float16 weights the file stores its large weights as float16, each followed by a Cast to float32:
the file is half the size, while inputs, outputs and all arithmetic stay float32.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch.fx.experimental.optimization import fuse

from ..checkpoints import final_model_thresholds, load_trained
from ..config import TrainConfig
from ..data import scan
from ..data.dataset import load_images
from ..data.ferplus import SPLITS
from ..data.preprocess import InputSpec, normalise
from ..evaluate import accuracy, per_class_recall
from ..method.label_quality import log_probs, softmax_t
from ..method.thresholds import adaptive_thresholds, class_means
from ..models.resnet import Ensemble, count_parameters
from ..run import Data, input_spec, load_data
from .bundle import NOISY_BASES, THRESHOLD_SPLITS, TTA_MODES, WEIGHT_DTYPES, BundleError, input_section, sha256_file, write_bundle
from .calibrate import fit_base, injected_noise, label_quality_section, reliability, temperature_section
from .crossfit import out_of_fold

OPSET = 17
ONNX_FILE = "model.onnx"
OUTPUT = "probabilities"
# float32 graphs reorder reductions differently in onnxruntime and PyTorch; 1e-4 absolute on
# probabilities is far below anything that can move a verdict and far above such reordering noise.
PARITY_ATOL = 1e-4
# A Cast node and the renamed initializer cost about 100 bytes of protobuf; from 256 elements on
# (512 bytes saved) storing float16 pays for them several times over.
FLOAT16_MIN_ELEMENTS = 256


def code_revision() -> str:
    root = Path(__file__).resolve().parents[3]
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


def round_weights_to_float16(model: nn.Module) -> nn.Module:
    """A copy of `model` (eval mode) with each batch norm folded into the convolution before it, as the
    ONNX exporter folds them anyway, and then every floating-point parameter and buffer rounded through
    float16. This is the function a float16-stored graph computes, so it is the reference of the parity
    check. Folding first matters: folding float16-rounded batch-norm statistics in float32 would give
    weights that float16 cannot hold, and storing them would round a second time."""
    fused: nn.Module = fuse(model.eval())  # a deep copy
    with torch.no_grad():
        for t in [*fused.parameters(), *fused.buffers()]:
            if t.is_floating_point():
                t.copy_(t.to(torch.float16).to(t.dtype))
    return fused


def store_float16(model: onnx.ModelProto) -> None:
    """Rewrite each float32 initializer of FLOAT16_MIN_ELEMENTS or more as a float16 initializer followed by
    a Cast to float32 under the original name, so every consumer, the graph's inputs and outputs and the
    arithmetic stay float32. Refuses a value that float16 cannot hold exactly: the weights must have been
    rounded first (`round_weights_to_float16`), so that the rewrite changes no number."""
    casts = []
    for init in model.graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        weights = numpy_helper.to_array(init)
        if weights.size < FLOAT16_MIN_ELEMENTS:
            continue
        half = weights.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), weights):
            raise ValueError(f"initializer {init.name} is not exact in float16: round the weights before export")
        stored = f"{init.name}.float16"
        casts.append(helper.make_node("Cast", [stored], [init.name], name=f"{init.name}.cast", to=TensorProto.FLOAT))
        init.CopyFrom(numpy_helper.from_array(half, stored))
    # Casts first: a graph's nodes must be in topological order.
    nodes = [*casts, *model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def export_onnx(model: nn.Module, spec: InputSpec, path: Path, *, weights: str = "float32") -> None:
    """Export `model` to `path`; with weights="float16", `model` must come from `round_weights_to_float16`."""
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
    graph = onnx.load(str(path))
    if weights == "float16":
        store_float16(graph)
        onnx.save(graph, str(path))
    onnx.checker.check_model(graph, full_check=True)


def onnx_probs(path: Path, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Run the exported graph on (N, C, H, W) inputs -> (N, K) probabilities."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = [sess.run([OUTPUT], {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float64)


def check_parity(model: nn.Module, path: Path, x: torch.Tensor) -> float:
    with torch.no_grad():
        expected = model(x).numpy()
    got = onnx_probs(path, x.numpy())
    err = float(np.abs(expected - got).max())
    if err > PARITY_ATOL:
        raise RuntimeError(f"onnxruntime and PyTorch disagree by {err:.2e} (> {PARITY_ATOL}) on {path}")
    return err


def torch_probs(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).double().numpy()


def architecture(cfg: TrainConfig) -> str:
    if cfg.backbone == "dlib-resnet":  # the resize to the backbone's size is part of the graph
        return f"dlib face-descriptor ResNet at {cfg.backbone_size} px, all-stage head"
    return f"ResNet widths={list(cfg.widths)} blocks={list(cfg.blocks)} stem_stride={cfg.stem_stride}"


def export_bundle(
    final_path: Path | str,
    out: Path,
    *,
    name: str,
    data_root: str | None = None,
    eval_split: str = "valid",
    weights: str = "float32",
    tta: str = "none",
    thresholds_from: str = "auto",
    crossfit: Sequence[Path] = (),
    noisy_base: str = "paper",
) -> dict[str, Any]:
    """Write `out/model.onnx` + `out/model.json` from a `final.pt`; returns the model.json document.
    `weights` is the dtype the ONNX file stores its weights in (WEIGHT_DTYPES); `tta` the test-time
    augmentation built into the graph (TTA_MODES); `thresholds_from` where the class means of the thresholds
    come from (THRESHOLD_SPLITS). A run with a calibration split gets its temperature fitted there and folded
    into the graph, and its label-quality score and per-class reliability measured there. `crossfit` (the
    final.pt files of K runs trained with --calibration-fold 0/K .. K-1/K) replaces that split with all their
    out-of-fold probabilities (crossfit.py). `noisy_base` (NOISY_BASES): the run's base pair and mode (paper), or
    the ones that give the `noisy` verdict its best F1 on injected noise there (fitted; calibrate.fit_base)."""
    if noisy_base not in NOISY_BASES:
        raise ValueError(f"noisy_base must be one of {NOISY_BASES}, got {noisy_base!r}")
    if weights not in WEIGHT_DTYPES:
        raise ValueError(f"weights must be one of {WEIGHT_DTYPES}, got {weights!r}")
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}")
    if thresholds_from not in THRESHOLD_SPLITS:
        raise ValueError(f"thresholds_from must be one of {THRESHOLD_SPLITS}, got {thresholds_from!r}")
    revision = code_revision()  # before this export writes into the tree (models/default is tracked)
    cfg, nets, final = load_trained(final_path)
    oof = out_of_fold(crossfit, like=cfg, tta=tta, data_root=data_root) if crossfit else None
    held_out = cfg.calibration_share > 0 or oof is not None
    if thresholds_from == "train" and oof is not None:
        raise BundleError("--crossfit gives out-of-fold thresholds; --thresholds-from train asks for in-sample ones")
    if noisy_base == "fitted" and (not held_out or thresholds_from == "train"):
        raise BundleError("--noisy-base fitted fits on a held-out split: train with --calibration (or use --crossfit)")
    if thresholds_from == "calibration" and not held_out:
        raise BundleError("--thresholds-from calibration: this run held out no calibration split (train it with --calibration)")
    out_of_sample = held_out and thresholds_from != "train"
    # a mining run's thresholds belong to the probabilities it mined on; flip averaging or a temperature
    # changes them, and only a held-out split can give thresholds for the new ones
    if cfg.mines and not out_of_sample and (tta != "none" or held_out):
        change = f"--tta {tta}" if tta != "none" else "the fitted temperature"
        raise BundleError(
            f"{change} would serve other probabilities than the ones the {cfg.method} run mined its thresholds on; "
            "export it with --tta none, or from a run trained with --calibration (thresholds from that split)"
        )
    spec = input_spec(cfg)
    classes: list[str] = final["classes"]
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ONNX_FILE
    ensemble = Ensemble(nets, flip=tta == "flip").eval()
    data: Data | None = None
    # the run's own split when it is the calibration split, its training images when the thresholds are recomputed
    # in sample (below); a cross-fitted export needs neither
    if (oof is None and held_out) or (not out_of_sample and (tta != "none" or held_out)):
        data = load_data(replace(cfg, data=data_root or cfg.data), save_labels=False)
    calibration: dict[str, Any] | None = None
    if oof is not None:
        cal_labels, cal_votes, raw_probs = oof.labels, oof.votes, oof.probs
        split = {"share": oof.share, "samples": len(oof.names), "ids": oof.names, "folds": oof.folds}
    elif held_out:
        assert data is not None and data.calibration is not None
        cal_x = normalise(data.calibration.pixels, spec)
        cal_labels, cal_votes = data.calibration.labels.numpy(), data.calibration.votes
        raw_probs = torch_probs(ensemble, cal_x)
        split = {"share": cfg.calibration_share, "samples": len(cal_labels), "ids": data.calibration.names}
        split |= {"fold": cfg.calibration_fold} if cfg.fold else {}
    if held_out:
        calibration = {
            "split": {"from": split_name(cfg.dataset, "train"), "seed": cfg.seed, **split},
            **temperature_section(raw_probs, cal_labels),
        }
        ensemble.temperature = calibration["temperature"]
        print(
            f"temperature {calibration['temperature']:.3f} on {len(cal_labels)} calibration images: "
            f"ECE {calibration['ece']['before']:.4f} -> {calibration['ece']['after']:.4f}, "
            f"NLL {calibration['nll']['before']:.4f} -> {calibration['nll']['after']:.4f}"
        )
    reference = round_weights_to_float16(ensemble) if weights == "float16" else ensemble
    export_onnx(reference, spec, onnx_path, weights=weights)

    _, samples = scan(cfg.dataset, data_root or cfg.data, eval_split)
    valid = load_images(samples, spec, desc=f"decode {eval_split}")
    x = normalise(valid.pixels, spec)  # (N, C, H, W)
    err = check_parity(reference, onnx_path, x[:64])
    probs = onnx_probs(onnx_path, x.numpy())
    labels = valid.labels.numpy()
    metrics = {
        "accuracy": accuracy(probs, labels),
        "perClassRecall": per_class_recall(probs, labels, classes),
        "samples": len(labels),
        "singleNetworkAccuracy": final["valid"]["singleNetworkAccuracy"],
    }

    means, thresholds, learning = final["class_means"], final["thresholds"], final["threshold_learning"]
    base = (cfg.t_noisy, cfg.t_clean)
    graph = "exported graph" + (f", {tta} averaged" if tta != "none" else "") + (", temperature folded" if held_out else "")
    cal_probs: np.ndarray | None = None
    if oof is not None:  # the K runs' graphs are not exported: their probabilities at the fitted temperature
        assert calibration is not None
        cal_probs = softmax_t(log_probs(raw_probs), calibration["temperature"])
    elif held_out:
        cal_probs = onnx_probs(onnx_path, cal_x.numpy())
    if out_of_sample:
        # Adaptive Threshold Learning, same formula and options as the run, on probabilities of images no
        # network was fitted on (Confident Learning's out-of-sample requirement)
        assert cal_probs is not None
        mu = class_means(cal_probs, cal_labels, statistic=learning["statistic"])
        if noisy_base == "fitted":
            fitted = fit_base(
                cal_probs,
                cal_labels,
                cal_votes,
                mu,
                seed=cfg.seed,
                base=base,
                mode=learning["mode"],
                normalisation=learning["normalisation"],
            )
            base, learning = fitted.pop("base"), {**learning, "mode": fitted.pop("mode"), "fitted": fitted}
            print(
                f"noisy base fitted on {fitted['draws']} {fitted['noise']} draws: {learning['mode']} T_n {base[0]:.2f} "
                f"(F1 {fitted['f1']:.3f}; the run's base {cfg.t_noisy}: {fitted['runBaseF1']:.3f})"
            )
        tau = adaptive_thresholds(mu, base=base, mode=learning["mode"], normalisation=learning["normalisation"])
        means, thresholds = mu.tolist(), tau.tolist()
        where = (
            f"out-of-fold probabilities of {oof.folds} cross-fitted runs, temperature applied"
            if oof is not None
            else f"calibration split ({cfg.calibration_share:.0%}, never trained on), {graph}"
        )
        learning = {**learning, "split": where}
    elif tta != "none" or held_out:
        # the thresholds of a run that did not mine come from its final model's training-set probabilities;
        # the graph now computes other ones, so they are recomputed through the graph itself
        assert data is not None
        train_probs = onnx_probs(onnx_path, normalise(data.train.pixels, spec).numpy())
        means, thresholds = (a.tolist() for a in final_model_thresholds(cfg, train_probs, data.train.labels.numpy()))
        learning = {**learning, "split": f"training set, {graph}, un-augmented"}
    measured: dict[str, Any] = {}
    if held_out:
        assert cal_probs is not None and calibration is not None
        noise, noisy = injected_noise(cal_labels, cal_votes, len(classes), cfg.seed)
        measured = {
            "calibration": calibration,
            "labelQuality": label_quality_section(cal_probs, noisy, noise),
            "reliability": {
                "noise": noise,
                "seed": cfg.seed,
                "samples": len(cal_labels),
                "perClass": reliability(cal_probs, noisy, np.asarray(thresholds), classes),
            },
        }
        print(
            f"label-quality score: {measured['labelQuality']['score']} "
            f"(average precision {measured['labelQuality']['averagePrecision']})"
        )
        for c, r in measured["reliability"]["perClass"].items():
            print(
                f"  {c:10s} {noise}: {r['submitted']:5d} submitted, {r['mislabelled']:4d} wrong, {r['flagged']:4d} noisy, "
                f"precision {r['precision']}, recall {r['recall']}"
            )
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
            "architecture": architecture(cfg),
            "parameters": count_parameters(ensemble),
            "weightDtype": weights,
            "testTimeAugmentation": tta,
        },
        "classes": classes,
        "input": input_section(spec),
        "output": {"name": OUTPUT, "kind": "probabilities"},
        "thresholds": {c: {"clean": t[1], "noisy": t[0]} for c, t in zip(classes, thresholds, strict=True)},
        "thresholdLearning": {
            "mode": learning["mode"],
            "base": {"noisy": base[0], "clean": base[1]},
            "statistic": learning["statistic"],
            "normalisation": learning["normalisation"],
            "source": learning["source"],
            "momentum": learning["momentum"],
            "classMeans": dict(zip(classes, means, strict=True)),
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
            "epochs": final["epochs"],
            "metrics": metrics,
            "createdAt": created.isoformat().replace("+00:00", "Z"),
            "codeRevision": revision,
            "config": cfg.to_dict(),
        },
    }

    doc["model"]["sha256"] = sha256_file(onnx_path)
    write_bundle(doc, out)
    print(
        f"ok: {out} ({onnx_path.stat().st_size / 1e6:.1f} MB, {weights} weights, test-time augmentation {tta}), "
        f"{eval_split} accuracy {metrics['accuracy']:.4f} on {len(labels)} images, onnxruntime-vs-torch max |diff| {err:.1e}"
    )
    return doc
