"""`naap proxies DIR`: the zero-cost proxies of a dataset's architectures, into DIR/proxies.parquet."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from naap._io import read_provenance, write_parquet
from naap.bench.tables import PROXIES, PROXIES_FILE, PROXIES_SCHEMA, load_tables
from naap.errors import NaapError
from naap.rebuild import provenance, settings
from naap.rebuild.datasets import load_dataset
from naap.rebuild.proxies import BATCH_SIZE, SEED, proxy_table
from naap.rebuild.recipe import load_recipe


def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    tables = load_tables(data_dir)
    dataset = read_provenance(data_dir / "architectures.parquet").get("dataset") or {}
    shape = {key: int(dataset.get(key, default)) for key, default in
             (("in_channels", 3), ("input_size", 32), ("num_classes", 10))}
    images = labels = None
    if args.data_free:
        data = "data-free: standard Gaussian images and uniform random labels"
    else:
        recipe = load_recipe(args.recipe)
        data = load_dataset(recipe.dataset, recipe.training)
        if data.shape != tuple(shape.values()):
            raise NaapError(f"{args.recipe}: dataset: its images are {data.shape} (channels, size, classes), "
                            f"the dataset in {data_dir} was trained on {tuple(shape.values())}")
        images, labels = data.train_x[:args.batch_size], data.train_y[:args.batch_size]
        data = provenance.training_images(len(images), recipe.name, recipe.dataset.name)
    about = provenance.proxies(seed=args.seed, batch_size=args.batch_size, shape=shape, data=data,
                               data_free=bool(args.data_free), torch=torch.__version__,
                               hardware=settings.cpu_record())
    table = proxy_table(tables.architectures, images, labels, progress=not args.quiet, seed=args.seed,
                        batch_size=args.batch_size, **shape)
    write_parquet(table, data_dir / PROXIES_FILE, PROXIES_SCHEMA, about)
    print(f"wrote {data_dir / PROXIES_FILE}: {len(table)} architectures, {len(PROXIES)} proxies ({data})")
    return 0


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "proxies", help="compute zero-cost proxies of a dataset's architectures into DIR/proxies.parquet",
        description="Compute synflow, snip, grad_norm, jacob_cov, NASWOT and Zen-score for every architecture "
                    "of a dataset directory (at initialisation, CPU, one thread) and write DIR/proxies.parquet; "
                    "`naap leaderboard` joins it when present.")
    parser.add_argument("data_dir", metavar="DIR", help="dataset directory (architectures.parquet, epochs.parquet)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-free", action="store_true",
                        help="Gaussian images and random labels (for a dataset whose images are not at hand)")
    source.add_argument("--recipe", help="read the first batch of this recipe's real training images")
    parser.add_argument("--seed", type=int, default=SEED, help=f"network and data seed (default: {SEED})")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"images per batch (default: {BATCH_SIZE})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
