"""`naap leaderboard`: rank accuracy predictors on a dataset directory and publish the results."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from naap.errors import NaapError

DEFAULT_BUDGETS = "0,3,6,9"


def _integers(text: str, what: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise NaapError(f"--{what} '{text}': expected comma-separated integers, e.g. {DEFAULT_BUDGETS}") from None
    if not values:
        raise NaapError(f"--{what} '{text}': empty")
    return sorted(set(values))


def _protocols(text: str) -> list[str]:
    from naap.protocols import PROTOCOLS

    chosen = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not chosen:
        raise NaapError(f"--protocol '{text}': empty")
    unknown = [p for p in chosen if p not in PROTOCOLS]
    if unknown:
        raise NaapError(f"--protocol '{text}': unknown protocol '{unknown[0]}' (known: {', '.join(PROTOCOLS)})")
    return chosen


def run(args: argparse.Namespace) -> int:
    from naap import features, predictors, protocols, report
    from naap.tables import load_tables, read_provenance

    budgets = _integers(args.budgets, "budgets")
    chosen_protocols = _protocols(args.protocol)
    if args.cv_repeats < 1:
        raise NaapError(f"--cv-repeats {args.cv_repeats}: must be at least 1")
    if args.jobs == 0:
        raise NaapError("--jobs 0: give a number of processes, or -1 for all cores")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise NaapError(f"--out {args.out}: exists and is not a directory")
    chosen = predictors.select_predictors(args.predictor_set, args.predictor)
    names = [p.name for p in chosen]
    data_dir = Path(args.data_dir)
    frame = features.wide_frame(load_tables(data_dir))
    source = str(data_dir)
    results, predictions = protocols.run_protocols(
        frame, chosen, budgets, chosen_protocols, repeats=args.cv_repeats, jobs=args.jobs,
        progress=not args.quiet, source=source)
    summary = protocols.summarise(results)
    command = shlex.join(["naap", "leaderboard", str(data_dir), "--out", str(args.out), "--protocol",
                          ",".join(chosen_protocols), "--budgets", ",".join(map(str, budgets)),
                          "--predictor-set", args.predictor_set,
                          *[part for spec in args.predictor for part in ("--predictor", spec)],
                          "--cv-repeats", str(args.cv_repeats)])
    provenance = {"dataset": source, "dataset_provenance": read_provenance(data_dir / "architectures.parquet"),
                  "budgets": budgets, "protocols": chosen_protocols, "cv_repeats": args.cv_repeats,
                  "predictors": names}
    written = report.write_leaderboard(args.out, results, predictions, summary, names, command, provenance)
    for line in report.headline(summary):
        print(line.replace("**", ""))
    print(f"wrote {len(written)} files to {args.out}/")
    return 0


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "leaderboard", help="rank accuracy predictors (paper protocol and cross-validation)",
        description=__doc__ + " Writes results.parquet, summary.parquet/.csv, README.md, index.html and figures.")
    parser.add_argument("data_dir", nargs="?", default="data/naap440", metavar="DATA_DIR",
                        help="dataset directory in the project's Parquet layout (default: data/naap440)")
    parser.add_argument("--out", default="leaderboard", help="output directory (default: leaderboard)")
    parser.add_argument("--protocol", default="paper,cv", help="comma-separated: paper, cv (default: both)")
    parser.add_argument("--budgets", default=DEFAULT_BUDGETS,
                        help=f"epochs of training the predictors see, comma-separated (default: {DEFAULT_BUDGETS})")
    parser.add_argument("--predictor-set", default="all", choices=("all", "paper", "none"),
                        help="all: every registered predictor and installed plug-ins; paper: the 24 regressors "
                             "of the paper; none: only those given with --predictor (default: all)")
    parser.add_argument("--predictor", action="append", default=[], metavar="NAME|package.module:factory",
                        help="add a registered predictor by name, or a plug-in factory (repeatable)")
    parser.add_argument("--cv-repeats", type=int, default=2,
                        help="repeats of the k-fold split (default: 2, i.e. 22 folds of 40 on NAAP-440)")
    parser.add_argument("--jobs", type=int, default=-1, help="parallel processes (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
