"""The ARD Gaussian process against scikit-learn's GaussianProcessRegressor (no linear columns: the
same log marginal likelihood and gradient, the same predictions, an optimum at least as good) and
against a plain reference computation (with linear columns: the kernel entry by entry, the
likelihood by slogdet and solve, the gradient by finite differences, the posterior mean)."""
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from naap.board import gp


def data(n=60, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * [1, 10, 0.1, 3, 1][:d]
    y = 0.6 + 0.05 * np.sin(X[:, 0]) + 0.01 * X[:, 1] / 10 + 0.002 * rng.normal(size=n)
    return X, y


def with_curve(n=60, seed=0):
    """Five architecture columns and two curve columns c1, c2; y moves linearly with c1."""
    X, y = data(n, seed=seed)
    rng = np.random.default_rng(seed + 100)
    curve = rng.normal(size=(n, 2))
    frame = pd.DataFrame(np.column_stack([X, curve]), columns=[f"a{i}" for i in range(5)] + ["c1", "c2"])
    return frame, y + 0.004 * curve[:, 0]


def sklearn_kernel(constant, length_scale, noise):
    return ConstantKernel(constant, "fixed") * RBF(length_scale, "fixed") + WhiteKernel(noise, "fixed")


def reference_covariance(theta, A, C, A2=None, C2=None):
    """The kernel entry by entry (plain loops): c exp(-|a - a'|^2 / 2 per length-scale) + sum v c c'."""
    d, m = A.shape[1], C.shape[1]
    constant, scales, variances = np.exp(theta[0]), np.exp(theta[1:1 + d]), np.exp(theta[1 + d:1 + d + m])
    A2, C2 = (A, C) if A2 is None else (A2, C2)
    K = np.empty((len(A2), len(A)))
    for i in range(len(A2)):
        for j in range(len(A)):
            K[i, j] = (constant * np.exp(-0.5 * np.sum(((A2[i] - A[j]) / scales) ** 2))
                       + np.sum(variances * C2[i] * C[j]))
    return K


def reference_log_marginal_likelihood(theta, A, C, y):
    K = reference_covariance(theta, A, C) + (np.exp(theta[-1]) + gp.JITTER) * np.eye(len(A))
    _, logdet = np.linalg.slogdet(K)
    return -0.5 * y @ np.linalg.solve(K, y) - 0.5 * logdet - 0.5 * len(y) * np.log(2 * np.pi)


def test_log_marginal_likelihood_and_gradient_are_scikit_learns():
    X, y = data()
    Xs = StandardScaler().fit_transform(X)
    kernel = ConstantKernel(1.0, gp.BOUNDS["constant"]) * RBF(np.ones(5), gp.BOUNDS["length_scale"]) \
        + WhiteKernel(0.1, gp.BOUNDS["noise"])
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


def test_with_linear_columns_the_likelihood_and_gradient_are_the_plain_computations():
    frame, y = with_curve(40)
    Xs = StandardScaler().fit_transform(frame)
    A, C = Xs[:, :5], Xs[:, 5:]
    normalised = (y - y.mean()) / y.std()
    rng = np.random.default_rng(3)
    for _ in range(5):
        theta = np.log(np.concatenate([rng.uniform(0.3, 3, 1), rng.uniform(0.5, 5, 5), rng.uniform(1e-3, 1, 2),
                                       rng.uniform(1e-3, 0.5, 1)]))
        value, gradient = gp.log_marginal_likelihood(theta, A, normalised, C)
        np.testing.assert_allclose(value, reference_log_marginal_likelihood(theta, A, C, normalised), rtol=1e-9)
        numeric = approx_fprime(theta, reference_log_marginal_likelihood, 1e-6, A, C, normalised)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:The optimal value found for dimension")  # scikit-learn's own fit
def test_fit_predicts_as_scikit_learn_with_the_fitted_kernel_and_optimises_as_well():
    X, y = data(80)
    X_test, _ = data(20, seed=2)
    model = gp.ArdGaussianProcess().fit(X, y)
    fitted = model.kernel_parameters()
    scaler = StandardScaler().fit(X)
    plain = GaussianProcessRegressor(sklearn_kernel(fitted["constant"], fitted["length_scale"], fitted["noise"]),
                                     normalize_y=True, optimizer=None).fit(scaler.transform(X), y)
    np.testing.assert_allclose(model.predict(X_test), plain.predict(scaler.transform(X_test)), rtol=1e-10)
    own = GaussianProcessRegressor(ConstantKernel(1.0, gp.BOUNDS["constant"])
                                   * RBF(np.ones(5), gp.BOUNDS["length_scale"])
                                   + WhiteKernel(0.1, gp.BOUNDS["noise"]), normalize_y=True)
    own.fit(scaler.transform(X), y)
    assert model.log_marginal_likelihood_value_ >= own.log_marginal_likelihood_value_ - 0.05
    np.testing.assert_array_equal(model.predict(X_test), gp.ArdGaussianProcess().fit(X, y).predict(X_test))


def test_with_linear_columns_it_predicts_the_posterior_mean_at_a_maximum_of_the_likelihood():
    frame, y = with_curve(60)
    test, _ = with_curve(15, seed=5)
    model = gp.ArdGaussianProcess(linear=("c1", "c2", "absent")).fit(frame, y)
    assert list(model.rbf_columns_) == [0, 1, 2, 3, 4] and list(model.linear_columns_) == [5, 6]
    scaler = StandardScaler().fit(frame)
    Xs, Ts = scaler.transform(frame), scaler.transform(test)
    A, C = Xs[:, :5], Xs[:, 5:]
    theta = model.theta_
    K = reference_covariance(theta, A, C) + (np.exp(theta[-1]) + gp.JITTER) * np.eye(len(A))
    mean = reference_covariance(theta, A, C, Ts[:, :5], Ts[:, 5:]) @ np.linalg.solve(K, (y - y.mean()) / y.std())
    np.testing.assert_allclose(model.predict(test), y.mean() + y.std() * mean, rtol=1e-9)
    normalised = (y - y.mean()) / y.std()
    best = reference_log_marginal_likelihood(theta, A, C, normalised)
    np.testing.assert_allclose(model.log_marginal_likelihood_value_, best, rtol=1e-9)
    for step in np.eye(len(theta)) * 0.05:  # no step along any axis improves it (within bounds)
        for moved in (theta + step, theta - step):
            bounds = np.log([gp.BOUNDS[p] for p, n in (("constant", 1), ("length_scale", 5), ("linear", 2),
                                                        ("noise", 1)) for _ in range(n)])
            if np.all((moved >= bounds[:, 0]) & (moved <= bounds[:, 1])):
                assert reference_log_marginal_likelihood(moved, A, C, normalised) <= best + 1e-6
    # y moves with c1 (0.004 per unit) and not with c2: the linear term learns which
    variances = model.kernel_parameters()["linear"]
    assert variances[0] > 100 * variances[1]


@pytest.mark.parametrize("linear", [(), ("c1", "c2")])
def test_names_not_among_the_columns_are_ignored(linear):
    frame, y = with_curve(40)
    arch = frame[[f"a{i}" for i in range(5)]]
    plain = gp.ArdGaussianProcess().fit(arch, y).predict(arch)
    np.testing.assert_array_equal(gp.ArdGaussianProcess(linear=linear).fit(arch, y).predict(arch), plain)


def test_constant_columns_are_dropped_and_all_constant_predicts_the_mean():
    X, y = data(40)
    with_constant = np.column_stack([X, np.full(len(X), 3.0)])
    model = gp.ArdGaussianProcess().fit(with_constant, y)
    assert list(model.rbf_columns_) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(model.predict(with_constant), gp.ArdGaussianProcess().fit(X, y).predict(X), rtol=1e-12)
    flat = gp.ArdGaussianProcess().fit(np.ones((40, 2)), y)
    np.testing.assert_allclose(flat.predict(np.ones((3, 2))), y.mean(), rtol=1e-3)


@parametrize_with_checks([gp.ArdGaussianProcess(), gp.ArdGaussianProcess(linear=("x1",))])
def test_is_a_scikit_learn_estimator(estimator, check):
    check(estimator)
