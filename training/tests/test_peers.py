from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cleanlab.rank import get_label_quality_scores

from asm_fer.audit.peers import AuditedItems, at_budget, score
from asm_fer.cli import main
from asm_fer.method.label_quality import normalized_margin, self_confidence

CLASSES = ["a", "b", "c", "d"]


def planted(n: int = 400, rate: float = 0.25, seed: int = 0) -> AuditedItems:
    """Confident, mostly right probabilities; a share `rate` of the labels moved to another class."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), truth] += 4
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = truth.copy()
    flip = rng.random(n) < rate
    labels[flip] = (truth[flip] + rng.integers(1, 4, flip.sum())) % 4
    noisy = probs[np.arange(n), labels] < 0.2
    return AuditedItems(probs=probs, labels=labels, wrong=labels != truth, noisy=noisy, hand_cl=probs.argmax(1) != labels)


def test_cleanlab_finds_planted_noise_and_the_budgeted_rules_flag_as_many_as_the_verdict() -> None:
    items = planted()
    result = score(items, CLASSES)
    for name, r in result["rules"].items():
        assert r["overall"]["f1"] > 0.8, name  # the planted labels are far from their probabilities
        if "budget" in name:
            assert r["overall"]["flagged"] == int(items.noisy.sum())
        assert sum(c["flagged"] for c in r["perClass"].values()) == r["overall"]["flagged"]
    for r in result["rankings"].values():
        assert r["averagePrecision"] > 0.8 and r["auroc"] > 0.9


def test_our_label_quality_scores_are_cleanlabs() -> None:
    items = planted(seed=1)
    for ours, method in ((self_confidence, "self_confidence"), (normalized_margin, "normalized_margin")):
        theirs = get_label_quality_scores(items.labels, items.probs, method=method)
        np.testing.assert_allclose(ours(items.probs, items.labels), theirs, atol=1e-12)


def test_a_perfect_ranking_has_average_precision_one() -> None:
    items = planted(seed=2)
    quality = np.where(items.wrong, 0.1, 0.9)
    result = score(AuditedItems(items.probs, items.labels, items.wrong, items.noisy, quality=quality), CLASSES)
    assert result["rankings"]["service quality field"] == {"averagePrecision": 1.0, "auroc": 1.0}


def test_at_budget_flags_the_lowest_scores() -> None:
    assert at_budget(np.array([0.5, 0.1, 0.9, 0.2]), 2).tolist() == [False, True, False, True]


def test_hand_rule_disagreement_is_counted_and_attributed() -> None:
    result = score(planted(seed=3), CLASSES)
    why = result["handVsCleanlab"]
    assert why["differ"] == why["hand only"] + why["cleanlab only"]


def test_cli_reads_json_lines_and_writes_the_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = planted(n=120, seed=4)
    lines = [
        json.dumps({"probs": p.tolist(), "label": int(y), "wrong": bool(w), "noisy": bool(f), "quality": float(p[y])})
        for p, y, w, f in zip(items.probs, items.labels, items.wrong, items.noisy, strict=True)
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["peers", "--in", str(tmp_path / "items.jsonl"), "--out", str(tmp_path / "s.json"), "--classes", "a,b,c,d"]) == 0
    result = json.loads((tmp_path / "s.json").read_text())
    assert set(result["rules"]["ASM verdict (noisy)"]["perClass"]) == set(CLASSES)
    assert "service quality field" in result["rankings"]
    assert "cleanlab find_label_issues (confident_learning)" in capsys.readouterr().out


def test_other_rules_on_each_line_are_scored_like_the_verdict(tmp_path: Path) -> None:
    items = planted(n=120, seed=5)
    fixed = items.probs[np.arange(len(items.labels)), items.labels] < 0.2
    lines = [
        json.dumps({"probs": p.tolist(), "label": int(y), "wrong": bool(w), "noisy": bool(f), "rules": {"fixed 0.2": bool(r)}})
        for p, y, w, f, r in zip(items.probs, items.labels, items.wrong, items.noisy, fixed, strict=True)
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["peers", "--in", str(tmp_path / "items.jsonl"), "--out", str(tmp_path / "s.json"), "--classes", "a,b,c,d"]) == 0
    rules = json.loads((tmp_path / "s.json").read_text())["rules"]
    # `noisy` above is the same p(label) < 0.2 rule, so both rows must score alike
    assert rules["fixed 0.2"] == rules["ASM verdict (noisy)"]
