"""`naap schemes RECIPE` (a recipe's architectures) and `naap info DIR` (a dataset folder in brief)."""
from __future__ import annotations

import json
from pathlib import Path

from naap._io import read_provenance
from naap.bench.arch import Arch
from naap.bench.space import MAX_SCHEMES, generate_schemes
from naap.bench.tables import describe_architectures, load_tables
from naap.cli.arguments import positive_int
from naap.rebuild.recipe import load_recipe
from naap.resources import NAAP440, shipped


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
    data_dir = shipped(NAAP440) if args.data_dir is None else Path(args.data_dir)
    tables = load_tables(data_dir)
    a, e = tables.architectures, tables.epochs
    provenance = read_provenance(data_dir / "architectures.parquet")
    recipe, versions = (provenance.get(key) for key in ("recipe", "versions"))
    recipe, versions = (value if isinstance(value, dict) else {} for value in (recipe, versions))
    runs = e.groupby(["arch_id", "seed"])["epoch"].max()
    per_run = f"{runs.min()}-{runs.max()} epochs per run" if len(runs) else "every run diverged in its first epoch"
    print(f"{data_dir}: {len(a)} architectures ({int(a['is_test'].sum())} test), "
          f"{e['seed'].nunique()} seed(s), {per_run}, {len(e)} epoch rows")
    print(f"max accuracy {a['max_accuracy'].min():.4f} to {a['max_accuracy'].max():.4f} "
          f"(mean {a['max_accuracy'].mean():.4f}); {int(a['diverged'].sum())} diverged")
    print(f"parameters {a['num_params'].min()} to {a['num_params'].max()}, "
          f"MACs {a['num_macs'].min()} to {a['num_macs'].max()}")
    print(f"provenance: {provenance.get('source', provenance.get('kind', 'unknown'))}; "
          f"recipe {recipe.get('name', '?')}; versions {', '.join(f'{k} {v}' for k, v in versions.items())}")
    return 0


def add_command(subparsers) -> None:
    p = subparsers.add_parser("schemes", help="list a recipe's architectures")
    p.add_argument("recipe", help="a recipe file, or the name of a shipped recipe (`naap recipes` lists them)")
    p.add_argument("--json", action="store_true", help="a JSON array: arch_id, arch_hash, layers, num_params, num_macs")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help=f"only the first N (a space larger than {MAX_SCHEMES:,} schemes is listed only so)")
    p.set_defaults(run=run_schemes)

    p = subparsers.add_parser("info", help="summarise a dataset directory")
    p.add_argument("data_dir", nargs="?", default=None, metavar="DIR",
                   help="dataset directory (default: the shipped NAAP-440)")
    p.set_defaults(run=run_info)
