"""Command line: `asm-fer {train,export,bench,audit,report,keep,fixtures}`; every flag documented in `--help`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from .config import ConfigError, RunError, add_config_arguments, config_from_args
from .data import FORMATS
from .data.ferplus import DatasetLayoutError
from .export.bundle import NOISY_BASES, THRESHOLD_SPLITS, TTA_MODES, WEIGHT_DTYPES, BundleError


def _train(args: argparse.Namespace) -> int:
    from .train import train

    cfg = config_from_args(args)
    final = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 alone exports
        from .export.export import export_bundle

        bundle = Path(args.export or Path(cfg.run_dir) / "bundle")
        export_bundle(
            final,
            bundle,
            name=args.name,
            data_root=cfg.data,
            weights=args.weights,
            tta=args.tta,
            thresholds_from=args.thresholds_from,
            noisy_base=args.noisy_base,
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    from .checkpoints import FINAL
    from .export.export import export_bundle

    export_bundle(
        Path(args.run) / FINAL,
        Path(args.out),
        name=args.name,
        data_root=args.data,
        weights=args.weights,
        tta=args.tta,
        thresholds_from=args.thresholds_from,
        noisy_base=args.noisy_base,
        crossfit=[Path(run) / FINAL for run in args.crossfit],
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .reports.bench import report

    print(report(config_from_args(args)))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from .audit.audit import run_audit, summary_lines, write_flagged_csv
    from .reports.audit_report import write_report

    audit = run_audit(
        args.bundle, args.data, fmt=args.format, split=args.split, noise=args.noise, seed=args.seed, limit=args.limit
    )
    args.out.mkdir(parents=True, exist_ok=True)
    flagged = write_flagged_csv(audit, args.out / "flagged.csv")
    title = f"Label audit of {args.data} ({args.split}" + (
        f", labels {args.noise} seed {args.seed})" if args.noise != "none" else ")"
    )
    page = write_report(audit, args.out, title=title, per_class=args.per_class)
    print("\n".join(summary_lines(audit)))
    print(f"{flagged} flagged items in {args.out / 'flagged.csv'}; report: {page}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .reports.report import report

    print(report(args.runs, table=args.table, plot=args.plot))
    return 0


def _keep(args: argparse.Namespace) -> int:
    from .reports.runs import keep

    print(f"kept {keep(args.run, args.into)}")
    return 0


def _peers(args: argparse.Namespace) -> int:
    import json

    from .audit.peers import read_items, report_lines, score

    items = read_items(args.input)
    classes = args.classes.split(",") if args.classes else [str(k) for k in range(items.probs.shape[1])]
    if len(classes) != items.probs.shape[1]:
        raise ConfigError(f"--classes names {len(classes)} classes, the items have {items.probs.shape[1]} probabilities")
    result = score(items, classes)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(report_lines(result)))
    return 0


def _fixtures(args: argparse.Namespace) -> int:
    from .fixtures import make_fixtures

    bundle = make_fixtures(args.out)
    print(f"fixtures written to {args.out} (bundle: {bundle})")
    return 0


def _add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        default="float32",
        choices=WEIGHT_DTYPES,
        help="dtype the ONNX file stores its weights in; float16 halves the file, the graph still computes "
        "in float32 and the bundle's accuracy is measured on it (default: float32)",
    )
    p.add_argument(
        "--tta",
        default="none",
        choices=TTA_MODES,
        help="test-time augmentation inside the graph: flip averages each network's logits on the image and its "
        "mirror image (twice the inference; the thresholds are recomputed through the graph, so runs that mine "
        "refuse it unless they held out a calibration split) (default: none)",
    )
    p.add_argument(
        "--thresholds-from",
        default="auto",
        choices=THRESHOLD_SPLITS,
        help="where Adaptive Threshold Learning gets its class means at export: calibration = the run's held-out "
        "split (--calibration; out-of-sample, as Confident Learning asks), train = the training images (in-sample), "
        "auto = calibration when the run has one. With a calibration split the temperature and the per-class "
        "reliability are always fitted on it (default: auto)",
    )
    p.add_argument(
        "--noisy-base",
        default="paper",
        choices=NOISY_BASES,
        help="the base pair of the thresholds: paper = the run's --t-noisy/--t-clean and mode (Adaptive Threshold "
        "Learning as the paper has it), fitted = the thresholds whose noisy verdict has the best out-of-fold F1 on 5 "
        "draws of injected noise (crowd-1 where the dataset has votes) over 2 folds of the held-out split, among the "
        "run's own, the paper's fixed pair, one fitted shared base pair and mode, and per-class T_n shrunk toward it; "
        "model.json records every candidate's F1 under thresholdLearning.fitted (default: paper)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asm-fer", description="Train FER models and export model bundles.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train on a dataset, checkpoint every epoch, optionally export a bundle")
    add_config_arguments(p)
    p.add_argument(
        "--export", "--out", metavar="DIR", help="bundle folder to export to after training (default: <run-dir>/bundle)"
    )
    p.add_argument("--name", default="ferplus", help="bundle name (used in URLs) (default: ferplus)")
    _add_export_arguments(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("export", help="export a finished run (its final.pt) as a model bundle")
    p.add_argument("--run", required=True, help="run folder holding final.pt")
    p.add_argument("--out", required=True, help="bundle folder to write (model.onnx + model.json)")
    p.add_argument("--name", default="ferplus", help="bundle name (used in URLs) (default: ferplus)")
    p.add_argument(
        "--data", help="dataset root for the Valid accuracy and, with --tta flip, the thresholds (default: the run's --data)"
    )
    _add_export_arguments(p)
    p.add_argument(
        "--crossfit",
        nargs="+",
        metavar="RUN",
        default=[],
        help="the K run folders trained with --calibration-fold 0/K .. K-1/K (same data and seed as --run): fit the "
        "temperature, learn the thresholds and measure the reliability on all their out-of-fold probabilities "
        "instead of on --run's own calibration split (K trainings buy K times the held-out images)",
    )
    p.set_defaults(func=_export)

    p = sub.add_parser("bench", help="E6: training cost on this machine (matmul peak, FLOPs, images/s)")
    add_config_arguments(p)
    p.set_defaults(func=_bench)

    p = sub.add_parser(
        "audit",
        help="audit every labelled image of a dataset split against a bundle's thresholds; writes flagged.csv and report.html",
    )
    p.add_argument("--data", required=True, help="dataset root")
    p.add_argument("--format", default="ferplus", choices=FORMATS, help="dataset layout (default: ferplus)")
    p.add_argument("--split", default="valid", help="split to audit (default: valid)")
    p.add_argument("--bundle", default="models/default", help="model bundle folder (default: models/default)")
    p.add_argument("--out", type=Path, default=Path("audit-report"), help="report folder (default: audit-report)")
    p.add_argument(
        "--noise",
        default="none",
        help="corrupt the labels first to score the verdicts against a known truth: none | sym-<r> | crowd-1 (default: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of --noise (default: 0)")
    p.add_argument("--limit", type=int, default=0, help="audit only the first N images (0 = all) (default: 0)")
    p.add_argument("--per-class", type=int, default=8, help="thumbnails per class and kind (default: 8)")
    p.set_defaults(func=_audit)

    p = sub.add_parser("report", help="E2 table (markdown) of the run folders under the given folders")
    p.add_argument("runs", nargs="+", type=Path, help="run folders or folders holding them (e.g. training/results/e2)")
    p.add_argument(
        "--table",
        default="e2",
        choices=["e2", "regime"],
        help="e2: a row per run (+ recall, seeds); regime: a row per setting over its seeds, with the fit to wrong "
        "labels and the gaps to ce2 and asm-fixed (default: e2)",
    )
    p.add_argument("--plot", type=Path, help="also draw Valid accuracy, wrong-label fit and mining F1 per epoch (PNG)")
    p.set_defaults(func=_report)

    p = sub.add_parser(
        "keep",
        help="copy a finished run's config.json and metrics.jsonl, plus final.json (Valid metrics, thresholds; no "
        "weights), into a folder to commit, e.g. training/results/regime/seed0/sym-0.3-asm",
    )
    p.add_argument("run", type=Path, help="finished run folder (holds final.pt)")
    p.add_argument("--into", type=Path, required=True, help="folder to write")
    p.set_defaults(func=_keep)

    p = sub.add_parser(
        "peers",
        help="score audited items with cleanlab (find_label_issues, label-quality scores at the verdict's budget) "
        "beside the verdict, and the AP / AUROC of each ranking score (issue 17; used by bench/audit-eval.ts)",
    )
    p.add_argument(
        "--in",
        dest="input",
        type=Path,
        required=True,
        help="JSON Lines, one item per line: {probs, label, wrong, noisy[, quality][, handCl]}",
    )
    p.add_argument("--out", type=Path, help="write the scores as JSON here (rules overall and per class, rankings)")
    p.add_argument("--classes", help="comma-separated class names in probability order (for the per-class scores)")
    p.set_defaults(func=_peers)

    p = sub.add_parser(
        "fixtures",
        help="write generated test data: a tiny FER+-layout dataset, a tiny trained "
        "bundle and preprocessing parity vectors (used by the TypeScript tests)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.set_defaults(func=_fixtures)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (DatasetLayoutError, BundleError, ConfigError, RunError, FileNotFoundError) as err:
        parser.exit(2, f"asm-fer: error: {err}\n")
