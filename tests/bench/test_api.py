"""The query API against the published CSV and schemes (independent of naap's import), look-ups
that agree in every form, errors that say why, one call for all architectures, a light import."""
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import naap
from naap._io import read_provenance
from naap.bench.arch import FIELDS, Arch, InvalidArchitecture, UnknownArchitecture
from naap.bench.tables import Tables, load_tables, write_dataset
from naap.errors import NaapError
from tests.conftest import REPO

EPOCH_COLUMNS = ["arch_id", "seed", "epoch", "lr", "train_loss_mean", "train_loss_median", "test_accuracy",
                 "test_loss", "train_accuracy", "epoch_seconds"]


@pytest.fixture(scope="module")
def bench():
    return naap.load()


@pytest.fixture(scope="module")
def csv(release_dir):
    return pd.read_csv(release_dir / "naap440.csv")


@pytest.fixture(scope="module")
def schemes(release_dir):
    return json.loads((release_dir / "generated_schemes.json").read_text())


def test_load_finds_the_shipped_dataset_from_any_working_directory(tmp_path):
    code = "import naap; b = naap.load(); print(len(b), b.num_epochs, b.seeds, b.name)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["440", "90", "[20220819]", "naap440"]


def test_every_form_of_look_up_agrees(bench, schemes, csv):
    """By id, string, Arch, layer dicts (the published JSON), layer tuples and hash: ModelId = index + 1."""
    for model_id, layers in enumerate(schemes, 1):
        arch = Arch.from_layers(layers)
        tuples = [(l["kernel_size"], l["width"], l["stride"], l["residual"]) for l in layers]
        found = {bench.arch_id(model_id), bench.arch_id(str(arch)), bench.arch_id(arch), bench.arch_id(layers),
                 bench.arch_id(tuples), bench.arch_id(arch.hash), bench.arch_id(np.int64(model_id))}
        assert found == {model_id}
        assert bench.arch(model_id) == arch
    assert bench.ids([3, "k3w12s2 k3w16s2 k1w16s1r", Arch.from_layers(schemes[0]), schemes[1]]).tolist() == [3, 10, 1, 2]


def test_query_at_one_epoch_equals_the_published_columns(bench, csv):
    for epoch in (1, 9, 90):
        frame = bench.query(epoch=epoch) if epoch == 90 else bench.query(None, epoch=epoch)
        assert list(frame.columns) == EPOCH_COLUMNS and len(frame) == 440
        assert frame["arch_id"].tolist() == csv["ModelId"].tolist() and (frame["epoch"] == epoch).all()
        np.testing.assert_array_equal(frame["test_accuracy"], csv[f"e{epoch}Accuracy"])
        np.testing.assert_array_equal(frame["train_loss_mean"], csv[f"e{epoch}LossMean"])
        np.testing.assert_array_equal(frame["train_loss_median"], csv[f"e{epoch}LossMedian"])
        assert frame["lr"].unique().tolist() == pytest.approx([0.1 * 0.1 ** ((epoch - 1) % 3)])


def test_query_keeps_the_order_asked_for(bench, csv):
    frame = bench.query([7, 2, "k3w12s2 k3w16s2 k1w16s1r", 7], epoch=9)
    assert frame["arch_id"].tolist() == [7, 2, 10, 7]
    assert frame["test_accuracy"].tolist() == csv.set_index("ModelId").loc[[7, 2, 10, 7], "e9Accuracy"].tolist()
    assert bench.query(np.array([5, 1]), epoch=3)["arch_id"].tolist() == [5, 1]


def test_curves_final_accuracy_and_max_accuracy(bench, csv):
    curve = bench.curves("k3w12s2 k3w16s2 k1w16s1r")
    assert curve["epoch"].tolist() == list(range(1, 91))
    assert curve["test_accuracy"].tolist() == [csv.loc[9, f"e{e}Accuracy"] for e in range(1, 91)]
    assert bench.curves([1, 2])["arch_id"].tolist() == [1] * 90 + [2] * 90
    final = bench.final_accuracy()
    assert final.index.tolist() == list(range(1, 441)) and final.tolist() == csv["e90Accuracy"].tolist()
    assert bench.final_accuracy([4, 3]).tolist() == csv.loc[[3, 2], "e90Accuracy"].tolist()
    # docs/benchmark.md, section Units: max_accuracy is the maximum over epochs of the test accuracy
    per_epoch = csv[[f"e{e}Accuracy" for e in range(1, 91)]].max(axis=1)
    np.testing.assert_array_equal(bench.architectures["max_accuracy"], per_epoch)


def test_cost_has_the_counts_the_formula_and_no_invented_seconds(bench, csv):
    cost = bench.cost()
    assert cost.index.tolist() == list(range(1, 441))
    assert cost["num_params"].tolist() == csv["NumParams"].tolist()
    assert cost["num_macs"].tolist() == csv["NumMACs"].tolist()
    assert cost.loc[1, "epoch_flop"] == 2 * 231_600 * (3 * 50_000 + 10_000)  # arch 1 has 231,600 MACs
    assert cost["epoch_seconds"].isna().all()  # the release records no time: NaN, not 0
    assert bench.images == (50_000, 10_000)


@pytest.mark.parametrize("key,message", [
    (441, "arch_id 441 is not in naap440 (its arch_ids run from 1 to 440)"),
    ("0123456789abcdef", "arch_hash 0123456789abcdef is not in naap440"),
    ("k3w12s2 k3w16s2 k1w20s1r", "'k3w12s2 k3w16s2 k1w20s1r' is not in naap440: layer 3: width 20 is not an option "
                                 "at this position (16, 24, 32); the nearest architecture in it is arch_id 10 "
                                 "'k3w12s2 k3w16s2 k1w16s1r' (1 field(s) changed)"),
    ("k3w16s2 k3w24s2 k3w31s1", "the nearest architecture in it is arch_id 423 'k3w16s2 k3w24s2 k3w32s1' "
                                "(1 field(s) changed)"),
    ("k3w12s2 k3w16s2 k3w16s2 k1w32s2", "4 layers have stride 2; at most 3 may"),
])
def test_an_unknown_architecture_says_why_and_the_nearest_one(bench, key, message):
    with pytest.raises(UnknownArchitecture) as caught:
        bench.query(key, epoch=9)
    assert message in str(caught.value)
    assert isinstance(caught.value, NaapError) and isinstance(caught.value, LookupError)


def test_the_nearest_architecture_has_the_fewest_changed_fields(bench, schemes):
    """Oracle: a plain loop over the published schemes counting differing fields."""
    def changed(a, b):
        """Fields that differ position by position; a layer in one of them only counts its four."""
        return 4 * abs(len(a) - len(b)) + sum(x[f] != y[f] for x, y in zip(a, b) for f in FIELDS)

    for text in ("k3w12s2 k3w16s2 k3w16s2 k1w32s2", "k3w16s2 k3w24s2 k1w24s1r k3w24s1r", "k3w12s2",
                 "k3w16s2 k3w24s2 k3w32s1 k3w40s1 k3w40s1r"):
        layers = [{"kernel_size": l.kernel_size, "width": l.width, "stride": l.stride, "residual": l.residual}
                  for l in Arch.parse(text).layers]
        nearest, fields = bench.nearest(Arch.parse(text))
        assert fields == min(changed(layers, s) for s in schemes) == changed(layers, schemes[nearest - 1])


def test_a_valid_architecture_missing_from_a_sampled_dataset_is_said_to_be_in_the_space(tmp_path):
    tables = load_tables()
    keep = tables.architectures["arch_id"] <= 100
    provenance = read_provenance(REPO / "data" / "naap440" / "architectures.parquet")
    write_dataset(Tables(tables.architectures[keep], tables.epochs[tables.epochs["arch_id"] <= 100]), tmp_path,
                  provenance, "# a part of NAAP-440")
    with pytest.raises(UnknownArchitecture, match="it is in the search space but not among the 100 architectures"):
        naap.load(tmp_path).arch_id(naap.load().arch(300))


@pytest.mark.parametrize("call,error,message", [
    (lambda b: b.query("k3w12s2 k3w16s2 k1w16s1q"), InvalidArchitecture, "is not in the notation"),
    (lambda b: b.query(1, epoch=0), ValueError, "epoch 0: naap440 records epochs 1 to 90 (1-based)"),
    (lambda b: b.query(1, epoch=91), ValueError, "epoch 91: naap440 records epochs 1 to 90"),
    (lambda b: b.query(1, epoch=9.0), ValueError, "epoch 9.0"),
    (lambda b: b.arch_id([1, 2]), TypeError, "is not one architecture"),
    (lambda b: b.query({1: 2}), TypeError, "give one architecture or a list of them"),
    (lambda b: b.query(np.array([1, 999])), UnknownArchitecture, "arch_id 999 is not in naap440"),
])
def test_bad_arguments_raise_one_clear_error(bench, call, error, message):
    with pytest.raises(error) as caught:
        call(bench)
    assert message in str(caught.value)


def test_all_architectures_at_one_epoch_is_one_call_much_faster_than_a_loop(bench):
    """The vectorised query against the same API called once per architecture, in the same run
    (benchmarks/bench_query.py reports the absolute times)."""
    def timed(call, repeat=5):
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
        return best

    one_call = timed(lambda: bench.query(None, epoch=9))
    loop = timed(lambda: [bench.query(arch_id, epoch=9) for arch_id in range(1, 441)], repeat=1)
    assert loop / one_call > 20, (loop, one_call)


def test_import_naap_is_light_and_dir_shows_the_api():
    code = ("import sys, naap; heavy = [m for m in ('torch', 'sklearn', 'matplotlib', 'pandas', 'pyarrow') "
            "if m in sys.modules]; assert not heavy, heavy; print(' '.join(dir(naap)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    listed = out.stdout.split()
    for name in ("load", "Benchmark", "Arch", "Objective", "NaapError", "load_tables", "search", "plot"):
        assert name in listed
    for name in naap.__all__:
        assert getattr(naap, name) is not None


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """A dataset as a two-seed rebuild writes it: measured epoch_seconds, the image counts in the
    provenance, and one run (arch 3, second seed) that diverged in epoch 6."""
    tables = load_tables()
    second = tables.epochs.assign(seed=1, test_accuracy=tables.epochs["test_accuracy"] - 0.01)
    second = second[(second["arch_id"] != 3) | (second["epoch"] <= 5)]
    epochs = pd.concat([tables.epochs, second]).sort_values(["arch_id", "seed", "epoch"], ignore_index=True)
    epochs["epoch_seconds"] = 1.0 + epochs["arch_id"] / 100 + epochs["epoch"] / 1000
    architectures = tables.architectures.assign(diverged=tables.architectures["arch_id"] == 3)
    best = epochs.groupby(["arch_id", "seed"])["test_accuracy"].max().groupby("arch_id").mean()
    architectures["max_accuracy"] = architectures["arch_id"].map(best)
    provenance = {"kind": "rebuilt", "recipe": {"name": "two-seeds"},
                  "dataset": {"name": "cifar10", "train_size": 1000, "test_size": 500}}
    path = tmp_path_factory.mktemp("rebuilt")
    write_dataset(Tables(architectures, epochs), path, provenance, "# two seeds")
    return naap.load(path)


def test_a_rebuilt_dataset_has_a_row_per_seed_and_measured_seconds(rebuilt):
    assert rebuilt.seeds == [1, 20220819] and rebuilt.images == (1000, 500)
    frame = rebuilt.query([1, 3], epoch=9)
    assert frame[["arch_id", "seed"]].values.tolist() == [[1, 1], [1, 20220819], [3, 20220819]]
    final = rebuilt.final_accuracy([1, 3])
    assert final[1] == pytest.approx(rebuilt.query(1)["test_accuracy"].mean()) and np.isnan(final[3])
    cost = rebuilt.cost([2])
    assert cost.loc[2, "epoch_seconds"] == pytest.approx(1.02 + np.arange(1, 91).mean() / 1000)
    assert cost.loc[2, "epoch_flop"] == 2 * cost.loc[2, "num_macs"] * (3 * 1000 + 500)
