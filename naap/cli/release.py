"""`naap import-release` and `naap export-csv`: the published CSV layout, in and out."""
from __future__ import annotations

from pathlib import Path

from naap._io import read_provenance
from naap.bench.tables import DATASET_FILES, IMPORTED, PROXIES_FILE, load_tables, write_dataset
from naap.errors import NaapError
from naap.rebuild.recipe import load_recipe
from naap.rebuild.release import LICENCE_COPY, copy_licence, export_csv, import_release, release_card
from naap.resources import shipped


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


def _check_export_out(data_dir: Path, out: Path) -> None:
    """The CSV goes to a new or replaced .csv file, never over a file of the dataset it reads."""
    if out.suffix.lower() != ".csv":
        raise NaapError(f"{out}: must be a .csv file (export-csv writes the published CSV layout)")
    inputs = {(data_dir / name).resolve() for name in (*DATASET_FILES, PROXIES_FILE, "recipe.yaml")}
    if out.resolve() in inputs:
        raise NaapError(f"{out}: a file of the dataset {data_dir} that export-csv reads; choose another file")


def run_export_csv(args) -> int:
    _check_export_out(Path(args.data_dir), Path(args.out_csv))
    export_csv(load_tables(args.data_dir), args.out_csv, args.seed)
    print(f"wrote {args.out_csv}")
    return 0


def add_command(subparsers) -> None:
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
