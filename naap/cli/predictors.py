"""`naap predictors`: the registered accuracy predictors, their families and the feature set each reads."""
from __future__ import annotations

import argparse


def rows() -> list[tuple[str, str, str, str]]:
    """(name, family, feature set, one-line description or '') of every registered predictor, each
    on one line with no control character (naap.escape.one_line)."""
    # scikit-learn loads here, not for `naap predictors --help`
    from naap.escape import one_line
    from naap.board.predictors import REGISTRY

    return [tuple(one_line(cell) for cell in (p.name, p.family, p.features, getattr(p, "description", "") or ""))
            for p in REGISTRY.values()]


def run(args: argparse.Namespace) -> int:
    listed = rows()
    header = ("NAME", "FAMILY", "FEATURES", "DESCRIPTION")
    widths = [max(len(row[i]) for row in [header, *listed]) for i in range(3)]
    for row in [header, *listed]:
        print(("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3]).rstrip())
    print(f"\n{len(listed)} predictors. Feature sets are defined in naap.board.features; "
          f"`naap leaderboard --predictor NAME` ranks one, `--predictor package.module:factory` adds your own.")
    return 0


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("predictors", help="list the registered accuracy predictors",
                                   description=__doc__)
    parser.set_defaults(run=run)
