"""The dataset commands: schemes, info, import-release, export-csv."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from naap.arch import Arch
from naap.errors import NaapError
from naap.features import PROXIES_FILE
from naap.recipe import MAX_SCHEMES, load_recipe
from naap.resources import shipped
from naap.release import IMPORTED, LICENCE_COPY, copy_licence, export_csv, import_release, release_card
from naap.space import generate_schemes
from naap.tables import DATASET_FILES, describe_architectures, load_tables, read_provenance, write_dataset


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def run_schemes(args) -> int:
    recipe = load_recipe(args.recipe)
    schemes = generate_schemes(recipe.search_space, recipe.generator, limit=args.limit)
    table = describe_architectures(schemes, None, *recipe.dataset.shape)
    if args.json:
        rows = table[["arch_id", "arch_hash", "layers", "num_params", "num_macs"]].to_dict("records")
        print(json.dumps(rows, indent=1, default=int))
        return 0
    for row in table.itertuples():
        print(f"{row.arch_id:5d}  {row.arch_hash}  {row.num_params:7d} params  {row.num_macs:9d} MACs  "
              f"{Arch.from_layers(row.layers)}")
    return 0


def run_info(args) -> int:
    tables = load_tables(args.data_dir)
    a, e = tables.architectures, tables.epochs
    provenance = read_provenance(Path(args.data_dir) / "architectures.parquet")
    recipe, versions = (provenance.get(key) for key in ("recipe", "versions"))
    recipe, versions = (value if isinstance(value, dict) else {} for value in (recipe, versions))
    runs = e.groupby(["arch_id", "seed"])["epoch"].max()
    per_run = f"{runs.min()}-{runs.max()} epochs per run" if len(runs) else "every run diverged in its first epoch"
    print(f"{args.data_dir}: {len(a)} architectures ({int(a['is_test'].sum())} test), "
          f"{e['seed'].nunique()} seed(s), {per_run}, {len(e)} epoch rows")
    print(f"max accuracy {a['max_accuracy'].min():.4f} to {a['max_accuracy'].max():.4f} "
          f"(mean {a['max_accuracy'].mean():.4f}); {int(a['diverged'].sum())} diverged")
    print(f"parameters {a['num_params'].min()} to {a['num_params'].max()}, "
          f"MACs {a['num_macs'].min()} to {a['num_macs'].max()}")
    print(f"provenance: {provenance.get('source', provenance.get('kind', 'unknown'))}; "
          f"recipe {recipe.get('name', '?')}; versions {', '.join(f'{k} {v}' for k, v in versions.items())}")
    return 0


def _check_import_out(out: Path) -> None:
    """--out of import-release: a new or empty folder, or one an earlier import wrote (only its
    files, provenance kind "imported release"); never someone's folder or a rebuilt dataset."""
    if out.exists() and not out.is_dir():
        raise NaapError(f"{out}: --out: is a file, not a folder")
    found = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if found and (found - {*DATASET_FILES, LICENCE_COPY, PROXIES_FILE} or "architectures.parquet" not in found
                  or read_provenance(out / "architectures.parquet").get("kind") != IMPORTED):
        raise NaapError(f"{out}: --out: not empty and not written by `naap import-release`; use a new folder")


def run_import_release(args) -> int:
    out = Path(args.out)
    _check_import_out(out)
    recipe = load_recipe(args.recipe or shipped("recipes/naap440.yaml"))
    tables, provenance = import_release(args.release_dir, recipe)
    write_dataset(tables, out, provenance, release_card(tables, provenance))
    copy_licence(args.release_dir, out)
    print(f"wrote {args.out}: {len(tables.architectures)} architectures, {len(tables.epochs)} epoch rows")
    return 0


def run_export_csv(args) -> int:
    export_csv(load_tables(args.data_dir), args.out_csv, args.seed)
    print(f"wrote {args.out_csv}")
    return 0


def add_command(subparsers) -> None:
    p = subparsers.add_parser("schemes", help="list a recipe's architectures")
    p.add_argument("recipe")
    p.add_argument("--json", action="store_true", help="a JSON array: arch_id, arch_hash, layers, num_params, num_macs")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help=f"only the first N (a space larger than {MAX_SCHEMES:,} schemes is listed only so)")
    p.set_defaults(run=run_schemes)

    p = subparsers.add_parser("info", help="summarise a dataset directory")
    p.add_argument("data_dir")
    p.set_defaults(run=run_info)

    p = subparsers.add_parser("import-release", help="turn the published CSV + schemes JSON into Parquet")
    p.add_argument("release_dir")
    p.add_argument("--out", default="data/naap440")
    p.add_argument("--recipe", help="the recipe of the release (default: the shipped recipes/naap440.yaml)")
    p.set_defaults(run=run_import_release)

    p = subparsers.add_parser("export-csv", help="write a dataset in the published CSV layout")
    p.add_argument("data_dir")
    p.add_argument("out_csv")
    p.add_argument("--seed", type=int, default=None, help="which seed's run (default: the smallest)")
    p.set_defaults(run=run_export_csv)
