"""The dataset commands: schemes, info, import-release, export-csv."""
from __future__ import annotations

import json
from pathlib import Path

from naap.recipe import load_recipe
from naap.release import copy_licence, export_csv, import_release, release_card
from naap.space import generate_schemes
from naap.tables import describe_architectures, load_tables, read_provenance, write_dataset


def run_schemes(args) -> int:
    recipe = load_recipe(args.recipe)
    schemes = generate_schemes(recipe.search_space, recipe.generator)
    table = describe_architectures(schemes, None, *recipe.dataset.shape)
    if args.json:
        rows = table[["arch_id", "arch_hash", "layers", "num_params", "num_macs"]].to_dict("records")
        print(json.dumps(rows, indent=1, default=int))
        return 0
    for row in table.itertuples():
        layers = " ".join(f"k{l['kernel_size']}w{l['width']}s{l['stride']}{'r' if l['residual'] else ''}"
                          for l in row.layers)
        print(f"{row.arch_id:5d}  {row.arch_hash}  {row.num_params:7d} params  {row.num_macs:9d} MACs  {layers}")
    return 0


def run_info(args) -> int:
    tables = load_tables(args.data_dir)
    a, e = tables.architectures, tables.epochs
    provenance = read_provenance(Path(args.data_dir) / "architectures.parquet")
    runs = e.groupby(["arch_id", "seed"])["epoch"].max()
    print(f"{args.data_dir}: {len(a)} architectures ({int(a['is_test'].sum())} test), "
          f"{e['seed'].nunique()} seed(s), {runs.min()}-{runs.max()} epochs per run, {len(e)} epoch rows")
    print(f"max accuracy {a['max_accuracy'].min():.4f} to {a['max_accuracy'].max():.4f} "
          f"(mean {a['max_accuracy'].mean():.4f}); {int(a['diverged'].sum())} diverged")
    print(f"parameters {a['num_params'].min()} to {a['num_params'].max()}, "
          f"MACs {a['num_macs'].min()} to {a['num_macs'].max()}")
    print(f"provenance: {provenance.get('source', provenance.get('kind', 'unknown'))}; "
          f"recipe {provenance.get('recipe', {}).get('name', '?')}; "
          f"versions {', '.join(f'{k} {v}' for k, v in provenance.get('versions', {}).items())}")
    return 0


def run_import_release(args) -> int:
    tables, provenance = import_release(args.release_dir, load_recipe(args.recipe))
    copy_licence(args.release_dir, args.out)
    write_dataset(tables, args.out, provenance, release_card(tables, provenance))
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
    p.set_defaults(run=run_schemes)

    p = subparsers.add_parser("info", help="summarise a dataset directory")
    p.add_argument("data_dir")
    p.set_defaults(run=run_info)

    p = subparsers.add_parser("import-release", help="turn the published CSV + schemes JSON into Parquet")
    p.add_argument("release_dir")
    p.add_argument("--out", default="data/naap440")
    p.add_argument("--recipe", default="recipes/naap440.yaml")
    p.set_defaults(run=run_import_release)

    p = subparsers.add_parser("export-csv", help="write a dataset in the published CSV layout")
    p.add_argument("data_dir")
    p.add_argument("out_csv")
    p.add_argument("--seed", type=int, default=None, help="which seed's run (default: the smallest)")
    p.set_defaults(run=run_export_csv)
