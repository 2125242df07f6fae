"""`naap folds`: write every protocol's splits, with the features each budget allows and the training
targets, into one Parquet file, for predictors fitted outside naap (their predictions come back
with `naap leaderboard --predictions NAME=FILE`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from naap.cli.arguments import DEFAULT_BUDGETS, DEFAULT_PROTOCOLS, budgets_of, cv_repeats_of, protocols_of
from naap.resources import NAAP440, shipped


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "folds", help="write every protocol's splits and features to a Parquet file, to rank predictions made elsewhere",
        description=__doc__)
    parser.add_argument("data_dir", nargs="?", metavar="DATA_DIR",
                        help="dataset directory (default: the NAAP-440 shipped with naap)")
    parser.add_argument("--out", default="folds.parquet",
                        help="the .parquet file to write: new, or one `naap folds` wrote (default: folds.parquet)")
    parser.add_argument("--protocol", default=DEFAULT_PROTOCOLS,
                        help=f"as for `naap leaderboard` (default: {DEFAULT_PROTOCOLS})")
    parser.add_argument("--budgets", default=DEFAULT_BUDGETS, help=f"as for `naap leaderboard` (default: {DEFAULT_BUDGETS})")
    parser.add_argument("--cv-repeats", default="2", help="as for `naap leaderboard` (default: 2)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    budgets = budgets_of(args.budgets)
    chosen_protocols = protocols_of(args.protocol)
    args.cv_repeats = cv_repeats_of(args.cv_repeats)
    # scikit-learn loads here (the cv splitter), not when `naap folds --help` builds the parser
    from naap.board.folds import write_folds

    data_dir = shipped(NAAP440) if args.data_dir is None else Path(args.data_dir)
    rows = write_folds(data_dir, Path(args.out), budgets, chosen_protocols, args.cv_repeats)
    splits = rows[["protocol", "budget", "seed", "fold"]].drop_duplicates()
    print(f"wrote {args.out}: {len(rows):,} rows, {len(splits)} (protocol, budget, seed, fold) splits, "
          f"{(rows['role'] == 'test').sum():,} test rows to predict")
    return 0
