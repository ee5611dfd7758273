from __future__ import annotations

from pathlib import Path

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


def test_report_has_one_row_per_setting(tmp_path: Path) -> None:
    from asm_fer.reports.bench import report

    table = report(tiny_config(tmp_path, tmp_path), peak_seconds=0.05, steps=1).splitlines()
    assert table[0].startswith("fp32 matmul peak")
    assert [[row.split(" | ")[i] for i in (0, 1, 2, 8)] for row in table[4:]] == [
        ["| ce", "contiguous", "fp32", "torch"],
        ["| ce", "channels-last", "fp32", "torch"],
        ["| ce", "channels-last", "bf16", "torch"],
        ["| asm", "channels-last", "fp32", "torch"],
        ["| asm", "channels-last", "fp32", "onnxruntime"],
        ["| asm", "channels-last", "bf16", "onnxruntime"],
    ]
