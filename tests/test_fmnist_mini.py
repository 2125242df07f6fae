"""recipes/fmnist-mini.yaml end to end on real Fashion-MNIST images (about 1.5 min on 2 cores)."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from naap.counts import count_macs, count_params
from naap.recipe import load_recipe
from naap.space import generate_schemes
from naap.tables import load_tables, read_provenance
from tests.conftest import REPO

RECIPE = REPO / "recipes" / "fmnist-mini.yaml"
FASHION_MNIST = Path(load_recipe(RECIPE).dataset.root)


@pytest.mark.skipif(not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"Fashion-MNIST is not in {FASHION_MNIST} (Debian: apt-get install dataset-fashion-mnist)")
def test_fmnist_mini_runs_end_to_end_and_loads_like_data_naap440(tmp_path):
    recipe, out = load_recipe(RECIPE), tmp_path / "fmnist-mini"
    run = subprocess.run([sys.executable, "-m", "naap", "dataset", str(RECIPE), "--out", str(out)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr

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
