"""The noise ceiling against the bivariate normal's Kendall tau, (2 / pi) arcsin(rho), on a
synthetic multi-seed table whose noise is known, and against scipy on the seeds themselves."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from naap.bench.tables import Tables
from naap.board import ceiling, protocols

SPREAD, NOISE = 0.03, 0.01  # sd of the architectures' expected accuracy; sd of one run around it


def synthetic(n=1500, seeds=(1, 2), with_seeds=None, seed=0) -> Tables:
    """n architectures; the first `with_seeds` (all by default) trained with every seed, the rest with the first."""
    rng = np.random.default_rng(seed)
    expected = rng.normal(0.7, SPREAD, n)
    with_seeds = n if with_seeds is None else with_seeds
    rows = [{"arch_id": a + 1, "seed": s, "epoch": 1, "test_accuracy": expected[a] + rng.normal(0, NOISE)}
            for a in range(n) for s in (seeds if a < with_seeds else seeds[:1])]
    epochs = pd.DataFrame(rows)
    target = epochs.groupby("arch_id")["test_accuracy"].mean()
    architectures = pd.DataFrame({"arch_id": target.index, "max_accuracy": target.to_numpy()})
    return Tables(architectures, epochs)


def greiner(rho: float) -> float:
    return 2 / np.pi * np.arcsin(rho)


def two_seed_mean_ceiling() -> float:
    """Target = mean of two runs, the observed means standing in for the truth: rho = sd(mean) /
    sqrt(var(mean) + noise^2 / 2)."""
    spread_of_means = SPREAD ** 2 + NOISE ** 2 / 2
    return greiner(np.sqrt(spread_of_means / (spread_of_means + NOISE ** 2 / 2)))


def test_seed_to_seed_tau_is_scipys_and_matches_the_noise():
    tables = synthetic()
    found = ceiling.noise_ceiling(tables, draws=200)
    maxima = tables.epochs.pivot(index="arch_id", columns="seed", values="test_accuracy")
    assert found["seed_to_seed_tau"] == pytest.approx(stats.kendalltau(maxima[1], maxima[2]).statistic, abs=1e-12)
    assert found["seed_to_seed_tau"] == pytest.approx(greiner(SPREAD ** 2 / (SPREAD ** 2 + NOISE ** 2)), abs=0.03)
    assert found["noise_sd"] == pytest.approx(NOISE, rel=0.06)
    assert (found["architectures_with_seeds"], found["architectures"], found["seeds"]) == (1500, 1500, 2)


def test_ceiling_tau_is_the_normal_theory_value_for_a_two_seed_mean():
    found = ceiling.noise_ceiling(synthetic(), draws=200)
    assert found["ceiling_tau"] == pytest.approx(two_seed_mean_ceiling(), abs=0.02)
    assert found["ceiling_tau_low"] < found["ceiling_tau"] < found["ceiling_tau_high"]
    assert found["ceiling_tau"] > found["seed_to_seed_tau"]


def test_some_architectures_with_more_seeds_suffice():
    found = ceiling.noise_ceiling(synthetic(n=600, with_seeds=200), draws=50)
    assert (found["architectures_with_seeds"], found["architectures"]) == (200, 600)
    assert found["noise_sd"] == pytest.approx(NOISE, rel=0.15)
    assert "from 200 of 600 architectures trained with two or more seeds" in ceiling.describe(found)


def test_one_seed_has_no_ceiling():
    tables = synthetic(n=50, seeds=(1,))
    assert ceiling.noise_ceiling(tables) is None
    assert ceiling.describe(None).startswith("Noise ceiling: not estimable")


def random_folds(tables: Tables, folds=30, size=40, seed=1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.choice(tables.architectures["arch_id"].to_numpy(), size, replace=False) for _ in range(folds)]


def test_on_random_folds_the_ceiling_is_the_whole_sets():
    """Kendall's tau is a U-statistic: on random subsets it is unbiased for the whole set's."""
    tables = synthetic()
    found = ceiling.noise_ceiling(tables, random_folds(tables), draws=50)
    assert found["folds"] == 30
    assert found["ceiling_tau"] == pytest.approx(two_seed_mean_ceiling(), abs=0.02)


def test_folds_stratified_by_accuracy_raise_the_ceiling():
    """The cv protocol's folds take one architecture per bin of accuracy neighbours: fewer close
    pairs than random folds of the same size, so the same noise costs less tau."""
    tables = synthetic(n=440)
    frame = tables.architectures.rename(columns={"arch_id": "ModelId", "max_accuracy": "MaxAccuracy"})
    stratified = protocols.cv_test_folds(frame, repeats=2)
    assert len(stratified) == 22 and {len(fold) for fold in stratified} == {40}
    on_stratified = ceiling.noise_ceiling(tables, stratified, draws=50)["ceiling_tau"]
    on_random = ceiling.noise_ceiling(tables, random_folds(tables, folds=22), draws=50)["ceiling_tau"]
    assert on_stratified > on_random + 0.01


def test_reference_ceilings_for_one_seed_are_the_normal_theory_values():
    """One seed: the observed target (sd sqrt(SPREAD^2 + NOISE^2)) stands in for the truth."""
    tables = synthetic(seeds=(1,))
    observed = np.sqrt(SPREAD ** 2 + NOISE ** 2)
    found = ceiling.reference_ceilings(tables, random_folds(tables), sds=(NOISE, 2 * NOISE), draws=50)
    for sd, tau in found.items():
        assert tau == pytest.approx(greiner(observed / np.sqrt(observed ** 2 + sd ** 2)), abs=0.02)
    line = ceiling.describe(None, found, folds=30)
    assert "sd 1.0 / 2.0 accuracy points" in line and "averaged over the cv protocol's 30 test folds" in line
    assert " / ".join(f"{tau:.3f}" for tau in found.values()) in line


def test_a_fold_naming_an_unknown_architecture_is_refused():
    tables = synthetic(n=50)
    with pytest.raises(ValueError, match="does not have"):
        ceiling.noise_ceiling(tables, [np.array([1, 2, 999])], draws=1)
