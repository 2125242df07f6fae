"""`naap leaderboard`: rank accuracy predictors on a dataset directory and publish the results."""
from __future__ import annotations

import argparse

from naap.cli.arguments import DEFAULT_BUDGETS, DEFAULT_PROTOCOLS, budgets_of, cv_repeats_of, protocols_of, whole
from naap.errors import NaapError

MAX_JOBS = 1024  # a larger --jobs is a typo; any --jobs is cut to the fits and the cores


def _jobs(text: str) -> int:
    jobs = whole(text, "jobs", "of processes, or -1 for all cores")
    if jobs == 0 or jobs < -1 or jobs > MAX_JOBS:
        raise NaapError(f"--jobs {text[:40]}: give a number of processes from 1 to {MAX_JOBS}, or -1 for all cores")
    return jobs


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "leaderboard", help="rank accuracy predictors (cross-validation, the paper's protocol, extrapolation)",
        description=__doc__ + " Writes results.parquet, summary.parquet/.csv, README.md, index.html and figures "
                              "into --out: a new or empty folder, or one it wrote before.")
    parser.add_argument("data_dir", nargs="?", metavar="DATA_DIR",
                        help="dataset directory in the project's Parquet layout (default: the NAAP-440 shipped "
                             "with naap, data/naap440)")
    parser.add_argument("--out", default="leaderboard", help="output directory (default: leaderboard)")
    parser.add_argument("--protocol", default=DEFAULT_PROTOCOLS,
                        help="comma-separated: paper, cv, extrapolation-size, extrapolation-accuracy; extrapolation "
                             f"= both of those (default: {DEFAULT_PROTOCOLS})")
    parser.add_argument("--budgets", default=DEFAULT_BUDGETS,
                        help="epochs of training the predictors see, comma-separated, each below the epochs "
                             f"recorded (default: {DEFAULT_BUDGETS})")
    parser.add_argument("--predictor-set", default="all", choices=("all", "paper", "none"),
                        help="all: every registered predictor and installed plug-ins; paper: the 24 regressors "
                             "of the paper; none: only those given with --predictor (default: all)")
    parser.add_argument("--predictor", action="append", default=[], metavar="NAME|package.module:factory",
                        help="add a registered predictor by name, or a plug-in factory (repeatable)")
    parser.add_argument("--predictions", action="append", default=[], metavar="NAME=FILE",
                        help="rank predictions made outside naap (a Parquet file of the test rows of `naap folds`, "
                             "see docs/leaderboard.md) as the predictor NAME (repeatable)")
    parser.add_argument("--cv-repeats", default="2",
                        help="repeats of the k-fold split (default: 2, i.e. 22 folds of 40 on NAAP-440)")
    parser.add_argument("--jobs", default="-1", help="worker processes, never more than the cores or the fits "
                                                     "(default: -1, all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    budgets = budgets_of(args.budgets)
    chosen_protocols = protocols_of(args.protocol)
    args.cv_repeats = cv_repeats_of(args.cv_repeats)
    args.jobs = _jobs(args.jobs)
    # scikit-learn, joblib and matplotlib load here, not when `naap leaderboard --help` builds the parser
    from naap.board import leaderboard

    return leaderboard.run(args, budgets, chosen_protocols)
