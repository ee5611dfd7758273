from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from asm_fer.checkpoints import load_trained
from asm_fer.export.bundle import read_bundle
from asm_fer.export.export import export_bundle
from asm_fer.fixtures import tiny_config
from asm_fer.models.dlib_classifier import DlibClassifier, param_groups
from asm_fer.models.dlib_resnet import load_dlib_resnet
from asm_fer.models.resnet import ResNet
from asm_fer.run import build_nets
from asm_fer.train import train


def test_grey_48px_input_gives_logits_and_trains_the_backbone() -> None:
    net = DlibClassifier(8, size=104)
    logits = net(torch.rand(3, 1, 48, 48) * 2 - 1)
    assert logits.shape == (3, 8)
    logits.sum().backward()
    assert net.backbone.stem.conv.weight.grad is not None and net.fc.weight.grad is not None


def test_refuses_sizes_the_backbone_cannot_take() -> None:
    with pytest.raises(ValueError, match="at least 103 px"):
        DlibClassifier(8, size=96)


def test_param_groups_give_the_backbone_its_own_rate() -> None:
    dlib = DlibClassifier(8)
    head, backbone = param_groups([dlib], backbone_lr=5e-5)
    assert backbone["lr"] == 5e-5 and "lr" not in head
    assert sum(p.numel() for p in backbone["params"]) == 5_614_592  # type: ignore[attr-defined]
    resnet = ResNet(8, widths=(8, 8), blocks=(1, 1))
    (only,) = param_groups([resnet], backbone_lr=5e-5)
    assert only["params"] == list(resnet.parameters())


def test_build_nets_starts_from_face_apis_weights(ferplus_root: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(tiny_config(ferplus_root, tmp_path), backbone="dlib-resnet", method="ce2")
    nets = build_nets(cfg, 8)
    expected = load_dlib_resnet().state_dict()
    assert len(nets) == 2
    for net in nets:
        assert isinstance(net, DlibClassifier) and net.size == 112
        for name, value in net.backbone.state_dict().items():
            assert torch.equal(value, expected[name]), name


def test_dlib_run_trains_and_exports_a_48px_bundle(ferplus_root: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(tiny_config(ferplus_root, tmp_path / "run"), backbone="dlib-resnet", epochs=1, lr=1e-3)
    final = train(cfg)
    _, nets, _ = load_trained(final)
    assert isinstance(nets[0], DlibClassifier)
    # float16 weights: the shipped recipe's export, whose reference goes through torch.fx fusion
    doc = export_bundle(final, tmp_path / "bundle", name="dlib", data_root=str(ferplus_root), weights="float16")
    assert doc["model"]["architecture"] == "dlib face-descriptor ResNet at 112 px, all-stage head"
    section = read_bundle(tmp_path / "bundle")["input"]
    assert (section["channels"], section["height"], section["width"]) == (1, 48, 48)
