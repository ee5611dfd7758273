"""Command line: `asm-fer {train,export,bench,report,fixtures}`; every flag documented in `--help`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from .bundle import BundleError
from .config import add_config_arguments, config_from_args
from .data.ferplus import DatasetLayoutError


def _train(args: argparse.Namespace) -> int:
    from .train import train

    cfg = config_from_args(args)
    final = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 alone exports
        from .export import export_bundle

        export_bundle(final, Path(args.export or Path(cfg.run_dir) / "bundle"), name=args.name, data_root=cfg.data)
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_bundle
    from .train import FINAL

    export_bundle(Path(args.run) / FINAL, Path(args.out), name=args.name, data_root=args.data)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import report

    print(report(config_from_args(args)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import report

    print(report(args.runs))
    return 0


def _fixtures(args: argparse.Namespace) -> int:
    from .fixtures import make_fixtures

    bundle = make_fixtures(args.out)
    print(f"fixtures written to {args.out} (bundle: {bundle})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asm-fer", description="Train FER models and export model bundles.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train on a dataset, checkpoint every epoch, optionally export a bundle")
    add_config_arguments(p)
    p.add_argument(
        "--export", "--out", metavar="DIR", help="bundle folder to export to after training (default: <run-dir>/bundle)"
    )
    p.add_argument("--name", default="ferplus", help="bundle name (used in URLs) (default: ferplus)")
    p.set_defaults(func=_train)

    p = sub.add_parser("export", help="export a finished run (its final.pt) as a model bundle")
    p.add_argument("--run", required=True, help="run folder holding final.pt")
    p.add_argument("--out", required=True, help="bundle folder to write (model.onnx + model.json)")
    p.add_argument("--name", default="ferplus", help="bundle name (used in URLs) (default: ferplus)")
    p.add_argument("--data", help="dataset root for the Valid accuracy (default: the run's --data)")
    p.set_defaults(func=_export)

    p = sub.add_parser("bench", help="E6: training cost on this machine (matmul peak, FLOPs, images/s)")
    add_config_arguments(p)
    p.set_defaults(func=_bench)

    p = sub.add_parser("report", help="E2 table (markdown) of the run folders under the given folders")
    p.add_argument("runs", nargs="+", type=Path, help="run folders or folders holding them (e.g. training/runs/e2)")
    p.set_defaults(func=_report)

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
    except (DatasetLayoutError, BundleError, FileNotFoundError) as err:
        parser.exit(2, f"asm-fer: error: {err}\n")
