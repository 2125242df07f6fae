"""Feature sets: the paper's exact columns, no leakage beyond the budget, bad input rejected."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from naap import cli, features
from naap.errors import NaapError
from naap.tables import load_tables

DATA = Path(__file__).resolve().parents[1] / "data" / "naap440"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    if not (DATA / "architectures.parquet").exists():
        pytest.skip(f"{DATA} is absent (make import-release builds it)")
    return features.wide_frame(load_tables(DATA))


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
    assert len(later) == 3 * (90 - budget)


def test_recorded_epochs(frame):
    assert features.recorded_epochs(frame) == 90
    assert features.recorded_epochs(frame.drop(columns="e5Accuracy")) == 4
    with pytest.raises(NaapError, match=r"outside the 0 epochs recorded \(no column e1Accuracy\)"):
        features.check_budget(frame.drop(columns="e1Accuracy"), 1)


@pytest.mark.parametrize("budget", [-1, 91])
def test_budget_outside_the_recorded_epochs_is_an_error(frame, budget):
    with pytest.raises(NaapError, match=f"budget of {budget} epochs is outside the 90 epochs recorded"):
        features.build_features(frame, "paper", budget, source="data/x")


@pytest.mark.parametrize("name, budget, column", [("paper", 0, "NumStages"), ("paper", 3, "e2LossMedian"),
                                                  ("curve", 0, "NumPartialRFLayers"), ("curve", 2, "e2LossMean")])
def test_missing_column_is_named(frame, name, budget, column):
    with pytest.raises(NaapError, match=f"data/x: missing column '{column}'"):
        features.build_features(frame.drop(columns=column), name, budget, source="data/x")


def test_missing_value_names_the_model(frame):
    broken = frame.copy()
    broken.loc[broken["ModelId"] == 17, "e2Accuracy"] = np.nan
    with pytest.raises(NaapError, match="ModelId 17 has no value in column 'e2Accuracy'"):
        features.build_features(broken, "paper", 3)
    features.build_features(broken, "paper", 1)  # epoch 2 is beyond a budget of 1


def test_unknown_feature_set(frame):
    with pytest.raises(NaapError, match="unknown feature set 'nope'"):
        features.build_features(frame, "nope", 0)


@pytest.mark.parametrize("argv, message", [
    (["--budgets", "0,95"], "budget of 95 epochs is outside the 90 epochs recorded"),
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
