"""The label-quality parity vectors the service checks itself against (test/audit/label-quality.parity.test.ts):
this test fails when asm_fer.label_quality no longer gives the committed values. Regenerate after a deliberate change
with `.venv/bin/python tests/test_label_quality_parity.py` (from training/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from asm_fer.method.label_quality import QUALITY_SCORES, mistakenness, quality

PARITY_JSON = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "label-quality-parity.json"
TOLERANCE = 1e-12  # the same float64 arithmetic on both sides; only summation order may differ


def cases() -> tuple[np.ndarray, np.ndarray]:
    """Random softmax rows, plus the edges: a one-hot row (0 log 0), a uniform row, a tie for the top class."""
    rng = np.random.default_rng(17)
    k = 8
    logits = rng.normal(0, 2.5, size=(24, k))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # (24, K)
    edges = np.array([np.eye(k)[3], np.full(k, 1 / k), [0.4, 0.4, 0.1, 0.1, 0, 0, 0, 0]])  # (3, K)
    probs = np.concatenate([probs, edges])
    labels = np.concatenate([rng.integers(0, k, size=24), [3, 5, 1]])
    return probs, labels


def expected() -> dict[str, Any]:
    probs, labels = cases()
    return {
        "probabilities": probs.tolist(),
        "labels": labels.tolist(),
        "quality": {score: quality(probs, labels, score).tolist() for score in QUALITY_SCORES},
        "mistakenness": mistakenness(probs, labels).tolist(),
    }


def test_committed_vectors_match_label_quality() -> None:
    committed = json.loads(PARITY_JSON.read_text())
    now = expected()
    assert committed["labels"] == now["labels"]
    np.testing.assert_allclose(committed["probabilities"], now["probabilities"], rtol=0, atol=TOLERANCE)
    for score in QUALITY_SCORES:
        np.testing.assert_allclose(committed["quality"][score], now["quality"][score], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(committed["mistakenness"], now["mistakenness"], rtol=0, atol=TOLERANCE)


if __name__ == "__main__":
    PARITY_JSON.write_text(json.dumps(expected(), indent=1) + "\n")
    print(f"wrote {PARITY_JSON}", file=sys.stderr)
