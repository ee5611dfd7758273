"""Training curves from a run's `metrics.jsonl`, written as `curves.png` beside it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs on servers and in CI
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .runs import RunRow


def _save(fig: Figure, metrics: Path, out: Path, *, title: str | None = None) -> Path:
    for ax in fig.axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # every x axis here counts epochs
    fig.suptitle(title or metrics.parent.name)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_curves(metrics: Path, out: Path) -> Path:
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["loss"] for r in rows], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_acc.plot(epochs, [r["train_accuracy"] for r in rows], marker="o", label="train (augmented)")
    ax_acc.plot(epochs, [r["valid_accuracy"] for r in rows], marker="o", label="valid")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_acc.legend()
    return _save(fig, metrics, out)


def plot_mining(metrics: Path, out: Path) -> Path | None:
    """Per-class thresholds, subset sizes and (with a known noise mask) mining precision/recall over
    the mining epochs; None when the run has not mined yet."""
    rows = [r for r in (json.loads(line) for line in metrics.read_text().splitlines() if line.strip()) if "thresholds" in r]
    if not rows:
        return None
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name in rows[0]["thresholds"]:
        # markers, so that the first mining epoch (a single point) shows
        line = axes[0].plot(epochs, [r["thresholds"][name]["clean"] for r in rows], marker="o", label=name)[0]
        axes[0].plot(epochs, [r["thresholds"][name]["noisy"] for r in rows], marker="o", linestyle="--", color=line.get_color())
    axes[0].set(xlabel="epoch", ylabel="threshold", title="tau_c (solid), tau_n (dashed) per class")
    axes[0].legend(fontsize=7)
    for subset in ("clean", "ambiguous", "noisy"):
        axes[1].plot(epochs, [r["subsets"][subset] for r in rows], marker="o", label=subset)
    axes[1].set(xlabel="epoch", ylabel="samples", title="subset sizes")
    axes[1].legend()
    if "mining" in rows[-1]:
        for key in ("precision", "recall", "f1", "noisy_kept_clean"):
            axes[2].plot(epochs, [r["mining"][key] for r in rows], marker="o", label=key)
        axes[2].legend()
    else:
        axes[2].text(0.5, 0.5, "no known noise mask to score against", ha="center", transform=axes[2].transAxes)
    axes[2].set(xlabel="epoch", title="noisy subset vs. planted noise", ylim=(0, 1))
    return _save(fig, metrics, out)


def plot_regime(rows: Sequence[RunRow], out: Path, *, title: str = "") -> Path:
    """Per label set (a row of panels), over epochs and for each method (seed 0, or the lowest seed):
    Valid accuracy, the share of wrong labels the model fits, and mining F1."""
    noises = sorted({r.noise for r in rows if r.curve})
    fig, axes = plt.subplots(len(noises), 3, figsize=(15, 4 * len(noises)), squeeze=False)
    for ax_row, noise in zip(axes, noises, strict=True):
        runs = sorted((r for r in rows if r.noise == noise and r.curve), key=lambda r: (r.method, r.options, r.seed))
        shown: set[tuple[str, str]] = set()
        for r in runs:
            if (r.method, r.options) in shown:
                continue
            shown.add((r.method, r.options))
            label = r.method + (f" ({r.options})" if r.options else "") + f", seed {r.seed}"
            epochs = [c["epoch"] for c in r.curve]
            line = ax_row[0].plot(epochs, [c["valid"] for c in r.curve], label=label)[0]
            fit = [(c["epoch"], c["fit_wrong"]) for c in r.curve if c["fit_wrong"] is not None]
            if fit:
                ax_row[1].plot(*zip(*fit, strict=True), color=line.get_color(), label=label)
            f1 = [(c["epoch"], c["mining_f1"]) for c in r.curve if c["mining_f1"] is not None]
            if f1:
                ax_row[2].plot(*zip(*f1, strict=True), color=line.get_color(), label=label)
        ax_row[0].set(xlabel="epoch", ylabel="Valid accuracy", title=f"{noise}: Valid accuracy")
        ax_row[1].set(xlabel="epoch", ylabel="share", title=f"{noise}: wrong labels fitted (memorised)", ylim=(0, 1))
        ax_row[2].set(xlabel="epoch", ylabel="F1", title=f"{noise}: noisy subset vs. true noise", ylim=(0, 1.03))
        for ax in ax_row:
            if ax.lines:
                ax.legend(fontsize=7)
    return _save(fig, out, out, title=title or "Valid accuracy, wrong labels fitted and mining F1 per epoch")
