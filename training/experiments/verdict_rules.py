"""Issue 17: which rule for the `noisy` verdict, and how far can any rule on one bundle's probabilities go?

Every rule flags items of FER2013Valid with crowd-1 labels (one annotator's vote; wrong when it is not a
majority class), seeds 0, 1, 2, from the same probabilities (the bundle's ONNX graph). Rules whose parameters
are fitted are fitted on the bundle's calibration split (training images no network saw), under crowd-1 draws
of its own votes, never on Valid; the rows marked "upper bound" are fitted on the Valid seed they are scored
on, so they say how far a rule of that family could go at best, not what it would do on unseen labels.

  training/.venv/bin/python training/experiments/verdict_rules.py --bundle models/default \
      --data ../shared/data/ferplus [--fit valid-cv] [--json out.json]

--fit calibration (default) needs a bundle with a calibration section; --fit valid-cv (for a bundle trained on
all of Train) fits on one half of Valid and scores the other, both ways, which is out of sample but on Valid.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from asm_fer.audit.audit import bundle_thresholds
from asm_fer.data import scan
from asm_fer.data.dataset import load_images
from asm_fer.data.noise import apply_noise
from asm_fer.data.preprocess import normalise
from asm_fer.export.bundle import input_spec_from, read_bundle
from asm_fer.evaluate import onnx_probs
from asm_fer.method.thresholds import adaptive_thresholds, class_means

GRID = np.round(np.arange(0.02, 0.80, 0.01), 2)


@dataclass(frozen=True)
class Split:
    probs: np.ndarray  # (N, K)
    labels: np.ndarray  # (N,) the dataset's majority labels
    votes: np.ndarray  # (N, K)


@dataclass(frozen=True)
class Draw:
    """One crowd-1 draw over a split: the submitted labels and which are wrong."""

    probs: np.ndarray
    labels: np.ndarray
    wrong: np.ndarray

    @property
    def p_label(self) -> np.ndarray:
        return np.asarray(self.probs[np.arange(len(self.labels)), self.labels])


def split_probs(bundle: Path, data: Path, split: str, names: set[str] | None = None) -> Split:
    doc = read_bundle(bundle)
    _, samples = scan("ferplus", data, split)
    if names is not None:
        samples = [s for s in samples if s.path.name in names]
    spec = input_spec_from(doc["input"])
    images = load_images(samples, spec, desc=f"decode {split}")
    probs = onnx_probs(bundle / doc["model"]["file"], normalise(images.pixels, spec).numpy())
    return Split(probs, images.labels.numpy(), images.votes)


def draw(split: Split, seed: int) -> Draw:
    k = split.probs.shape[1]
    noisy = apply_noise("crowd-1", split.labels, split.votes, k, seed)
    return Draw(split.probs, noisy.labels, noisy.truly_noisy)


def f1(flag: np.ndarray, wrong: np.ndarray) -> dict[str, float]:
    tp = int((flag & wrong).sum())
    p = tp / flag.sum() if flag.any() else 0.0
    r = tp / wrong.sum() if wrong.any() else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "flagged": int(flag.sum())}


def concat(draws: list[Draw]) -> Draw:
    return Draw(*(np.concatenate([getattr(d, a) for d in draws]) for a in ("probs", "labels", "wrong")))


# --- rule families: fit(draw) -> flag(draw) ---------------------------------------------------------------------

Rule = Callable[[Draw], np.ndarray]


def fixed(t: float) -> Rule:
    return lambda d: d.p_label < t


def per_class(taus: np.ndarray) -> Rule:
    return lambda d: d.p_label < taus[d.labels]


def fit_single(d: Draw) -> Rule:
    best = max(GRID, key=lambda t: f1(d.p_label < t, d.wrong)["f1"])
    return fixed(float(best))


def fit_per_class(d: Draw) -> Rule:
    """tau_k maximising the overall F1, one class at a time from the best single threshold (coordinate ascent,
    two sweeps): a class's own F1 optimum ignores that its flags change the overall precision."""
    k = d.probs.shape[1]
    single = max(GRID, key=lambda t: f1(d.p_label < t, d.wrong)["f1"])
    taus = np.full(k, single)
    for _ in range(2):
        for c in range(k):

            def score(t: float, c: int = c) -> float:
                trial = taus.copy()
                trial[c] = t
                return f1(d.p_label < trial[d.labels], d.wrong)["f1"]

            taus[c] = max(GRID, key=score)
    return per_class(taus.copy())


def fit_atl(d: Draw, normalisation: str) -> Rule:
    """Adaptive Threshold Learning (the bundle's formula) with base 0.2 on this draw's class means."""
    mu = class_means(d.probs, d.labels)
    tau = adaptive_thresholds(mu, base=(0.2, 0.8), normalisation=normalisation)  # type: ignore[arg-type]
    return per_class(tau[:, 0])


def fit_atl_base(d: Draw) -> Rule:
    """Adaptive Threshold Learning's per-class shape (tau_k = T_n * mu_k / max mu, max-normalised) with the base
    T_n chosen to maximise F1 on the fitting draw instead of the paper's 0.2: the formula keeps its
    class-relative shape, the scale comes from data with known noise."""
    rho = class_means(d.probs, d.labels)
    rho = rho / rho.max()
    best = max(GRID, key=lambda t: f1(d.p_label < t * rho[d.labels], d.wrong)["f1"])
    return per_class(float(best) * rho)


def features(d: Draw) -> np.ndarray:
    """What a stacked detector sees: log p, log p(label), log max p - log p(label), entropy, and log p per
    submitted class (so that it can learn which confusions are typical, e.g. anger submitted for disgust)."""
    n, k = d.probs.shape
    logp = np.log(np.clip(d.probs, 1e-7, 1))
    own = logp[np.arange(n), d.labels]
    onehot = np.eye(k)[d.labels]
    entropy = -(d.probs * logp).sum(1)
    cross = (onehot[:, :, None] * logp[:, None, :]).reshape(n, k * k)
    return np.column_stack([logp, own, logp.max(1) - own, entropy, onehot, cross])


def fit_stacked(d: Draw) -> Rule:
    model = LogisticRegression(C=0.5, max_iter=3000).fit(features(d), d.wrong)
    score = model.predict_proba(features(d))[:, 1]
    cut = max(GRID + 0.2, key=lambda t: f1(score >= t, d.wrong)["f1"])
    return lambda e: model.predict_proba(features(e))[:, 1] >= cut


FITTED: dict[str, Callable[[Draw], Rule]] = {
    "single threshold": fit_single,
    "per-class thresholds": fit_per_class,
    "ATL normalisation max": lambda d: fit_atl(d, "max"),
    "ATL normalisation none": lambda d: fit_atl(d, "none"),
    "ATL max, base fitted": fit_atl_base,
    "stacked logistic": fit_stacked,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=Path("models/default"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ferplus"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fit", choices=["calibration", "valid-cv"], default="calibration")
    ap.add_argument("--draws", type=int, default=5, help="crowd-1 draws of the calibration split to fit on")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    doc = read_bundle(args.bundle)
    classes = list(doc["classes"])
    thresholds = bundle_thresholds(doc, classes)
    valid = split_probs(args.bundle, args.data, "valid")
    fitted_on_cal: dict[str, Rule] = {}
    if args.fit == "calibration":
        if "calibration" not in doc:
            raise SystemExit(f"{args.bundle} has no calibration split: use --fit valid-cv")
        cal = split_probs(args.bundle, args.data, "train", set(doc["calibration"]["split"]["ids"]))
        cal_draws = concat([draw(cal, 1000 + i) for i in range(args.draws)])
        print(f"calibration split: {len(cal.probs)} images x {args.draws} crowd-1 draws, {cal_draws.wrong.mean():.1%} wrong")
        fitted_on_cal = {name: fit(cal_draws) for name, fit in FITTED.items()}

    rows: dict[str, list[dict[str, float]]] = {}

    def add(name: str, flags: np.ndarray, d: Draw) -> None:
        rows.setdefault(name, []).append(f1(flags, d.wrong))

    for seed in args.seeds:
        d = draw(valid, seed)
        add("bundle verdict", d.p_label < thresholds[d.labels, 0], d)
        add("fixed 0.2", fixed(0.2)(d), d)
        add("argmax != label", d.probs.argmax(1) != d.labels, d)
        for name, fit in FITTED.items():
            if args.fit == "calibration":
                add(name, fitted_on_cal[name](d), d)
            else:  # two halves of Valid, each scored with the rule fitted on the other
                half = np.random.default_rng(seed).permutation(len(d.labels)) < len(d.labels) // 2
                flags = np.zeros(len(d.labels), dtype=bool)
                for part in (half, ~half):
                    train = Draw(d.probs[~part], d.labels[~part], d.wrong[~part])
                    test = Draw(d.probs[part], d.labels[part], d.wrong[part])
                    flags[part] = fit(train)(test)
                add(name, flags, d)
        add("upper bound: single threshold", fit_single(d)(d), d)
        add("upper bound: per-class thresholds", fit_per_class(d)(d), d)

    print(f"\n{args.bundle} ({doc['version']}), FER2013Valid crowd-1 seeds {args.seeds}, fitted on {args.fit}")
    print(f"{'rule':36s} " + " ".join(f"F1 s{s}" for s in args.seeds) + "   mean F1  precision recall flagged")
    for name, per_seed in rows.items():
        mean = {k: float(np.mean([r[k] for r in per_seed])) for k in per_seed[0]}
        print(
            f"{name:36s} "
            + " ".join(f"{r['f1']:.3f}" for r in per_seed)
            + f"   {mean['f1']:.3f}    {mean['precision']:.3f}    {mean['recall']:.3f}  {mean['flagged']:.0f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"bundle": doc["version"], "fit": args.fit, "seeds": args.seeds, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
