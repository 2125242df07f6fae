"""recipes/fmnist-mini.yaml end to end on real Fashion-MNIST images (about 20 s per run on
2 cores): the tables load like data/naap440's, and the cohort engine under torchrun with 2
processes gives plain `naap dataset`'s tables bit for bit, with no thread variables set. (That
every launch, eager or by cohorts, gives the same tables is checked on the smoke recipe in
tests/system/test_launches.py; here the images are real.)"""
from pathlib import Path

import pandas as pd
import pytest

from naap._io import read_provenance
from naap.bench.counts import count_macs, count_params
from naap.bench.space import generate_schemes
from naap.bench.tables import load_tables
from naap.rebuild.recipe import load_recipe
from tests.runs import FMNIST_MINI, assert_same_data, dataset

FASHION_MNIST = Path(load_recipe(FMNIST_MINI).dataset.root)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists(),
    reason=f"Fashion-MNIST is not in {FASHION_MNIST} (Debian: apt-get install dataset-fashion-mnist)")]


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("fmnist-mini")
    return dataset(workdir, FMNIST_MINI, "plain")


def test_fmnist_mini_runs_end_to_end_and_loads_like_data_naap440(plain):
    recipe, out = load_recipe(FMNIST_MINI), plain
    epochs = pd.read_parquet(out / "epochs.parquet")
    architectures = pd.read_parquet(out / "architectures.parquet")
    tables = load_tables(out)
    pd.testing.assert_frame_equal(tables.epochs, epochs)
    assert len(architectures) == 24 and architectures["is_test"].sum() == 4
    assert len(epochs) == 24 * 3 and epochs["lr"].tolist() == [recipe.training.lr_at(e) for e in (1, 2, 3)] * 24
    # Real images: every network learns well beyond chance (10 %) in three epochs.
    assert (architectures["max_accuracy"] > 0.3).all() and not architectures["diverged"].any()
    assert (epochs.groupby("arch_id")["train_loss_mean"].agg(lambda s: s.iloc[-1] < s.iloc[0])).all()
    provenance = read_provenance(out / "architectures.parquet")
    assert provenance["dataset"] == {"name": "fashion-mnist", "in_channels": 1, "input_size": 28, "num_classes": 10,
                                     "train_size": recipe.dataset.train_size, "test_size": recipe.dataset.test_size}
    schemes = generate_schemes(recipe.search_space, recipe.generator)
    assert architectures["num_params"].tolist() == [count_params(s, in_channels=1) for s in schemes]
    assert architectures["num_macs"].tolist() == [count_macs(s, in_channels=1, input_size=28) for s in schemes]


def test_fmnist_mini_by_cohorts_under_torchrun_is_bit_identical_to_eager(plain):
    """runner.engine cohort, its 24 jobs in cohorts of 6 over 2 processes (one run: `make test`'s time;
    the smoke recipe's cohorts run alone and under torchrun in tests/system/test_launches.py)."""
    assert_same_data(plain, dataset(plain.parent, FMNIST_MINI, "cohort-torchrun-2", "--engine", "cohort",
                                    "--cohort-size", 6, ranks=2))
