"""`naap recipes`: the recipes shipped with naap, which every command taking a recipe accepts by name."""
from __future__ import annotations

import argparse

from naap.rebuild.recipe import load_recipe
from naap.resources import shipped_recipes

DESCRIPTION = ("List the recipes shipped with naap. Every command that takes a recipe takes one of these "
               "names too: `naap schemes naap440`, `naap dataset smoke --out runs/smoke`.")


def run(args: argparse.Namespace) -> int:
    recipes = [load_recipe(path) for path in shipped_recipes().values()]
    header = ("NAME", "DATASET", "EPOCHS", "DESCRIPTION")
    rows = [(r.name, r.dataset.name, str(r.training.epochs), str(r.raw.get("description", ""))) for r in recipes]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print(("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3]).rstrip())
    if args.paths:
        print()
        for recipe in recipes:
            print(f"{recipe.name}: {recipe.path}")
    return 0


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("recipes", help="list the shipped recipes (usable by name)", description=DESCRIPTION)
    parser.add_argument("--paths", action="store_true", help="also print where each recipe file is")
    parser.set_defaults(run=run)
