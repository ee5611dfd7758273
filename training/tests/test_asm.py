"""tri_loss routes every subset to its own term only: clean -> CE, ambiguous -> mutual learning,
noisy -> weak/strong consistency (which never reads the label)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from asm_fer.config import TrainConfig
from asm_fer.data.preprocess import InputSpec
from asm_fer.method.asm import tri_loss
from asm_fer.models.resnet import ResNet

CLEAN, AMBIGUOUS, NOISY = 0, 1, 2


def _loss(cfg: TrainConfig, nets: list[torch.nn.Module], y: torch.Tensor, subset: torch.Tensor) -> dict[str, float]:
    torch.manual_seed(0)
    x01 = torch.rand(12, 1, 48, 48, generator=torch.Generator().manual_seed(3))
    loss, parts = tri_loss(cfg, nets, x01, y, subset, InputSpec(), torch.Generator().manual_seed(5), epoch=4)
    return parts | {"total": loss.item()}


@pytest.fixture(scope="module")
def nets() -> list[torch.nn.Module]:
    torch.manual_seed(1)
    return [ResNet(8, widths=(8, 8, 8, 8), blocks=(1, 1, 1, 1)).eval() for _ in range(2)]


@pytest.mark.parametrize("forward", ["concat", "separate"])
def test_each_subset_reaches_only_its_own_term(nets: list[torch.nn.Module], forward: str) -> None:
    cfg = TrainConfig(forward=forward, epochs=10)
    y = torch.arange(12) % 8
    for code, own in ((CLEAN, "sup"), (AMBIGUOUS, "mut"), (NOISY, "usc")):
        parts = _loss(cfg, nets, y, torch.full((12,), code))
        assert parts[own] > 0, (code, parts)
        assert all(parts[t] == 0 for t in ("sup", "mut", "usc") if t != own), (code, parts)


@pytest.mark.parametrize("forward", ["concat", "separate"])
def test_relabelling_one_subset_moves_only_its_term(nets: list[torch.nn.Module], forward: str) -> None:
    cfg = TrainConfig(forward=forward, epochs=10)
    y = torch.arange(12) % 8
    subset = torch.tensor([CLEAN] * 4 + [AMBIGUOUS] * 4 + [NOISY] * 4)
    base = _loss(cfg, nets, y, subset)
    for code, own in ((CLEAN, "sup"), (AMBIGUOUS, "mut"), (NOISY, None)):
        moved = _loss(cfg, nets, torch.where(subset == code, (y + 3) % 8, y), subset)
        for term in ("sup", "mut", "usc"):
            if term == own:
                assert moved[term] != pytest.approx(base[term]), (code, term)
            else:
                assert moved[term] == pytest.approx(base[term]), (code, term)


def test_weights_scale_the_terms(nets: list[torch.nn.Module]) -> None:
    y = torch.arange(12) % 8
    subset = torch.tensor([CLEAN] * 4 + [AMBIGUOUS] * 4 + [NOISY] * 4)
    parts = _loss(TrainConfig(omega=0.6, gamma=2.0, epochs=10), nets, y, subset)
    assert parts["total"] == pytest.approx(parts["sup"] + 0.6 * parts["mut"] + 2.0 * parts["usc"], rel=1e-5)


def test_a_short_schedule_runs_the_recipe_at_its_own_speed(ferplus_root: Path, tmp_path: Path) -> None:
    import json

    from asm_fer.fixtures import tiny_config
    from asm_fer.method.losses import mutual_weight
    from asm_fer.train import train

    cfg = dataclasses.replace(
        tiny_config(ferplus_root, tmp_path / "run"),
        method="asm",
        noise="sym-0.3",
        epochs=4,
        warmup_epochs=2,
        schedule_epochs=20,
        lr=1e-2,
        lr_decay=0.9,
    )
    assert cfg.epoch_lr_decay == pytest.approx(0.9**5)
    train(cfg)
    rows = [json.loads(line) for line in (Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        assert r["lr"] == pytest.approx(1e-2 * 0.9 ** (5 * (r["epoch"] - 1)), rel=1e-6)
    assert [r["lambda"] for r in rows if "lambda" in r] == pytest.approx([mutual_weight(t, 20) for t in (3, 4)])
    assert mutual_weight(4, 20) == pytest.approx(0.9 * 2.718281828 ** (-0.65 * (1 - 4 / 18) ** 2))
    assert {"wrong", "wrong_true", "right"} <= set(rows[-1]["fit"])
