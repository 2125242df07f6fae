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
from naap.errors import InvalidType, InvalidValue, NaapError, UnknownKey
from tests.conftest import REPO

EPOCH_COLUMNS = ["seed", "epoch", "lr", "train_loss_mean", "train_loss_median", "test_accuracy",
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
        assert frame.index.tolist() == csv["ModelId"].tolist() and (frame["epoch"] == epoch).all()
        np.testing.assert_array_equal(frame["test_accuracy"], csv[f"e{epoch}Accuracy"])
        np.testing.assert_array_equal(frame["train_loss_mean"], csv[f"e{epoch}LossMean"])
        np.testing.assert_array_equal(frame["train_loss_median"], csv[f"e{epoch}LossMedian"])
        assert frame["lr"].unique().tolist() == pytest.approx([0.1 * 0.1 ** ((epoch - 1) % 3)])


def test_query_keeps_the_order_asked_for(bench, csv):
    frame = bench.query([7, 2, "k3w12s2 k3w16s2 k1w16s1r", 7], epoch=9)
    assert frame.index.tolist() == [7, 2, 10, 7]
    assert frame["test_accuracy"].tolist() == csv.set_index("ModelId").loc[[7, 2, 10, 7], "e9Accuracy"].tolist()
    assert bench.query(np.array([5, 1]), epoch=3).index.tolist() == [5, 1]


def test_curves_final_accuracy_and_max_accuracy(bench, csv):
    curve = bench.curves("k3w12s2 k3w16s2 k1w16s1r")
    assert curve["epoch"].tolist() == list(range(1, 91))
    assert curve["test_accuracy"].tolist() == [csv.loc[9, f"e{e}Accuracy"] for e in range(1, 91)]
    assert bench.curves([1, 2]).index.tolist() == [1] * 90 + [2] * 90
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
    (lambda b: b.query(1, epoch=0), InvalidValue, "epoch 0: naap440 records epochs 1 to 90 (1-based)"),
    (lambda b: b.query(1, epoch=91), InvalidValue, "epoch 91: naap440 records epochs 1 to 90"),
    (lambda b: b.query(1, epoch=9.0), InvalidValue, "epoch 9.0"),
    (lambda b: b.arch_id([1, 2]), InvalidType, "is not one architecture"),
    (lambda b: b.query({1: 2}), InvalidType, "give one architecture or a list of them"),
    (lambda b: b.query(1, columns=["test_acc"]), UnknownKey,
     "column 'test_acc' is not in naap440's epochs table; its columns are seed, epoch, lr, train_loss_mean"),
    (lambda b: b.curves(1, columns="accuracy"), UnknownKey, "its columns are seed, epoch"),
    (lambda b: b.arch_id([(3, 12, 2), (3, 16, 2), (1, 16, 1)]), InvalidArchitecture,
     "layer 1: (3, 12, 2) has 3 of a layer's 4 fields (kernel_size, width, stride, residual): it lacks residual"),
    (lambda b: b.objective(cost="hours"), InvalidValue, "must be one of auto, seconds, flop"),
    (lambda b: b.objective(budget=-1), InvalidValue, "must be a positive cost"),
    (lambda b: b.query(np.array([1, 999])), UnknownArchitecture, "arch_id 999 is not in naap440"),
])
def test_bad_arguments_raise_one_clear_error(bench, call, error, message):
    """One family: each is a NaapError and the builtin a caller would expect."""
    with pytest.raises(error) as caught:
        call(bench)
    assert message in str(caught.value)
    assert isinstance(caught.value, NaapError)
    builtin = {InvalidValue: ValueError, InvalidArchitecture: ValueError, InvalidType: TypeError,
               UnknownKey: KeyError, UnknownArchitecture: LookupError}[error]
    assert isinstance(caught.value, builtin)


def test_every_frame_is_indexed_by_arch_id(bench, rebuilt, csv):
    """`.loc[k]` is architecture k in every frame and series a Benchmark returns; the oracle is the
    published CSV (ModelId k, row k - 1) and, for several seeds, the rebuilt tables' own rows."""
    published = csv.set_index("ModelId")
    frames = {"architectures": bench.architectures, "epochs": bench.epochs, "query()": bench.query(epoch=9),
              "query(list)": bench.query([440, 3, 10], epoch=9), "curves()": bench.curves(),
              "curves(list)": bench.curves([2, 7]), "final_accuracy()": bench.final_accuracy(),
              "final_accuracy(list)": bench.final_accuracy([9, 4]), "cost()": bench.cost(), "cost(list)": bench.cost([5])}
    for name, frame in frames.items():
        assert frame.index.name == "arch_id", name
        assert isinstance(frame, pd.Series) or "arch_id" not in frame.columns, name
        for k in frame.index.unique():
            row = frame.loc[[k]]
            if "test_accuracy" in frame:  # a row per epoch: its accuracies are k's published ones
                published_k = [published.loc[k, f"e{e}Accuracy"] for e in row["epoch"]]
                assert row["test_accuracy"].tolist() == published_k, (name, k)
            elif "max_accuracy" in frame:
                assert row["max_accuracy"].item() == published.loc[k, "MaxAccuracy"], (name, k)
            elif "num_macs" in frame:
                assert row["num_macs"].item() == published.loc[k, "NumMACs"], (name, k)
            else:
                assert row.item() == published.loc[k, "e90Accuracy"], (name, k)
    assert bench.query(epoch=9).loc[10, "test_accuracy"] == published.loc[10, "e9Accuracy"]
    assert bench.curves([1, 10]).loc[10, "epoch"].tolist() == list(range(1, 91))
    two_seeds = rebuilt.query([3, 1], epoch=9)
    assert two_seeds.index.tolist() == [3, 1, 1] and two_seeds.loc[1, "seed"].tolist() == [1, 20220819]
    assert rebuilt.curves(3).loc[3].shape[0] == 90 + 5  # the second seed diverged in epoch 6


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
    assert frame.reset_index()[["arch_id", "seed"]].values.tolist() == [[1, 1], [1, 20220819], [3, 20220819]]
    final = rebuilt.final_accuracy([1, 3])
    assert final[1] == pytest.approx(rebuilt.query(1)["test_accuracy"].mean()) and np.isnan(final[3])
    cost = rebuilt.cost([2])
    assert cost.loc[2, "epoch_seconds"] == pytest.approx(1.02 + np.arange(1, 91).mean() / 1000)
    assert cost.loc[2, "epoch_flop"] == 2 * cost.loc[2, "num_macs"] * (3 * 1000 + 500)
