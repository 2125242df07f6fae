"""Learning-curve extrapolation: a parametric family fitted to the best-so-far accuracy of each row.

The leaderboard uses it twice: as a feature (the curve summary's Pow3Extrapolation) and as a
predictor of its own (naap.board.estimators.CurveExtrapolationRegressor).
"""
from __future__ import annotations

import numpy as np

CURVE_FAMILIES = {
    # name: (basis phi_alpha(t) of best_accuracy(t) = c - a * phi_alpha(t), grid of alpha)
    "pow3": (lambda t, alpha: t ** -alpha, np.linspace(0.05, 3.0, 60)),
    "exp3": (lambda t, alpha: np.exp(-alpha * t), np.geomspace(0.01, 2.0, 60)),
}


def extrapolate_curves(accuracy: np.ndarray, horizon: int, family: str = "pow3") -> np.ndarray:
    """Fit best(t) = c - a * phi_alpha(t) to each row's best-so-far accuracy over the observed epochs
    and evaluate it at `horizon`. Returns (n, 4): the extrapolated best accuracy, the asymptote c,
    the amplitude a and the best accuracy seen.

    For each alpha of the family's grid, (c, a) is one least-squares solve for all rows (the design
    matrix is shared), and each row keeps the alpha with the smallest residual: no loop over rows.
    The extrapolation stays between the best accuracy seen and 1. With fewer than three epochs the
    curve is not identifiable and the extrapolation is the best accuracy seen.
    """
    best_so_far = np.maximum.accumulate(accuracy, axis=1)
    n, k = best_so_far.shape
    seen = best_so_far[:, -1]
    if k < 3:
        return np.column_stack([seen, seen, np.zeros(n), seen])
    basis, alphas = CURVE_FAMILIES[family]
    t = np.arange(1, k + 1, dtype=float)
    fits = []
    for alpha in alphas:
        design = np.column_stack([np.ones(k), -basis(t, alpha)])
        coef, *_ = np.linalg.lstsq(design, best_so_far.T, rcond=None)
        residual = np.sum((design @ coef - best_so_far.T) ** 2, axis=0)
        fits.append((residual, coef[0] - coef[1] * basis(float(horizon), alpha), coef[0], coef[1]))
    residual, at_horizon, asymptote, amplitude = (np.stack(part) for part in zip(*fits))
    pick = np.argmin(residual, axis=0), np.arange(n)
    return np.column_stack([np.clip(at_horizon[pick], seen, 1.0), asymptote[pick], amplitude[pick], seen])
