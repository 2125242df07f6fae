"""`naap folds` and `naap leaderboard --predictions`: the splits written to a file, predictions made
from that file outside naap ranked beside the built-in predictors, and bad prediction files refused.

The oracle of the round trip is the board itself: a built-in predictor fitted here, on the rows
and columns the folds file gives, with the seed it names, must score exactly what the same
predictor scores inside naap."""
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from threadpoolctl import threadpool_limits

from naap import cli
from naap._io import read_provenance
from naap.bench.tables import load_tables
from naap.board import features, protocols
from naap.board.folds import board_frame
from naap.board.predictors import REGISTRY
from tests.conftest import REPO

DATA = REPO / "data" / "naap440"
KEYS = ["protocol", "budget", "seed", "fold", "arch_id"]
SMALL = ["--protocol", "paper,cv", "--budgets", "0,3", "--cv-repeats", "1"]
ROUND_TRIP = ("Random Forest (N=25)", "SVR (RBF kernel)", "NumMACs alone")  # random, deterministic, budget-free
QUICK = ["--predictor-set", "none", "--predictor", "1-NN", *SMALL, "--jobs", "1", "--quiet"]


def naap(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr()


@pytest.fixture(scope="module")
def folds_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("folds") / "folds.parquet"
    assert cli.main(["folds", str(DATA), "--out", str(path), *SMALL]) == 0
    return path


@pytest.fixture(scope="module")
def folds(folds_file) -> pd.DataFrame:
    return pd.read_parquet(folds_file)


def split_groups(folds: pd.DataFrame):
    return folds.groupby(["protocol", "budget", "seed", "fold"], dropna=False, sort=False)


# --- the folds file ---------------------------------------------------------------------------------

def test_the_splits_are_the_published_split_and_a_partition_per_cv_repeat(folds):
    tables = load_tables(DATA)
    published_test = set(tables.architectures.loc[tables.architectures["is_test"] == 1, "arch_id"])
    every = set(tables.architectures["arch_id"])
    assert set(folds["budget"]) == {0, 3} and set(folds["protocol"]) == {"paper", "cv"}
    paper = folds[folds["protocol"] == "paper"]
    assert sorted(set(paper["seed"])) == list(range(20220905, 20220910)) and paper["fold"].isna().all()
    for _, rows in split_groups(paper):
        assert set(rows.loc[rows["role"] == "test", "arch_id"]) == published_test
        assert set(rows.loc[rows["role"] == "train", "arch_id"]) == every - published_test
    for budget in (0, 3):
        cv = folds[(folds["protocol"] == "cv") & (folds["budget"] == budget)]
        tests = cv.loc[cv["role"] == "test", "arch_id"]
        assert sorted(tests) == sorted(every) and cv["fold"].nunique() == 11  # each architecture tested once
        for (_, _, seed, fold), rows in split_groups(cv):
            assert seed == 20220905 + fold and len(rows) == len(every) and rows["arch_id"].is_unique


def test_targets_are_given_for_training_rows_only_and_test_rows_say_nothing_by_their_order(folds):
    architectures = load_tables(DATA).architectures.set_index("arch_id")
    train, test = folds[folds["role"] == "train"], folds[folds["role"] == "test"]
    assert test["target"].isna().all()
    np.testing.assert_array_equal(train["target"], architectures.loc[train["arch_id"], "max_accuracy"])
    for _, rows in split_groups(folds):
        roles = rows["role"].tolist()
        assert roles == sorted(roles, key=lambda role: role != "train")  # training rows first
        assert rows.loc[rows["role"] == "test", "arch_id"].is_monotonic_increasing
        assert rows.loc[rows["role"] == "train", "target"].is_monotonic_increasing  # the order fits receive


def test_the_features_are_those_each_built_in_feature_set_reads_at_that_budget(folds, folds_file):
    """Oracle: naap.board.features.build_features, what the built-in predictors are handed."""
    sets = read_provenance(folds_file)["feature_sets"]
    frame = board_frame(DATA)[0].set_index("ModelId", drop=False)
    assert set(sets) == set(features.FEATURE_SETS)  # the shipped data has its proxies
    for budget in (0, 3):
        rows = folds[(folds["budget"] == budget) & (folds["protocol"] == "paper") & (folds["seed"] == 20220905)]
        for name in features.FEATURE_SETS:
            expected = features.build_features(frame, name, budget)
            assert sets[name][str(budget)] == list(expected.columns)
            np.testing.assert_array_equal(rows[list(expected.columns)].to_numpy(),
                                          expected.loc[rows["arch_id"]].to_numpy())
        allowed = {c for name in sets for c in sets[name][str(budget)]}
        others = [c for c in folds.columns[7:] if c not in allowed]
        assert ("e1Accuracy" in others) == (budget == 0)
        assert rows[others].isna().all().all() and not rows[sorted(allowed)].isna().any().any()


def test_a_dataset_without_proxies_gives_the_other_sets(capsys, tmp_path):
    data = tmp_path / "no-proxies"
    data.mkdir()
    for name in ("architectures.parquet", "epochs.parquet"):
        (data / name).write_bytes((DATA / name).read_bytes())
    out = tmp_path / "f.parquet"
    assert naap(capsys, "folds", data, "--out", out, "--protocol", "paper", "--budgets", "0")[0] == 0
    sets = read_provenance(out)["feature_sets"]
    assert set(sets) == set(features.FEATURE_SETS) - set(features.PROXY_SETS)
    assert "synflow" not in pq.read_schema(out).names and "NumParams" in pq.read_schema(out).names


def test_the_schema_is_explicit(folds_file):
    schema = pq.read_schema(folds_file)
    assert schema.field("budget").type == pa.int16() and schema.field("arch_id").type == pa.int32()
    assert schema.field("fold").type == pa.int32() and schema.field("role").type == pa.string()
    assert all(schema.field(name).type == pa.float64() for name in schema.names[6:])


@pytest.mark.parametrize("name", ["notes.parquet", "folds.csv", "a-folder.parquet"])
def test_an_out_it_did_not_write_is_refused_and_left_as_it_was(capsys, tmp_path, name):
    out = tmp_path / name
    if name == "a-folder.parquet":
        out.mkdir()
    elif name == "notes.parquet":
        out.write_text("mine\n")
    code, output = naap(capsys, "folds", DATA, "--out", out, *SMALL)
    assert code == 2 and len(output.err.strip().splitlines()) == 1 and f"--out {out}" in output.err
    if name == "notes.parquet":
        assert out.read_text() == "mine\n"
    if name == "a-folder.parquet":
        assert out.is_dir() and not any(out.iterdir())
    assert [p.name for p in tmp_path.iterdir()] == ([] if name == "folds.csv" else [name])


def test_its_own_file_is_written_again(capsys, tmp_path):
    out = tmp_path / "f.parquet"
    assert naap(capsys, "folds", DATA, "--out", out, "--protocol", "paper", "--budgets", "0")[0] == 0
    assert naap(capsys, "folds", DATA, "--out", out, "--protocol", "paper", "--budgets", "3")[0] == 0
    assert set(pd.read_parquet(out)["budget"]) == {3}


# --- the round trip ---------------------------------------------------------------------------------

def via_files(name: str) -> str:
    return name.replace("=", "") + " via files"  # a NAME of --predictions NAME=FILE holds no "="


def predict_outside(folds: pd.DataFrame, sets: dict, name: str) -> pd.DataFrame:
    """`name` fitted on each split's training rows of the folds file, as run_fit does: NumPy's and
    Python's generators seeded with the split's seed, one BLAS thread."""
    predictor = REGISTRY[name]
    parts = []
    for (_, budget, seed, _), rows in split_groups(folds):
        X = rows[sets[predictor.features][str(budget)]]
        train, test = (rows["role"] == "train").to_numpy(), (rows["role"] == "test").to_numpy()
        with threadpool_limits(1):
            np.random.seed(seed)
            random.seed(int(seed))
            model = predictor.make().fit(X[train].reset_index(drop=True), rows["target"][train])
            predicted = model.predict(X[test].reset_index(drop=True))
        parts.append(rows.loc[test, KEYS].assign(predicted=predicted))
    return pd.concat(parts, ignore_index=True)


def test_a_built_in_predictor_ranked_through_files_gives_its_own_rows(capsys, tmp_path, folds, folds_file):
    sets = read_provenance(folds_file)["feature_sets"]
    argv = ["leaderboard", DATA, "--out", tmp_path / "board", "--predictor-set", "none", *SMALL, "--jobs", "1",
            "--quiet"]
    for name in ROUND_TRIP:
        path = tmp_path / f"{len(argv)}.parquet"
        predict_outside(folds, sets, name).to_parquet(path, index=False)
        argv += ["--predictor", name, "--predictions", f"{via_files(name)}={path}"]
    code, output = naap(capsys, *argv)
    assert code == 0, output.err
    results = pd.read_parquet(tmp_path / "board" / "results.parquet")
    predictions = pd.read_parquet(tmp_path / "board" / "predictions.parquet")
    summary = pd.read_parquet(tmp_path / "board" / "summary.parquet")
    for name in ROUND_TRIP:
        for table, aside in ((results, ["fit_seconds"]), (predictions, []), (summary, ["p_vs_best"])):
            inside, outside = (table[table["predictor"] == n].drop(columns=["predictor", *aside])
                               .sort_values([c for c in KEYS + ["true"] if c in table]).reset_index(drop=True)
                               for n in (name, via_files(name)))
            assert len(inside) and len(outside) == len(inside)
            if "family" in table:
                assert set(outside["family"]) == set(outside["features"]) == {"external"}
                inside, outside = inside.drop(columns=["family", "features"]), outside.drop(columns=["family", "features"])
            pd.testing.assert_frame_equal(outside, inside, check_exact=True)
    assert len(results) == 2 * len(ROUND_TRIP) * 2 * (5 + 11)  # twice each predictor, 2 budgets, 5 seeds + 11 folds
    page = (tmp_path / "board" / "README.md").read_text()
    assert via_files("SVR (RBF kernel)") in page and "predictions made outside naap" in page



def test_predictions_made_elsewhere_are_ranked_alone(capsys, tmp_path, folds, folds_file):
    """--predictor-set none with --predictions only: a board of the files' predictors, the same rows as beside others."""
    sets, name = read_provenance(folds_file)["feature_sets"], "SVR (RBF kernel)"
    path = tmp_path / "svr.parquet"
    predict_outside(folds, sets, name).to_parquet(path, index=False)
    code, output = naap(capsys, "leaderboard", DATA, "--out", tmp_path / "alone", "--predictor-set", "none", *SMALL,
                        "--predictions", f"{via_files(name)}={path}", "--quiet")
    assert code == 0, output.err
    alone = pd.read_parquet(tmp_path / "alone" / "results.parquet")
    code, output = naap(capsys, "leaderboard", DATA, "--out", tmp_path / "beside", "--predictor-set", "none", *SMALL,
                        "--predictor", name, "--predictions", f"{via_files(name)}={path}", "--jobs", "1", "--quiet")
    assert code == 0, output.err
    beside = pd.read_parquet(tmp_path / "beside" / "results.parquet")
    assert set(alone["predictor"]) == {via_files(name)}
    pd.testing.assert_frame_equal(alone.drop(columns="fit_seconds").reset_index(drop=True),
                                  beside[beside["predictor"] == via_files(name)].drop(columns="fit_seconds")
                                  .reset_index(drop=True), check_exact=True)


# --- files refused --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def valid(folds) -> pd.DataFrame:
    """A prediction for every test row (log NumParams: any finite number does)."""
    return folds.loc[folds["role"] == "test", KEYS].assign(predicted=folds["NumParams"]).reset_index(drop=True)


def _first_test(valid):
    return valid.sort_values(KEYS).iloc[[0]]


CORRUPTIONS = {
    "misses a test row": (lambda v: v.drop(index=_first_test(v).index), "a test row with no prediction"),
    "adds a row": (lambda v: pd.concat([v, _first_test(v).assign(budget=6)]), "not a row of this board"),
    "a duplicate": (lambda v: pd.concat([v, _first_test(v)]), "appears more than once"),
    "a missing prediction": (lambda v: v.assign(predicted=v["predicted"].where(v.index != _first_test(v).index[0])),
              "predicted is not a finite number"),
    "an infinity": (lambda v: v.assign(predicted=v["predicted"].where(v.index != _first_test(v).index[0], np.inf)),
                    "predicted is not a finite number"),
}


def training_row(folds: pd.DataFrame, valid: pd.DataFrame) -> pd.DataFrame:
    row = folds[folds["role"] == "train"].sort_values(KEYS).iloc[[0]][KEYS]
    return pd.concat([valid, row.assign(predicted=0.5)], ignore_index=True)


def refused(capsys, monkeypatch, tmp_path, predictions: pd.DataFrame | None, *, schema=None):
    """Rank `predictions` written to a file; no fit may start."""
    def no_fit(*args, **kwargs):
        raise AssertionError("a fit started before the predictions were checked")
    monkeypatch.setattr(protocols, "run_protocols", no_fit)
    path = tmp_path / "preds.parquet"
    if predictions is not None:
        pq.write_table(pa.Table.from_pandas(predictions, schema=schema, preserve_index=False), path)
    code, output = naap(capsys, "leaderboard", DATA, "--out", tmp_path / "board", *QUICK, "--predictions", f"x={path}")
    assert code == 2 and len(output.err.strip().splitlines()) == 1, output.err
    assert str(path) in output.err and not (tmp_path / "board").exists()
    return output.err


@pytest.mark.parametrize("what", list(CORRUPTIONS) + ["predicts a training row"])
def test_a_file_that_does_not_match_the_splits_is_refused_naming_the_first_offending_row(capsys, monkeypatch, tmp_path,
                                                                                          folds, valid, what):
    if what == "predicts a training row":
        bad, message = training_row(folds, valid), "a training row of its split"
        first = folds[folds["role"] == "train"].sort_values(KEYS).iloc[0]
    else:
        change, message = CORRUPTIONS[what]
        bad, first = change(valid), _first_test(valid).iloc[0]
    err = refused(capsys, monkeypatch, tmp_path, bad)
    assert message in err
    budget = 6 if what == "adds a row" else first["budget"]
    assert f"protocol '{first['protocol']}', budget {budget}, seed {first['seed']}" in err
    assert f"arch_id {first['arch_id']}" in err


def test_a_valid_file_passes_the_same_check(capsys, tmp_path, valid):
    """The refusals above come from the corruption, not from the file's layout."""
    path = tmp_path / "preds.parquet"
    valid.to_parquet(path, index=False)
    code, output = naap(capsys, "leaderboard", DATA, "--out", tmp_path / "board", *QUICK, "--predictions", f"x={path}")
    assert code == 0, output.err
    assert set(pd.read_parquet(tmp_path / "board" / "results.parquet")["predictor"]) == {"1-NN", "x"}


@pytest.mark.parametrize("change, message", [
    (lambda v: v.drop(columns="fold"), "missing column 'fold'"),
    (lambda v: v.assign(note="mine"), "column 'note' is not one of"),
    (lambda v: v.assign(predicted=v["predicted"].astype(str)), r"column 'predicted' has type (large_)?string, expected floating-point"),
    (lambda v: v.assign(budget=v["budget"].astype(str)), r"column 'budget' has type (large_)?string, expected integer"),
    (lambda v: v.assign(budget=v["budget"] + 0.5), r"column 'budget': 0\.5 is not a whole number"),
    (lambda v: v.assign(seed=v["seed"].astype(float).where(v.index > 0)), "column 'seed' has 1 missing values"),
])
def test_a_file_with_another_schema_is_refused(capsys, monkeypatch, tmp_path, valid, change, message):
    assert re.search(message, refused(capsys, monkeypatch, tmp_path, change(valid)))


def test_a_missing_or_unreadable_file_and_a_bad_spec_are_refused(capsys, monkeypatch, tmp_path):
    assert "file not found" in refused(capsys, monkeypatch, tmp_path, None)
    (tmp_path / "preds.parquet").write_text("not parquet\n")
    code, output = naap(capsys, "leaderboard", DATA, "--out", tmp_path / "b", *QUICK, "--predictions",
                        f"x={tmp_path / 'preds.parquet'}")
    assert code == 2 and "not a readable Parquet file" in output.err
    for spec in ("no-equals-sign", "=preds.parquet", "1-NN=preds.parquet"):
        code, output = naap(capsys, "leaderboard", DATA, "--out", tmp_path / "b", *QUICK, "--predictions", spec)
        assert code == 2 and re.search(r"expected NAME=FILE|is taken by another predictor", output.err), output.err
    assert not (tmp_path / "b").exists()


def test_the_documented_example_writes_predictions_the_board_ranks(capsys, tmp_path, monkeypatch, folds_file):
    """docs/leaderboard.md's Python example, run as written on a folds file, then ranked."""
    section = (REPO / "docs" / "leaderboard.md").read_text().split("## Ranking predictions made elsewhere", 1)[1]
    [example] = re.findall(r"```python\n(.*?)```", section, re.S)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folds.parquet").write_bytes(folds_file.read_bytes())
    exec(compile(example, "docs/leaderboard.md", "exec"), {})
    code, output = naap(capsys, "leaderboard", DATA, "--out", "board", *QUICK, "--predictions",
                        "extra trees=predictions.parquet")
    assert code == 0, output.err
    summary = pd.read_parquet(tmp_path / "board" / "summary.parquet").set_index(["protocol", "predictor", "budget"])
    assert summary.loc[("cv", "extra trees", 3), "kendall_tau"] > 0.5  # a real model, not chance
