"""Finished (or running) run folders read back: one `RunRow` per folder, built only from files a run writes
itself (`config.json`, `metrics.jsonl`, `labels.csv`, `final.pt`), and `keep`, which copies the weight-free part
of a finished run into a folder to commit (its `final.json` then stands in for `final.pt`).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoints import FINAL, load_checkpoint
from ..config import METHOD_FIELDS, TrainConfig

METHOD_ORDER = ("ce", "ce2", "asm", "asm-fixed", "codivision", "oracle")
FINAL_JSON = "final.json"  # what `keep` writes beside config.json and metrics.jsonl


@dataclass(frozen=True)
class RunRow:
    """What the E2 table reports of one run."""

    run_dir: Path
    noise: str
    method: str
    warmup_epochs: int | None  # None for the methods that never mine
    options: str  # ASM options that differ from the defaults, e.g. "normalisation=none"
    seed: int
    epochs_done: int
    epochs: int
    final_accuracy: float | None
    best_accuracy: float | None
    best_epoch: int | None
    noise_rate: float | None
    mining: dict[str, float] | None
    per_class_recall: dict[str, float | None] | None
    single_network: list[float] | None
    curve: list[dict[str, Any]]  # per epoch: epoch, valid accuracy, fit to wrong labels, mining F1 where logged

    @property
    def finished(self) -> bool:
        return self.final_accuracy is not None


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _noise_rate(labels_csv: Path) -> float | None:
    if not labels_csv.exists():
        return None
    with labels_csv.open(newline="") as f:
        flags = [row["truly_noisy"] == "1" for row in csv.DictReader(f)]
    return sum(flags) / len(flags) if flags else None


def read_run(run_dir: Path) -> RunRow:
    """One row from a run folder (finished or not)."""
    run_cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    cfg, defaults = run_cfg.to_dict(), TrainConfig().to_dict()
    shown = METHOD_FIELDS - {"method", "warmup_epochs", "warm_start"}
    options = ", ".join(f"{k}={cfg[k]}" for k in sorted(shown) if cfg[k] != defaults[k])
    epochs = [m for m in _read_metrics(run_dir / "metrics.jsonl") if "valid_accuracy" in m]
    mined = [m["mining"] for m in epochs if m.get("mining")]
    best = max(epochs, key=lambda m: m["valid_accuracy"]) if epochs else None
    kept = _read_json(run_dir / FINAL_JSON)
    final: dict[str, Any] | None = kept["valid"] if kept else None
    if final is None and (run_dir / FINAL).exists():
        final = load_checkpoint(run_dir / FINAL)["valid"]
    noise_rate = kept["labelNoise"] if kept else _noise_rate(run_dir / "labels.csv")
    return RunRow(
        run_dir=run_dir,
        noise=cfg["noise"],
        method=cfg["method"],
        warmup_epochs=run_cfg.warmup_epochs if run_cfg.mines else None,
        options=options,
        seed=cfg["seed"],
        epochs_done=len(epochs),
        epochs=cfg["epochs"],
        final_accuracy=final["accuracy"] if final else None,
        best_accuracy=best["valid_accuracy"] if best else None,
        best_epoch=best["epoch"] if best else None,
        noise_rate=noise_rate,
        mining=mined[-1] if mined else None,
        per_class_recall=final["perClassRecall"] if final else None,
        single_network=final["singleNetworkAccuracy"] if final else None,
        curve=[
            {
                "epoch": m["epoch"],
                "valid": m["valid_accuracy"],
                "fit_wrong": m.get("fit", {}).get("wrong"),
                "mining_f1": m.get("mining", {}).get("f1"),
            }
            for m in epochs
        ],
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    return dict(json.loads(path.read_text())) if path.exists() else None


def keep(run_dir: Path, dest: Path) -> Path:
    """Copy what a finished run's table rows are built from into `dest` (meant to be committed):
    config.json and metrics.jsonl as written, and final.json, the Valid section of final.pt with the
    exported thresholds and the actual label-noise rate (no weights, no label table)."""
    if not (run_dir / FINAL).exists():
        raise FileNotFoundError(f"{run_dir / FINAL}: the run has not finished")
    final = load_checkpoint(run_dir / FINAL)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "metrics.jsonl"):
        shutil.copyfile(run_dir / name, dest / name)
    summary = {
        "classes": final["classes"],
        "valid": final["valid"],
        "thresholds": final["thresholds"],
        "thresholdLearning": final["threshold_learning"],
        "labelNoise": _noise_rate(run_dir / "labels.csv"),
    }
    (dest / FINAL_JSON).write_text(json.dumps(summary, indent=1) + "\n")
    return dest


def find_runs(roots: Iterable[Path]) -> list[RunRow]:
    """Every run folder (a folder with config.json) under the given roots, sorted by labels then method."""
    dirs = sorted({p.parent for root in roots for p in Path(root).rglob("config.json")})
    rows = [read_run(d) for d in dirs]

    def key(r: RunRow) -> tuple[int, float, int, int, str, int]:
        rate = float(r.noise.split("-")[1]) if r.noise.startswith("sym-") else (0.0 if r.noise == "none" else 1.0)
        order = METHOD_ORDER.index(r.method) if r.method in METHOD_ORDER else len(METHOD_ORDER)
        return (0 if r.noise == "none" else 1, rate, order, r.warmup_epochs or 0, r.options, r.seed)

    return sorted(rows, key=key)
