from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from asm_fer.models.dlib_resnet import DlibResNet, dlib_input, face_api_manifest, load_dlib_resnet, tfjs_state_dict
from asm_fer.models.tfjs_weights import WeightsError, read_tfjs_weights

PARITY = Path(__file__).parent / "parity"
# face-api (TF.js cpu kernels, float32) and PyTorch sum the same products in other orders: measured
# 2.2e-7 max |diff| (4 inputs) on descriptor components of about 0.1. 1e-4 leaves room for other CPUs' kernels,
# while a layout slip moves some component by 3e-2 or more (measured: BGR input 0.03-0.11 per input, the
# downsampling pad on the top/left instead of the bottom/right 0.08-0.12).
DESCRIPTOR_ATOL = 1e-4
SIZE = 150


def _pattern(name: str) -> np.ndarray:
    """(150, 150, 3) uint8: the integer patterns of make-dlib-vectors.mjs, formula for formula."""
    y, x, c = np.meshgrid(np.arange(SIZE), np.arange(SIZE), np.arange(3), indexing="ij")
    if name == "stripes":
        return ((x * 7 + y * 3 + c * 50) % 256).astype(np.uint8)
    if name == "rings":
        return (((x * x + y * y) // (7 + c)) % 256).astype(np.uint8)
    if name == "noise":
        s, values = 20250101, np.empty(SIZE * SIZE * 3, dtype=np.uint8)
        for i in range(values.size):
            s = (s * 48271) % 2147483647
            values[i] = (s // 256) % 256
        return values.reshape(SIZE, SIZE, 3)
    raise ValueError(name)


def _pixels(entry: dict[str, str]) -> np.ndarray:
    if entry["source"] == "pattern":
        return _pattern(entry["name"])
    return np.asarray(Image.open(PARITY / entry["source"]).convert("RGB"))


def test_descriptors_match_face_api() -> None:
    doc = json.loads((PARITY / "dlib-vectors.json").read_text())
    net = load_dlib_resnet().eval()  # from node_modules: `make test` runs `npm ci` first
    images = np.stack([_pixels(e) for e in doc["inputs"]])  # (N, 150, 150, 3)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()  # (N, 3, 150, 150)
    with torch.no_grad():
        got = net(dlib_input(x)).double().numpy()  # (N, 128)
    expected = np.array([e["descriptor"] for e in doc["inputs"]])
    assert got.shape == expected.shape == (4, 128)
    assert np.abs(got - expected).max() < DESCRIPTOR_ATOL
    # not a degenerate constant: the face lies as far from the patterns as different people lie apart
    assert np.linalg.norm(expected[3] - expected[:3], axis=1).min() > 0.6


def test_parameter_count_is_dlibs() -> None:
    assert sum(p.numel() for p in DlibResNet().parameters()) == 5_614_592


def _write_manifest(folder: Path, weights: list[dict[str, object]], payload: bytes) -> Path:
    (folder / "w.bin").write_bytes(payload)
    manifest = folder / "m.json"
    manifest.write_text(json.dumps([{"paths": ["w.bin"], "weights": weights}]))
    return manifest


def test_reader_dequantises_uint8_and_reads_float32(tmp_path: Path) -> None:
    q = {"dtype": "uint8", "min": -1.0, "scale": 0.5}
    weights = [
        {"name": "a", "shape": [2, 2], "dtype": "float32", "quantization": q},
        {"name": "b", "shape": [3], "dtype": "float32"},
    ]
    payload = bytes([0, 1, 2, 255]) + np.array([1.5, -2.0, 3.25], dtype="<f4").tobytes()
    got = read_tfjs_weights(_write_manifest(tmp_path, weights, payload))
    assert list(got) == ["a", "b"]
    assert got["a"].tolist() == [[-1.0, -0.5], [0.0, 126.5]]
    assert got["b"].dtype == torch.float32 and got["b"].tolist() == [1.5, -2.0, 3.25]


@pytest.mark.parametrize(
    ("payload", "message"),
    [(bytes(3), r"needs bytes 0-4 of group 0, whose shards hold 3"), (bytes(5), r"use 4 bytes of its shards' 5")],
)
def test_reader_refuses_shards_of_the_wrong_size(tmp_path: Path, payload: bytes, message: str) -> None:
    weights = [{"name": "a", "shape": [4], "dtype": "float32", "quantization": {"dtype": "uint8", "min": 0, "scale": 1}}]
    with pytest.raises(WeightsError, match=message):
        read_tfjs_weights(_write_manifest(tmp_path, weights, payload))


def test_reader_names_a_missing_shard(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"paths": ["gone.bin"], "weights": []}]))
    with pytest.raises(WeightsError, match=r"gone\.bin"):
        read_tfjs_weights(manifest)


def test_mapping_names_missing_and_misshaped_weights() -> None:
    state = DlibResNet().state_dict()
    full = {"fc": state["fc.weight"].t()}
    with pytest.raises(WeightsError, match=r"lack 'conv32_down/conv/filters' \(expected shape \[7, 7, 3, 32\]\)"):
        tfjs_state_dict(full)
    full["conv32_down/conv/filters"] = torch.zeros(7, 7, 1, 32)
    with pytest.raises(WeightsError, match=r"shape \[7, 7, 1, 32\], expected \[7, 7, 3, 32\]"):
        tfjs_state_dict(full)


def test_missing_package_names_npm_ci(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="npm ci"):
        face_api_manifest(tmp_path)


@pytest.mark.parametrize("stages", [1, 2])
def test_freeze_stages_trains_only_what_follows(stages: int) -> None:
    """--freeze-stages N: one Adam step changes the head and the later stages and leaves the stem and the
    first N stages exactly at dlib's weights (they get no gradient, so the optimiser never sees them)."""
    from asm_fer.models.dlib_classifier import dlib_classifier, frozen_modules, param_groups

    torch.manual_seed(0)
    net = dlib_classifier(8, size=104, freeze_stages=stages, pretrained=False)
    frozen = {id(p) for m in frozen_modules(net.backbone, stages) for p in m.parameters()}
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    opt = torch.optim.Adam(param_groups([net], backbone_lr=1e-3), lr=1e-3)
    trained = {id(p) for group in opt.param_groups for p in group["params"]}
    assert frozen and not frozen & trained
    loss = torch.nn.functional.cross_entropy(net(torch.randn(4, 1, 48, 48)), torch.tensor([0, 1, 2, 3]))
    loss.backward()  # type: ignore[no-untyped-call]
    opt.step()
    for name, p in net.named_parameters():
        if name.startswith("backbone.fc."):  # the descriptor layer: the classifier pools the stages instead
            continue
        moved = not torch.equal(before[name], p.detach())
        assert moved != (id(p) in frozen), name
    last_frozen = ("conv32_3", "conv64_3")[stages - 1]
    assert not any(p.requires_grad for p in net.backbone.blocks[last_frozen].parameters())
    assert all(p.requires_grad for p in net.backbone.blocks["conv256_down_out"].parameters())


def test_refresh_norm_sets_the_heads_norm_to_the_plain_statistics_of_its_features() -> None:
    """After refresh_norm the head's running mean / variance are the exact (unbiased) statistics of the pooled
    features of the sampled plain images, not a trailing average; the momentum training uses is kept."""
    from asm_fer.data.preprocess import InputSpec, normalise
    from asm_fer.models.dlib_classifier import dlib_classifier, refresh_norm
    from asm_fer.models.resnet import ResNet

    torch.manual_seed(0)
    net = dlib_classifier(8, size=104, pretrained=False)
    net.norm.running_mean.fill_(5.0)  # a stale estimate
    other = ResNet(8, in_channels=1, widths=(4, 8, 8, 8), blocks=(1, 1, 1, 1))
    other_state = {k: v.clone() for k, v in other.state_dict().items()}
    spec = InputSpec(channels=1, height=48, width=48, mean=(0.5,), std=(0.5,))
    pixels = torch.rand(40, 1, 48, 48) * 255
    refresh_norm([net, other], pixels, spec, images=20)
    sample = normalise(pixels[::2][:20], spec)
    with torch.no_grad():  # the classifier's own path: back to pixels, resized, dlib's input, every stage pooled
        up = torch.nn.functional.interpolate((sample * 0.5 + 0.5) * 255, size=(104, 104), mode="bilinear", align_corners=False)
        feats = torch.cat([s.mean((2, 3)) for s in net.backbone.stages(dlib_input(up.expand(-1, 3, -1, -1)))], 1)
    assert torch.allclose(net.norm.running_mean, feats.mean(0), atol=1e-5)
    assert torch.allclose(net.norm.running_var, feats.var(0), rtol=1e-3, atol=1e-7)
    assert net.norm.momentum == 0.1 and not net.training
    for k, v in other.state_dict().items():
        assert torch.equal(v, other_state[k]), k
