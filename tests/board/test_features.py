"""Feature sets: the paper's exact columns, the architecture encoding against the published schemes
and the network itself, no leakage beyond the budget, diverged runs, bad input rejected."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from naap import cli
from naap.bench.tables import PROXIES, Tables, load_proxies, load_tables
from naap.board import features
from naap.board.curves import extrapolate_curves
from naap.board.encodings import receptive_field
from naap.errors import NaapError
from tests.conftest import REPO

DATA = REPO / "data" / "naap440"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return features.wide_frame(load_tables(DATA), load_proxies(DATA)[0])


def test_paper_scheme_set_is_log_params_and_stages(frame):
    X = features.build_features(frame, "paper", 0)
    assert list(X.columns) == ["NumParams", "NumStages"]
    np.testing.assert_array_equal(X["NumParams"], np.log(frame["NumParams"]))
    np.testing.assert_array_equal(X["NumStages"], frame["NumStages"])


def test_paper_quantitative_set_has_the_spec_columns(frame):
    X = features.build_features(frame, "paper", 3)
    assert list(X.columns) == ["NumParams", "NumMACs", "NumLayers", "NumStages", "FirstLayerWidth", "LastLayerWidth",
                               "e1LossMean", "e1LossMedian", "e1Accuracy", "e2LossMean", "e2LossMedian", "e2Accuracy",
                               "e3LossMean", "e3LossMedian", "e3Accuracy"]
    np.testing.assert_array_equal(X["NumMACs"], np.log(frame["NumMACs"]))
    np.testing.assert_array_equal(X["e2LossMedian"], frame["e2LossMedian"])
    assert features.build_features(frame, "paper", 9).shape == (440, 6 + 27)


def test_curve_set_differences(frame):
    X = features.build_features(frame, "curve", 4)
    np.testing.assert_allclose(X["e3AccuracyDiff1"], frame["e3Accuracy"] - frame["e2Accuracy"])
    np.testing.assert_allclose(X["e4AccuracyDiff2"],
                               frame["e4Accuracy"] - 2 * frame["e3Accuracy"] + frame["e2Accuracy"])
    np.testing.assert_allclose(X["BestAccuracy"], frame[[f"e{i}Accuracy" for i in range(1, 5)]].max(axis=1))
    assert "e5Accuracy" not in X.columns


@pytest.mark.parametrize("name", sorted(features.FEATURE_SETS))
@pytest.mark.parametrize("budget", [0, 1, 3, 6, 9])
def test_nothing_beyond_the_budget_leaks(frame, name, budget):
    """Scramble every later epoch, the target and the split: the features stay the same."""
    rng = np.random.default_rng(budget)
    later = [c for c in frame.columns if (m := re.fullmatch(r"e(\d+)\D+", c)) and int(m.group(1)) > budget]
    scrambled = frame.copy()
    for column in later + ["MaxAccuracy", "IsTest"]:
        scrambled[column] = rng.permutation(scrambled[column].to_numpy())
    before = features.build_features(frame, name, budget)
    after = features.build_features(scrambled, name, budget)
    pd.testing.assert_frame_equal(before, after)
    assert len(later) == 4 * (90 - budget)  # LossMean, LossMedian, Accuracy, LearningRate


def test_recorded_epochs(frame):
    assert features.recorded_epochs(frame) == 90
    assert features.recorded_epochs(frame.drop(columns="e5Accuracy")) == 4
    with pytest.raises(NaapError, match=r"below the 0 epochs recorded \(no column e1Accuracy"):
        features.check_budget(frame.drop(columns="e1Accuracy"), 0)


@pytest.mark.parametrize("budget", [-1, 90, 91])
def test_budget_outside_the_recorded_epochs_is_an_error(frame, budget):
    """At the last recorded epoch the curve holds the target itself: a budget must stay below it."""
    with pytest.raises(NaapError, match=f"data/x: budget of {budget} epochs: must be at least 0 and below the 90 "
                                        "epochs recorded"):
        features.build_features(frame, "paper", budget, source="data/x")
    features.build_features(frame, "paper", 89)


@pytest.mark.parametrize("name, budget, column", [("paper", 0, "NumStages"), ("paper", 3, "e2LossMedian"),
                                                  ("curve", 0, "NumPartialRFLayers"), ("curve", 2, "e2LossMean")])
def test_missing_column_is_named(frame, name, budget, column):
    with pytest.raises(NaapError, match=f"data/x: missing column '{column}'"):
        features.build_features(frame.drop(columns=column), name, budget, source="data/x")


def test_missing_value_names_the_model(frame):
    broken = frame.copy()
    broken.loc[broken["ModelId"] == 17, "e2Accuracy"] = np.nan
    with pytest.raises(NaapError, match="ModelId 17 has no finite value in column 'e2Accuracy'"):
        features.build_features(broken, "paper", 3)
    features.build_features(broken, "paper", 1)  # epoch 2 is beyond a budget of 1


def test_unknown_feature_set(frame):
    with pytest.raises(NaapError, match="unknown feature set 'nope'"):
        features.build_features(frame, "nope", 0)


@pytest.mark.parametrize("argv, message", [
    (["--budgets", "0,95"], "budget of 95 epochs: must be at least 0 and below the 90 epochs recorded"),
    (["--budgets", "90"], "budget of 90 epochs: must be at least 0 and below the 90 epochs recorded"),
    (["--budgets", "three"], "--budgets 'three': expected comma-separated integers"),
    (["--protocol", "holdout"], "unknown protocol 'holdout'"),
    (["--cv-repeats", "0"], "--cv-repeats 0: must be at least 1"),
    (["--jobs", "0"], "--jobs 0: give a number of processes"),
])
def test_cli_rejects_bad_options_in_one_line(frame, capsys, tmp_path, argv, message):
    code = cli.main(["leaderboard", str(DATA), "--out", str(tmp_path / "lb"), "--predictor-set", "none",
                     "--predictor", "1-NN", "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "lb").exists()


@pytest.mark.parametrize("where, message", [("missing-dir", "dataset directory not found"),
                                            ("a-file", "exists and is not a directory")])
def test_cli_rejects_bad_paths_in_one_line(capsys, tmp_path, where, message):
    (tmp_path / "a-file").write_text("")
    data, out = (tmp_path / where, tmp_path / "lb") if where == "missing-dir" else (DATA, tmp_path / where)
    code = cli.main(["leaderboard", str(data), "--out", str(out), "--predictor-set", "none", "--predictor", "1-NN"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# --- the architecture encoding ------------------------------------------------------------------

def test_layer_encoding_is_the_published_schemes(frame, release_dir):
    """L{i}Kernel/Width/Stride/Residual, read from generated_schemes.json (ModelId = index + 1), zeros past the depth."""
    schemes = json.loads((release_dir / "generated_schemes.json").read_text())
    X = features.build_features(frame, "arch", 0)
    for row, scheme in zip(X.itertuples(index=False), schemes):
        row = row._asdict()
        for i in range(4):
            layer = scheme[i] if i < len(scheme) else {"kernel_size": 0, "width": 0, "stride": 0, "residual": False}
            assert (row[f"L{i + 1}Kernel"], row[f"L{i + 1}Width"], row[f"L{i + 1}Stride"], row[f"L{i + 1}Residual"]) \
                == (layer["kernel_size"], layer["width"], layer["stride"], float(layer["residual"]))
        assert row["NumLayers"] == len(scheme)
        assert row["NumSkipConnections"] == sum(layer["residual"] for layer in scheme)
        assert row["NumPartialRFLayers"] == sum(l["stride"] == 2 and l["kernel_size"] == 1 for l in scheme)
    assert list(X.columns[16:]) == list(features.ARCH_DERIVED_COLUMNS)
    np.testing.assert_array_equal(X["NumMACs"], np.log(frame["NumMACs"]))
    assert set(features.BUDGET_FREE) >= {"arch"}
    pd.testing.assert_frame_equal(X, features.build_features(frame, "arch", 9))


def network_receptive_field(layers) -> int:
    """The receptive field measured on the network: the input pixels that move the centre output
    of the last conv layer (all-ones weights, no BatchNorm, a large input so no border interferes)."""
    torch = pytest.importorskip("torch")
    convs, channels = [], 1
    for layer in layers:
        conv = torch.nn.Conv2d(channels, 1, layer["kernel_size"], layer["stride"], layer["kernel_size"] // 2, bias=False)
        torch.nn.init.ones_(conv.weight)
        convs.append(conv)
        channels = 1
    x = torch.zeros(1, 1, 129, 129, requires_grad=True)
    out = torch.nn.Sequential(*convs)(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1))
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize("model", [1, 2, 57, 200, 333, 440])
def test_receptive_field_is_what_the_network_sees(release_dir, model):
    scheme = json.loads((release_dir / "generated_schemes.json").read_text())[model - 1]
    assert receptive_field(scheme) == network_receptive_field(scheme)


def test_curve_summary(frame):
    """Budget 6 under the cyclic schedule (lr restarts at epochs 1 and 4): the last cycle is epochs 4..6."""
    X = features.build_features(frame, "arch-curve", 6)
    assert list(X.columns[-5:]) == list(features.CURVE_SUMMARY)
    accuracy = frame[[f"e{i}Accuracy" for i in range(1, 7)]].to_numpy()
    np.testing.assert_array_equal(X["BestAccuracy"], accuracy.max(axis=1))
    np.testing.assert_array_equal(X["CycleAccuracyGain"], frame["e6Accuracy"] - frame["e4Accuracy"])
    np.testing.assert_array_equal(X["CycleLossDrop"], frame["e4LossMean"] - frame["e6LossMean"])
    np.testing.assert_array_equal(X["LogLastLossMean"], np.log(frame["e6LossMean"]))
    np.testing.assert_array_equal(X["Pow3Extrapolation"], extrapolate_curves(accuracy, 90)[:, 0])
    three = features.build_features(frame, "arch-curve", 3)
    np.testing.assert_array_equal(three["CycleAccuracyGain"], frame["e3Accuracy"] - frame["e1Accuracy"])


@pytest.mark.parametrize("name", sorted(features.FEATURE_SETS))
@pytest.mark.parametrize("budget", [0, 3])
def test_same_matrix_is_the_same_matrix(frame, name, budget):
    """The identity behind fitting once for two (feature set, budget) pairs."""
    other, other_budget = features.same_matrix(name, budget)
    np.testing.assert_array_equal(features.build_features(frame, name, budget).to_numpy(),
                                  features.build_features(frame, other, other_budget).to_numpy())


def test_proxy_set_takes_logarithms_of_the_positive_proxies(frame):
    X = features.build_features(frame, "proxies", 0)
    assert list(X.columns) == list(PROXIES)
    np.testing.assert_array_equal(X["synflow"], np.log(frame["synflow"]))
    np.testing.assert_array_equal(X["naswot"], frame["naswot"])
    with pytest.raises(NaapError, match="no zero-cost proxies"):
        features.build_features(frame.drop(columns="zen"), "proxies", 0, source="data/x")


# --- diverged runs ---------------------------------------------------------------------------------

def diverged_tables(n=12, epochs=3, diverged_in=2, diverged=(2, 5, 8, 11)) -> Tables:
    """n architectures; those in `diverged` stop before finishing epoch `diverged_in` (the runner
    records the finished epochs only)."""
    tables = load_tables(DATA)
    architectures = tables.architectures.head(n).copy()
    epochs_table = tables.epochs[(tables.epochs["arch_id"] <= n) & (tables.epochs["epoch"] <= epochs)].copy()
    cut = epochs_table["arch_id"].isin(diverged) & (epochs_table["epoch"] >= diverged_in)
    epochs_table = epochs_table[~cut].reset_index(drop=True)
    best = epochs_table.groupby("arch_id")["test_accuracy"].max()
    architectures["max_accuracy"] = architectures["arch_id"].map(best).fillna(0.0)
    architectures["diverged"] = architectures["arch_id"].isin(diverged)
    return Tables(architectures.reset_index(drop=True), epochs_table)


def test_a_diverged_run_is_carried_forward_from_its_last_finished_epoch(frame):
    wide = features.wide_frame(diverged_tables())
    assert wide.loc[wide["ModelId"] == 5, "e2Accuracy"].isna().all()
    done, left_out = features.complete_curves(wide)
    assert left_out == [] and len(done) == 12
    row = done[done["ModelId"] == 5].iloc[0]
    for kind in ("Accuracy", "LossMean", "LossMedian", "LearningRate"):
        assert row[f"e2{kind}"] == row[f"e3{kind}"] == row[f"e1{kind}"]
    healthy = done[done["ModelId"] == 4].iloc[0]
    assert healthy["e2Accuracy"] == frame.loc[frame["ModelId"] == 4, "e2Accuracy"].iloc[0]
    features.build_features(done, "arch-curve", 2)


def test_an_architecture_without_a_finished_epoch_is_left_out():
    done, left_out = features.complete_curves(features.wide_frame(diverged_tables(diverged_in=1)))
    assert left_out == [2, 5, 8, 11] and sorted(done["ModelId"]) == [1, 3, 4, 6, 7, 9, 10, 12]


def test_no_finished_epoch_at_all_is_one_clear_error():
    tables = diverged_tables(n=4, diverged_in=1, diverged=(1, 2, 3, 4))
    with pytest.raises(NaapError, match="data/x: epochs.parquet: no epoch rows: every run diverged"):
        features.wide_frame(tables, source="data/x")


def test_a_nan_target_names_the_file_column_and_model(frame):
    broken = frame.copy()
    broken.loc[broken["ModelId"] == 6, "MaxAccuracy"] = np.nan
    with pytest.raises(NaapError, match="data/x: architectures.parquet: max_accuracy .* ModelId 6 has no finite value"):
        features.target(broken, source="data/x")


def test_a_non_positive_proxy_to_take_the_logarithm_of_names_its_architecture_and_column():
    frame = pd.DataFrame({"ModelId": [3, 7, 9], **{name: [1.0, 2.0, 4.0] for name in PROXIES}},
                         index=[5, 6, 8])
    features.proxy_features(frame, source="small")
    frame.loc[6, "snip"] = 0.0
    with pytest.raises(NaapError, match=r"^small: ModelId 7: column 'snip' must be positive to take its logarithm"):
        features.proxy_features(frame, source="small")
