"""The real peer of the audit verdict (issue 17): cleanlab itself, on the same probabilities.

Given the probabilities an audit returned, the submitted labels, the truth (which labels are wrong) and the
verdict's `noisy` flags, this scores beside the verdict:

- cleanlab.filter.find_label_issues with its default filter (prune_by_noise_rate) and with confident_learning;
- cleanlab.rank.get_label_quality_scores (self_confidence, normalized_margin) turned into flags at the
  verdict's own budget: the k lowest-scoring items, k = the number the verdict flagged, so the comparison
  is of rankings, not of how many items each rule dares to flag;
- average precision and AUROC of every ranking score at finding the wrong labels (self-confidence, normalized
  margin, FiftyOne's mistakenness, and the service's own `quality` field when the audit returned one);
- why the hand-written Confident Learning rule of bench/audit-eval.ts (t_j = the bundle's training class means,
  flag when any other class j reaches t_j) differs from cleanlab's confident_learning filter (t_j = the mean
  p_j over the audited items labelled j, the confident class is the argmax among those above threshold, and
  an item whose confident class is its label is kept).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..method.label_quality import auroc, average_precision, mistakenness, normalized_margin, prf, self_confidence


@dataclass(frozen=True)
class AuditedItems:
    probs: np.ndarray  # (N, K)
    labels: np.ndarray  # (N,) submitted labels
    wrong: np.ndarray  # (N,) bool, the truth
    noisy: np.ndarray  # (N,) bool, the verdict flagged noisy
    quality: np.ndarray | None = None  # (N,) the service's label-quality score, higher = more likely right
    hand_cl: np.ndarray | None = None  # (N,) bool, the hand-written Confident Learning rule's flags
    other_rules: dict[str, np.ndarray] | None = None  # more rules' flags to score the same way (e.g. fixed 0.2)


def read_items(path: Path) -> AuditedItems:
    """One JSON object per line: {probs: [...], label: int, wrong: bool, noisy: bool, quality?: float, handCl?: bool,
    rules?: {name: bool}} (`rules`: other rules' flags, the same names on every line)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path} holds no items")

    def optional(key: str, dtype: type) -> np.ndarray | None:
        return np.array([r[key] for r in rows], dtype=dtype) if all(key in r for r in rows) else None

    return AuditedItems(
        probs=np.array([r["probs"] for r in rows], dtype=np.float64),
        labels=np.array([r["label"] for r in rows], dtype=np.int64),
        wrong=np.array([r["wrong"] for r in rows], dtype=bool),
        noisy=np.array([r["noisy"] for r in rows], dtype=bool),
        quality=optional("quality", float),
        hand_cl=optional("handCl", bool),
        other_rules={name: np.array([r["rules"][name] for r in rows], dtype=bool) for name in rows[0].get("rules", {})},
    )


def at_budget(scores: np.ndarray, k: int) -> np.ndarray:
    """Flags on the k lowest scores (ties broken by order)."""
    flags = np.zeros(len(scores), dtype=bool)
    flags[np.argsort(scores, kind="stable")[:k]] = True
    return flags


def rule_flags(items: AuditedItems) -> dict[str, np.ndarray]:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels, probs = items.labels, items.probs
    budget = int(items.noisy.sum())
    flags = {"ASM verdict (noisy)": items.noisy}
    flags["cleanlab find_label_issues (default: prune_by_noise_rate)"] = np.asarray(find_label_issues(labels, probs))
    flags["cleanlab find_label_issues (confident_learning)"] = np.asarray(
        find_label_issues(labels, probs, filter_by="confident_learning")
    )
    for method in ("self_confidence", "normalized_margin"):
        scores = np.asarray(get_label_quality_scores(labels, probs, method=method))
        flags[f"cleanlab {method} at the verdict's budget"] = at_budget(scores, budget)
    if items.hand_cl is not None:
        flags["confident learning (hand-written, bundle class means)"] = items.hand_cl
    return flags | (items.other_rules or {})


def rankings(items: AuditedItems) -> dict[str, dict[str, float]]:
    """AP and AUROC at finding the wrong labels, ranking the lowest quality (highest mistakenness) first."""
    wrong = items.wrong
    scores = {
        "self-confidence (cleanlab's default)": -self_confidence(items.probs, items.labels),
        "normalized margin": -normalized_margin(items.probs, items.labels),
        "mistakenness": mistakenness(items.probs, items.labels),
    }
    if items.quality is not None:
        scores["service quality field"] = -items.quality
    return {name: {"averagePrecision": average_precision(s, wrong), "auroc": auroc(s, wrong)} for name, s in scores.items()}


def cl_disagreement(items: AuditedItems, cleanlab_cl: np.ndarray) -> dict[str, int]:
    """Where the hand rule and cleanlab's confident_learning filter differ, and the part of it that the
    thresholds alone explain (the hand rule rerun with cleanlab's on-data t_j)."""
    assert items.hand_cl is not None
    k = items.probs.shape[1]
    on_data_t = np.array([items.probs[items.labels == j, j].mean() if (items.labels == j).any() else 1.0 for j in range(k)])
    others = items.probs >= on_data_t[None, :]
    others[np.arange(len(items.labels)), items.labels] = False
    hand_on_data = others.any(1)
    above = np.where(items.probs >= on_data_t[None, :], items.probs, -np.inf)
    confident = above.argmax(1)
    kept_as_own = np.isfinite(above.max(1)) & (confident == items.labels) & hand_on_data
    return {
        "differ": int((items.hand_cl != cleanlab_cl).sum()),
        "hand only": int((items.hand_cl & ~cleanlab_cl).sum()),
        "cleanlab only": int((~items.hand_cl & cleanlab_cl).sum()),
        "differ by the thresholds (training class means vs on-data t_j)": int((items.hand_cl != hand_on_data).sum()),
        "on-data hand rule flags, confident class is the label (cleanlab keeps)": int(kept_as_own.sum()),
    }


def score(items: AuditedItems, classes: Sequence[str]) -> dict[str, Any]:
    flags = rule_flags(items)
    out: dict[str, Any] = {"items": len(items.labels), "wrong": int(items.wrong.sum()), "rules": {}, "rankings": rankings(items)}
    for name, f in flags.items():
        per_class = {c: prf(f[items.labels == k], items.wrong[items.labels == k]) for k, c in enumerate(classes)}
        out["rules"][name] = {"overall": prf(f, items.wrong), "perClass": per_class}
    if items.hand_cl is not None:
        out["handVsCleanlab"] = cl_disagreement(items, flags["cleanlab find_label_issues (confident_learning)"])
    return out


def report_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        f"{result['items']} items, {result['wrong']} wrong",
        "",
        "| rule | flagged | precision | recall | F1 |",
        "|---|---|---|---|---|",
    ]
    for name, r in result["rules"].items():
        o = r["overall"]
        lines.append(f"| {name} | {o['flagged']} | {o['precision']:.3f} | {o['recall']:.3f} | {o['f1']:.3f} |")
    lines += ["", "| ranking (worst first) | average precision | AUROC |", "|---|---|---|"]
    for name, r in result["rankings"].items():
        lines.append(f"| {name} | {r['averagePrecision']:.3f} | {r['auroc']:.3f} |")
    if "handVsCleanlab" in result:
        lines += ["", "hand-written CL rule vs cleanlab confident_learning: " + json.dumps(result["handVsCleanlab"])]
    return lines
