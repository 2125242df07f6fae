"""Simulated search: the objective's numbers are the published ones, costs follow the stated formula
and are cumulative, budgets hold, the optimisers do what they say, regret behaves."""
import numpy as np
import pandas as pd
import pytest

import naap
from naap.bench import search
from naap.bench.search import BudgetExhausted, Objective
from naap.bench.tables import Tables, load_tables, write_dataset

IMAGES = 3 * 50_000 + 10_000  # FLOP per MAC of one epoch, halved: training at 3x forward + the test pass


@pytest.fixture(scope="module")
def bench():
    return naap.load()


@pytest.fixture(scope="module")
def csv(release_dir):
    return pd.read_csv(release_dir / "naap440.csv").set_index("ModelId")


def test_accuracies_are_the_published_ones(bench, csv):
    objective = Objective(bench)
    rng = np.random.default_rng(0)
    for arch_id, epochs in zip(rng.integers(1, 441, 200), rng.integers(1, 91, 200)):
        assert objective.evaluate(int(arch_id), int(epochs)).accuracy == csv.loc[arch_id, f"e{epochs}Accuracy"]
    assert objective.evaluate("k3w12s2 k3w16s2 k1w16s1r").accuracy == csv.loc[10, "e90Accuracy"]


def test_flop_cost_by_hand_and_for_the_whole_benchmark(bench, csv):
    objective = Objective(bench, resume=False)
    assert objective.unit == "FLOP"
    # arch 1: 231,600 MACs per image; 3 epochs of 2 x MACs x (3 x 50,000 + 10,000) FLOP
    assert objective.evaluate(1, 3).cost == 3 * 2 * 231_600 * IMAGES == 222_336_000_000
    assert objective.evaluate(440, 90).cost == 90 * 2 * csv.loc[440, "NumMACs"] * IMAGES
    # every architecture for 90 epochs: about 6.7e15 FLOP (docs/benchmark.md, section Scale)
    whole = sum(Objective(bench).evaluate(a, 90).cost for a in range(1, 441))
    assert whole == 90 * 2 * csv["NumMACs"].sum() * IMAGES and round(whole / 1e15, 1) == 6.7


def test_cost_grows_with_epochs_for_every_architecture(bench):
    cumulative = Objective(bench).cumulative
    assert cumulative.shape == (440, 91) and (cumulative[:, 0] == 0).all()
    assert (np.diff(cumulative, axis=1) > 0).all()


def test_resume_charges_only_new_epochs(bench):
    per_epoch = 2 * 231_600 * IMAGES
    resumed = Objective(bench)
    assert [resumed.evaluate(1, k).cost for k in (3, 9, 5, 9)] == [3 * per_epoch, 6 * per_epoch, 0, 0]
    assert resumed.spent == 9 * per_epoch
    fresh = Objective(bench, resume=False)
    assert [fresh.evaluate(1, k).cost for k in (3, 9)] == [3 * per_epoch, 9 * per_epoch]


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    """NAAP-440 with measured epoch times and two seeds, as a rebuild records them; arch 2's second
    seed diverged after 4 epochs, both seeds of arch 3 after 4 epochs."""
    tables = load_tables()
    second = tables.epochs.assign(seed=7)
    second = second[(second["arch_id"] != 2) | (second["epoch"] <= 4)]
    epochs = pd.concat([tables.epochs, second]).sort_values(["arch_id", "seed", "epoch"], ignore_index=True)
    epochs = epochs[(epochs["arch_id"] != 3) | (epochs["epoch"] <= 4)]
    epochs["epoch_seconds"] = np.random.default_rng(1).uniform(5, 9, len(epochs))
    architectures = tables.architectures.assign(diverged=tables.architectures["arch_id"].isin([2, 3]))
    best = epochs.groupby(["arch_id", "seed"])["test_accuracy"].max().groupby("arch_id").mean()
    architectures["max_accuracy"] = architectures["arch_id"].map(best)
    path = tmp_path_factory.mktemp("timed")
    write_dataset(Tables(architectures, epochs), path,
                  {"recipe": {"name": "timed"}, "dataset": {"train_size": 50_000, "test_size": 10_000}}, "# timed")
    return naap.load(path)


def test_measured_seconds_are_summed_over_epochs(timed):
    objective = Objective(timed, resume=False)
    assert objective.unit == "seconds"
    runs = timed.epochs.loc[[5]]
    mean_by_epoch = runs.groupby("epoch")["epoch_seconds"].mean()
    assert objective.evaluate(5, 7).cost == pytest.approx(mean_by_epoch.loc[:7].sum())
    # arch 2: one seed stopped after 4 epochs: epochs 5 and 6 take the other seed's time, accuracy 0 for it
    two = timed.epochs.loc[[2]]
    stopped = two[two["seed"] == 7]["epoch_seconds"]
    full = two[two["seed"] == 20220819].set_index("epoch")
    expected = (full["epoch_seconds"].loc[1:4].sum() + stopped.sum()) / 2 + full["epoch_seconds"].loc[5:6].sum()
    evaluation = objective.evaluate(2, 6)
    assert evaluation.cost == pytest.approx(expected)
    assert evaluation.accuracy == pytest.approx(full.loc[6, "test_accuracy"] / 2)
    # arch 3: no seed reached epoch 5 or 6: they take the architecture's mean epoch, accuracy 0
    three = timed.epochs.loc[[3]]
    evaluation = objective.evaluate(3, 6)
    assert evaluation.cost == pytest.approx(three.groupby("epoch")["epoch_seconds"].mean().sum()
                                            + 2 * three["epoch_seconds"].mean())
    assert evaluation.accuracy == 0
    assert Objective(timed, cost="flop").evaluate(5, 1).cost == 2 * timed.cost().loc[5, "num_macs"] * IMAGES


def test_seconds_are_refused_where_none_were_recorded(bench):
    with pytest.raises(ValueError, match="records no epoch_seconds"):
        Objective(bench, cost="seconds")
    with pytest.raises(ValueError, match="must be one of auto, seconds, flop"):
        Objective(bench, cost="hours")


def _charges(trace: pd.DataFrame, bench, resume=True) -> list[float]:
    """What each evaluation of a trace costs, recomputed with pandas from the MACs."""
    macs, paid, charges = bench.architectures["num_macs"], {}, []
    for row in trace.itertuples():
        before = paid.get(row.arch_id, 0) if resume else 0
        charges.append(max(row.epochs - before, 0) * 2 * macs[row.arch_id] * IMAGES)
        paid[row.arch_id] = max(before, row.epochs)
    return charges


@pytest.mark.parametrize("budget", [1e12, 5e13, 3e14, 2e15])
@pytest.mark.parametrize("optimiser", [search.random_search, search.repeated_successive_halving, search.hyperband])
def test_no_optimiser_spends_more_than_its_budget(bench, optimiser, budget):
    for seed in range(3):
        objective = Objective(bench, budget=budget)
        optimiser(objective, seed=seed)
        trace = objective.trace
        charges = _charges(trace, bench)
        assert trace["cost"].tolist() == pytest.approx(charges)
        assert trace["spent"].to_numpy() == pytest.approx(np.cumsum(charges))
        assert objective.spent <= budget
        with pytest.raises(BudgetExhausted):  # it stopped because the budget was spent, not earlier
            for arch_id in range(1, 441):
                objective.evaluate(arch_id, 90)


def test_a_successive_halving_bracket_keeps_the_best_third(bench, csv):
    objective = Objective(bench)
    archs = list(range(100, 127))
    winner = search.successive_halving(objective, archs, min_epochs=3, eta=3)
    trace = objective.trace
    assert trace.groupby("epochs", sort=False).size().to_dict() == {3: 27, 10: 9, 30: 3, 90: 1}
    survivors = archs
    for epochs, keep in ((3, 9), (10, 3), (30, 1)):
        assert trace[trace["epochs"] == epochs]["arch_id"].tolist() == survivors
        scores = csv.loc[survivors, f"e{epochs}Accuracy"]
        survivors = scores.sort_values(ascending=False, kind="stable").index[:keep].tolist()
    assert trace[trace["epochs"] == 90]["arch_id"].tolist() == survivors == [winner]


@pytest.mark.parametrize("max_epochs,min_epochs,eta,expected", [
    (90, 3, 3, [3, 10, 30, 90]), (90, 1, 3, [1, 3, 10, 30, 90]), (90, 90, 3, [90]), (81, 1, 3, [1, 3, 9, 27, 81]),
    (90, 10, 2, [11, 22, 45, 90]),
])
def test_rungs(max_epochs, min_epochs, eta, expected):
    assert search.rungs(max_epochs, min_epochs, eta) == expected


def test_hyperband_brackets_follow_the_schedule(bench):
    objective = Objective(bench)
    search.hyperband(objective, seed=0, min_epochs=1, eta=3)
    first_rungs = objective.trace.drop_duplicates("arch_id")["epochs"].tolist()
    # one pass of the five brackets of s_max = 4: 81 architectures from 1 epoch, 34 from 3, 15 from 10, 8 from 30, 5 from 90
    assert first_rungs[:143] == [1] * 81 + [3] * 34 + [10] * 15 + [30] * 8 + [90] * 5
    assert objective.trace["arch_id"].nunique() == 440  # without a budget it ends when every architecture was drawn


def test_regret_is_non_negative_and_ends_at_zero_once_every_architecture_was_seen_fully(bench, csv):
    best_final = csv["e90Accuracy"].max()
    for optimiser in (search.random_search, search.repeated_successive_halving, search.hyperband):
        objective = Objective(bench, budget=1e15)
        optimiser(objective, seed=4)
        trace = objective.trace
        assert (trace["regret"] >= 0).all()
        assert (trace["regret"] == best_final - csv.loc[trace["incumbent"], "e90Accuracy"].to_numpy()).all()
        best, holder, holders = -1.0, None, []  # the incumbent: the first architecture with the best accuracy seen so far
        for row in trace.itertuples():
            best, holder = (row.accuracy, row.arch_id) if row.accuracy > best else (best, holder)
            holders.append(holder)
        assert trace["incumbent"].tolist() == holders
    objective = Objective(bench)
    incumbent = search.random_search(objective, seed=1)
    assert len(objective.trace) == 440 and objective.trace["regret"].iloc[-1] == 0
    assert csv.loc[incumbent, "e90Accuracy"] == best_final


def test_regret_at_reads_the_step_function():
    trace = pd.DataFrame({"spent": [1.0, 3.0, 6.0], "regret": [0.3, 0.2, 0.0]})
    assert np.array_equal(search.regret_at(trace, [0.5, 1.0, 2.9, 3.0, 10.0]), [np.nan, 0.3, 0.3, 0.2, 0.0],
                          equal_nan=True)
