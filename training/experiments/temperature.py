"""Issue 17: is one temperature enough, or does a temperature per class calibrate better?

The bundle's graph already divides its logits by the scalar T fitted on its calibration split (folded). This
fits, on the same calibration split, a per-class temperature on top of it (softmax(z_k / T_k), z the graph's
log-probabilities; T_k by L-BFGS on the NLL, T = 1 is the folded scalar alone) and scores both on FER2013Valid
(majority labels), which neither fit saw: ECE (15 bins), NLL, and the accuracy (a per-class temperature can
move the argmax, a scalar cannot).

  training/.venv/bin/python training/experiments/temperature.py --bundle DIR --data ../shared/data/ferplus
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from asm_fer.export.bundle import read_bundle
from asm_fer.method.label_quality import ece, log_probs, nll

sys.path.insert(0, str(Path(__file__).parent))
from verdict_rules import split_probs


def scaled(z: np.ndarray, t: np.ndarray) -> np.ndarray:
    s = z / t
    s = s - s.max(1, keepdims=True)
    e = np.exp(s)
    return np.asarray(e / e.sum(1, keepdims=True))


def fit_per_class(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """T_k > 0 minimising the NLL (optimised on log T_k from T_k = 1)."""
    k = z.shape[1]
    res = minimize(lambda log_t: nll(scaled(z, np.exp(log_t)), labels), np.zeros(k), method="L-BFGS-B")
    return np.asarray(np.exp(res.x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ferplus"))
    args = ap.parse_args()
    doc = read_bundle(args.bundle)
    if "calibration" not in doc:
        raise SystemExit(f"{args.bundle} has no calibration split")
    cal = split_probs(args.bundle, args.data, "train", set(doc["calibration"]["split"]["ids"]))
    valid = split_probs(args.bundle, args.data, "valid")
    cal_y, valid_y = cal.labels, valid.labels
    t_k = fit_per_class(log_probs(cal.probs), cal_y)
    print(f"{args.bundle} ({doc['version']}): folded scalar T = {doc['calibration']['temperature']:.3f}")
    print("per-class T_k on top: " + ", ".join(f"{c} {t:.3f}" for c, t in zip(doc["classes"], t_k, strict=True)))
    print("| calibration | split | ECE | NLL | accuracy |\n|---|---|---|---|---|")
    for name, t in (("scalar T (folded)", np.ones(len(t_k))), ("scalar T + per-class T_k", t_k)):
        for split, s, y in (("calibration (fit)", cal, cal_y), ("FER2013Valid", valid, valid_y)):
            p = scaled(log_probs(s.probs), t)
            print(f"| {name} | {split} | {ece(p, y):.4f} | {nll(p, y):.4f} | {(p.argmax(1) == y).mean():.4f} |")


if __name__ == "__main__":
    main()
