"""Training curves from a run's `metrics.jsonl`, written as `curves.png` beside it."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs on servers and in CI
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def _save(fig: Figure, metrics: Path, out: Path) -> Path:
    for ax in fig.axes:
        ax.grid(alpha=0.3)
    fig.suptitle(metrics.parent.name)
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
        line = axes[0].plot(epochs, [r["thresholds"][name]["clean"] for r in rows], label=name)[0]
        axes[0].plot(epochs, [r["thresholds"][name]["noisy"] for r in rows], linestyle="--", color=line.get_color())
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
    axes[2].set(xlabel="epoch", title="noisy subset vs. planted noise", ylim=(0, 1))
    return _save(fig, metrics, out)
