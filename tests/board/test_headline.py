"""The headline names the best cv predictor and every predictor that the corrected paired t-test
cannot tell apart from it (p > 0.05), so that a change in the last digits (another CPU) may swap
the first two names but never changes who is named."""
import numpy as np
import pandas as pd
from scipy import stats

from naap.escape import plain_line
from naap.board.findings import headline
from naap.board.summary import METRICS, summarise

FOLDS, TEST, TRAIN = 22, 40, 400


def cv_results(taus: dict[str, np.ndarray]) -> pd.DataFrame:
    """cv rows at budget 0, one per predictor and fold, with the given Kendall taus."""
    rows = []
    for name, values in taus.items():
        for fold, tau in enumerate(values):
            rows.append({"protocol": "cv", "predictor": name, "family": name, "features": "arch", "budget": 0,
                         "seed": 0, "fold": fold, **{m: 0.5 for m in METRICS}, "kendall_tau": tau,
                         "near_constant": False, "test_items": TEST, "train_items": TRAIN})
    return pd.DataFrame(rows)


def reference_p(a: np.ndarray, b: np.ndarray) -> float:
    """Nadeau and Bengio's corrected paired t-test, written out: the variance of the fold
    differences scaled by 1/J + n_test/n_train, t with J - 1 degrees of freedom."""
    diff = a - b
    t_stat = diff.mean() / np.sqrt(diff.var(ddof=1) * (1 / len(diff) + TEST / TRAIN))
    return 2 * stats.t.sf(abs(t_stat), len(diff) - 1)


def named(line: str) -> list[str]:
    text = plain_line(line)
    first = text.split(":", 1)[1].split(",", 1)[0].strip()
    rest = text.split("cannot tell apart from it (paired p > 0.05): ", 1)[1] if "cannot tell" in text else ""
    return [first] + [part.strip().split(" ")[0] for part in rest.split(", ") if part.strip()]


def test_the_headline_names_each_predictor_the_test_cannot_tell_from_the_best():
    rng = np.random.default_rng(7)
    alpha = 0.90 + rng.normal(0, 0.02, FOLDS)
    taus = {"alpha": alpha, "beta": alpha - 0.002 + rng.normal(0, 0.01, FOLDS),
            "gamma": alpha - 0.06 + rng.normal(0, 0.01, FOLDS)}
    p_beta, p_gamma = reference_p(taus["alpha"], taus["beta"]), reference_p(taus["alpha"], taus["gamma"])
    assert p_beta > 0.05 and p_gamma < 0.05  # the data behind the test, checked by the reference
    [line] = headline(summarise(cv_results(taus)))
    assert named(line) == ["alpha", "beta"]
    assert f"beta {taus['beta'].mean():.3f} (p = {p_beta:.3f})" in plain_line(line)
    assert "**" in line and "gamma" not in line


def test_a_change_in_the_last_digits_swaps_the_first_names_never_the_story():
    rng = np.random.default_rng(11)
    alpha = 0.90 + rng.normal(0, 0.02, FOLDS)
    beta = alpha + rng.normal(0, 0.01, FOLDS)
    beta += alpha.mean() - beta.mean()  # the same mean tau, up to rounding
    stories = []
    for nudge in (-1e-12, 1e-12):  # another CPU's last digits
        taus = {"alpha": alpha, "beta": beta + nudge, "gamma": alpha - 0.06 + rng.normal(0, 0.001, FOLDS)}
        [line] = headline(summarise(cv_results(taus)))
        stories.append(named(line))
    assert stories[0][0] != stories[1][0]  # the best changes ...
    assert sorted(stories[0]) == sorted(stories[1]) == ["alpha", "beta"]  # ... who is named does not


def test_when_every_other_predictor_is_worse_the_headline_says_so():
    rng = np.random.default_rng(3)
    alpha = 0.90 + rng.normal(0, 0.02, FOLDS)
    taus = {"alpha": alpha, "gamma": alpha - 0.06 + rng.normal(0, 0.01, FOLDS)}
    assert reference_p(taus["alpha"], taus["gamma"]) < 0.05
    [line] = headline(summarise(cv_results(taus)))
    assert named(line) == ["alpha"] and "every other predictor is worse (paired p <= 0.05)" in line
