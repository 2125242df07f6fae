"""The ARD Gaussian process against scikit-learn's GaussianProcessRegressor: the same log marginal
likelihood and gradient, the same predictions, an optimum at least as good."""
import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from naap import gp


def data(n=60, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * [1, 10, 0.1, 3, 1][:d]
    y = 0.6 + 0.05 * np.sin(X[:, 0]) + 0.01 * X[:, 1] / 10 + 0.002 * rng.normal(size=n)
    return X, y


def test_log_marginal_likelihood_and_gradient_are_scikit_learns():
    X, y = data()
    Xs = StandardScaler().fit_transform(X)
    kernel = gp.ard_kernel(X.shape[1])
    reference = GaussianProcessRegressor(kernel, normalize_y=True, optimizer=None, alpha=gp.JITTER).fit(Xs, y)
    normalised = (y - y.mean()) / y.std()
    rng = np.random.default_rng(1)
    bounds = kernel.bounds
    for _ in range(20):
        theta = rng.uniform(bounds[:, 0], bounds[:, 1] / 2)
        value, gradient = gp.log_marginal_likelihood(theta, Xs, normalised)
        expected, expected_gradient = reference.log_marginal_likelihood(theta, eval_gradient=True)
        np.testing.assert_allclose(value, expected, rtol=1e-9)
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-6, atol=1e-8)


def test_fit_predicts_as_scikit_learn_with_the_fitted_kernel_and_optimises_as_well():
    X, y = data(80)
    X_test, _ = data(20, seed=2)
    model = gp.ArdGaussianProcess().fit(X, y)
    scaler = StandardScaler().fit(X)
    plain = GaussianProcessRegressor(model.gp_.kernel_, normalize_y=True, optimizer=None).fit(scaler.transform(X), y)
    np.testing.assert_allclose(model.predict(X_test), plain.predict(scaler.transform(X_test)), rtol=1e-10)
    own = GaussianProcessRegressor(gp.ard_kernel(X.shape[1]), normalize_y=True).fit(scaler.transform(X), y)
    assert model.gp_.log_marginal_likelihood_value_ >= own.log_marginal_likelihood_value_ - 0.05
    np.testing.assert_array_equal(model.predict(X_test), gp.ArdGaussianProcess().fit(X, y).predict(X_test))


def test_constant_columns_are_dropped_and_all_constant_predicts_the_mean():
    X, y = data(40)
    with_constant = np.column_stack([X, np.full(len(X), 3.0)])
    model = gp.ArdGaussianProcess().fit(with_constant, y)
    assert list(model.columns_) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(model.predict(with_constant), gp.ArdGaussianProcess().fit(X, y).predict(X), rtol=1e-12)
    flat = gp.ArdGaussianProcess().fit(np.ones((40, 2)), y)
    np.testing.assert_allclose(flat.predict(np.ones((3, 2))), y.mean(), rtol=1e-3)


@parametrize_with_checks([gp.ArdGaussianProcess()])
def test_is_a_scikit_learn_estimator(estimator, check):
    check(estimator)
