from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from asm_fer.checkpoints import FINAL
from asm_fer.cli import main
from asm_fer.fixtures import tiny_config
from asm_fer.reports.runs import find_runs
from asm_fer.train import train


def test_report_tabulates_finished_and_running_runs(
    ferplus_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    base = dataclasses.replace(tiny_config(ferplus_root, runs / "none-ce"), epochs=2)
    train(base)
    train(dataclasses.replace(base, run_dir=str(runs / "sym-asm"), method="asm", noise="sym-0.3", warmup_epochs=1, epochs=3))
    sym_none = dataclasses.replace(base, method="asm", noise="sym-0.3", warmup_epochs=1, epochs=2, normalisation="none")
    train(dataclasses.replace(sym_none, run_dir=str(runs / "sym-asm-none")))
    shutil.copytree(runs / "none-ce", runs / "none-ce2")
    (runs / "none-ce2" / FINAL).unlink()  # an interrupted run: metrics but no final checkpoint

    rows = find_runs([runs])
    assert [(r.noise, r.method, r.finished) for r in rows] == [
        ("none", "ce", True),
        ("none", "ce", False),
        ("sym-0.3", "asm", True),
        ("sym-0.3", "asm", True),
    ]
    asm = rows[2]
    assert asm.epochs_done == 3 and asm.mining is not None and 0.25 < (asm.noise_rate or 0) < 0.35

    assert main(["report", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "| sym-0.3 | asm | 1 | 3/3 |" in out
    assert "| sym-0.3 | asm | 1, normalisation=none | 2/2 |" in out
    assert "| none | ce | — | 2/2 (unfinished) | — |" in out
    assert "Per-class Valid recall" in out
    # every finished run gets a recall row, noisy label sets included, ending in the mean over the classes
    recall_rows = {
        line.split(" | ")[1]: line
        for line in out.splitlines()
        if line.startswith(("| none | ", "| sym-0.3 | ")) and line.count("|") == 12
    }
    assert set(recall_rows) == {"ce", "asm", "asm (normalisation=none)"}
    cells = [float(c) for c in recall_rows["ce"].strip("| ").split(" | ")[2:]]
    assert cells[-1] == pytest.approx(sum(cells[:-1]) / 8, abs=2e-3)


def test_report_without_runs_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path)])
    assert exc.value.code == 2


def test_report_summarises_settings_run_at_several_seeds(
    ferplus_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    ce = dataclasses.replace(tiny_config(ferplus_root, runs / "ce-s0"), noise="sym-0.3", epochs=1)
    asm = dataclasses.replace(ce, method="asm", warmup_epochs=1, epochs=2, normalisation="none")
    for seed in (0, 1):
        train(dataclasses.replace(ce, seed=seed, run_dir=str(runs / f"ce-s{seed}")))
        train(dataclasses.replace(asm, seed=seed, run_dir=str(runs / f"asm-s{seed}")))
    train(dataclasses.replace(ce, method="ce2", run_dir=str(runs / "ce2-s0")))  # one seed: no summary row

    acc = {(r.method, r.seed): 100 * (r.final_accuracy or 0.0) for r in find_runs([runs])}
    assert main(["report", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "| sym-0.3 | ce | seed 1 | 1/1 |" in out and "| sym-0.3 | asm | 1, normalisation=none, seed 1 | 2/2 |" in out
    summary = out.split("Across seeds, final Valid accuracy:")[1]
    rows = {line.split(" | ")[1]: line for line in summary.strip().splitlines()[2:]}
    assert set(rows) == {"ce", "asm"}
    ce_mean = (acc["ce", 0] + acc["ce", 1]) / 2
    assert f"| 0, 1 | {acc['ce', 0]:.2f} / {acc['ce', 1]:.2f} | {ce_mean:.2f} ± " in rows["ce"]
    gap = (acc["asm", 0] - acc["ce", 0] + acc["asm", 1] - acc["ce", 1]) / 2
    assert rows["asm"].endswith(f"| {gap:+.2f} (min {min(acc['asm', s] - acc['ce', s] for s in (0, 1)):+.2f}, 2 seeds) |")


def test_kept_results_rebuild_the_regime_table_without_checkpoints(
    ferplus_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, kept = tmp_path / "runs", tmp_path / "results"
    base = dataclasses.replace(tiny_config(ferplus_root, runs / "x"), noise="sym-0.3", epochs=3, warmup_epochs=1)
    for method in ("ce2", "asm", "oracle", "asm-fixed"):
        train(dataclasses.replace(base, method=method, run_dir=str(runs / method)))
        assert main(["keep", str(runs / method), "--into", str(kept / method)]) == 0
    assert sorted(p.name for p in (kept / "asm").iterdir()) == ["config.json", "final.json", "metrics.jsonl"]
    with pytest.raises(SystemExit) as exc:  # a run that has not finished: a clear error, nothing written
        main(["keep", str(runs / "nothing"), "--into", str(kept / "nothing")])
    assert exc.value.code == 2 and not (kept / "nothing").exists()

    from_runs = {(r.method, r.final_accuracy, r.noise_rate, r.best_accuracy) for r in find_runs([runs])}
    rows = find_runs([kept])
    assert {(r.method, r.final_accuracy, r.noise_rate, r.best_accuracy) for r in rows} == from_runs
    oracle = next(r for r in rows if r.method == "oracle")
    assert oracle.mining is not None and oracle.mining["precision"] == 1.0 and oracle.mining["recall"] == 1.0
    assert all(c["fit_wrong"] is not None for r in rows for c in r.curve)

    plot = tmp_path / "regime.png"
    capsys.readouterr()
    assert main(["report", str(kept), "--table", "regime", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    acc = {r.method: 100 * (r.final_accuracy or 0) for r in rows}
    line = next(x for x in out.splitlines() if x.startswith("| sym-0.3 | asm | "))
    assert f"| {acc['asm'] - acc['ce2']:+.2f} (1 seeds) | {acc['asm'] - acc['asm-fixed']:+.2f} (1 seeds) |" in line
    assert plot.stat().st_size > 10_000
