from __future__ import annotations

from pathlib import Path

import pytest

from asm_fer.fixtures import tiny_config
from asm_fer.reports.bench import matmul_peak, training_cost


def test_matmul_peak_is_measured() -> None:
    assert matmul_peak(1, n=128, seconds=0.05) > 0


def test_training_cost_counts_flops_of_both_networks(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tmp_path)
    one = training_cost(cfg, steps=1)
    two = training_cost(cfg.__class__(**{**cfg.__dict__, "method": "asm"}), steps=1)
    assert one["networks"] == 1 and two["networks"] == 2
    assert two["flops_per_image"] == 2 * one["flops_per_image"] > 0
    assert one["train_images_per_s"] > 0 and one["mining_images_per_s"] > 0


@pytest.mark.parametrize("units", [True, False])
def test_report_has_one_row_per_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, units: bool) -> None:
    """bf16 rows are measured where the CPU has bf16 units and said skipped elsewhere (a bf16 convolution on the
    reference kernel is 25x slower: the dlib rows of E6 did not finish in 5 minutes)."""
    from asm_fer import device
    from asm_fer.reports import bench

    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: units)
    table = bench.report(tiny_config(tmp_path, tmp_path), peak_seconds=0.05, steps=1).splitlines()
    assert table[0].startswith("CPU: ") and table[1].startswith("fp32 matmul peak")
    rows = [row.split(" | ") for row in table[5:]]
    assert [[r[i] for i in (0, 1, 2)] for r in rows] == [
        ["| ce", "contiguous", "fp32"],
        ["| ce", "channels-last", "fp32"],
        ["| ce", "channels-last", "bf16"],
        ["| asm", "channels-last", "fp32"],
        ["| asm", "channels-last", "fp32"],
        ["| asm", "channels-last", "bf16"],
    ]
    assert [r[8] for r in rows if r[2] == "fp32"] == ["torch", "torch", "torch", "onnxruntime"]
    skipped = [r[3].startswith("skipped") for r in rows if r[2] == "bf16"]
    assert skipped == [not units, not units]
