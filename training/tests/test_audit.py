from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from asm_fer.audit.audit import VERDICTS, run_audit, write_flagged_csv
from asm_fer.cli import main


def test_verdicts_follow_the_bundle_thresholds(fixtures: Path) -> None:
    audit = run_audit(fixtures / "bundle", fixtures / "ferplus", noise="sym-0.3", seed=1)
    p, (tau_n, tau_c) = audit.label_prob, audit.thresholds[audit.labels].T
    expected = np.where(p >= tau_c, 0, np.where(p < tau_n, 2, 1))
    assert np.array_equal(audit.verdicts, expected)
    assert audit.counts().sum() == len(audit.samples) == 40
    assert audit.confusion().sum() == 40
    assert audit.truly_noisy is not None and audit.truly_noisy.sum() == 16  # round(0.3 * 5) in each class
    quality = audit.quality()
    assert quality is not None and quality["precision"] > 0.3  # above the planted noise rate


def test_recognition_figures_of_the_majority_labels_are_the_bundles_own(fixtures: Path) -> None:
    audit = run_audit(fixtures / "bundle", fixtures / "ferplus")
    rec = audit.recognition()
    metrics = audit.bundle["provenance"]["metrics"]
    assert rec["accuracy"] == metrics["accuracy"]
    assert rec["recall"] == metrics["perClassRecall"]
    assert rec["mean_recall"] == np.mean([r for r in metrics["perClassRecall"].values() if r is not None])
    assert sum(rec["predicted_share"].values()) == pytest.approx(1.0)
    assert rec["predicted_share"]["neutral"] == float((audit.predicted == 0).mean())


def test_flagged_csv_lists_every_non_clean_item_noisy_first(fixtures: Path, tmp_path: Path) -> None:
    audit = run_audit(fixtures / "bundle", fixtures / "ferplus", noise="sym-0.3", seed=1)
    n = write_flagged_csv(audit, tmp_path / "flagged.csv")
    with (tmp_path / "flagged.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert n == len(rows) == int((audit.verdicts != 0).sum()) > 0
    verdicts = [r["verdict"] for r in rows]
    assert verdicts == sorted(verdicts, key=lambda v: -VERDICTS.index(v))
    assert {r["truly_noisy"] for r in rows} <= {"0", "1"}


def test_report_page_shows_tables_and_thumbnails_in_a_browser(fixtures: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert (
        main(
            [
                "audit",
                "--data",
                str(fixtures / "ferplus"),
                "--bundle",
                str(fixtures / "bundle"),
                "--noise",
                "sym-0.3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "the report test needs Debian's chromium (make test installs it)"
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            (out / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert dom.count("<table") == 2
    assert re.search(r"<tbody>(<tr>(<td>[^<]*(<span[^>]*>\d+</span>)?</td>)+</tr>){8}</tbody>", dom)
    status = re.search(r'<p id="status">(\d+) of (\d+) thumbnails shown</p>', dom)
    assert status and status.group(1) == status.group(2) and int(status.group(1)) > 0
