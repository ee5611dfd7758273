"""The run's plots show what one epoch logged: a first mining epoch is a single point, and epochs are whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from asm_fer.reports import plots

CLASSES = ("neutral", "happiness", "surprise")


def _row(epoch: int, *, mined: bool) -> dict[str, object]:
    row: dict[str, object] = {"epoch": epoch, "loss": 2.0 - epoch / 10, "train_accuracy": 0.2, "valid_accuracy": 0.3}
    if mined:
        row["thresholds"] = {c: {"noisy": 0.2 - k / 100, "clean": 0.8 - k / 25} for k, c in enumerate(CLASSES)}
        row["subsets"] = {"clean": 10, "ambiguous": 20, "noisy": 30}
        row["mining"] = {"precision": 0.5, "recall": 0.4, "f1": 0.44, "noisy_kept_clean": 0.1}
    return row


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures the plot functions draw, kept open instead of closed after saving."""
    figures: list[Figure] = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    return figures


def test_one_mining_epoch_draws_a_point_per_threshold_and_epochs_are_whole(tmp_path: Path, drawn: list[Figure]) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(_row(e, mined=e > 1)) + "\n" for e in (1, 2)))
    assert plots.plot_mining(metrics, tmp_path / "mining.png") is not None
    thresholds = drawn[0].axes[0]
    shown = [line for line in thresholds.get_lines() if len(line.get_xdata()) == 1 and line.get_marker() not in ("None", "")]
    assert len(shown) == 2 * len(CLASSES)  # tau_c and tau_n of every class
    plots.plot_curves(metrics, tmp_path / "curves.png")
    for fig in drawn:
        for ax in fig.axes:
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
