"""bnhelpers.analysis.landscape: the loss and its gradient along the gradient direction (notebook 06)."""

import numpy as np
import pytest
from helpers import small_mlp

import bnhelpers as bh


def test_along_gradient_is_exact_for_a_quadratic():
    # L(w) = 1/2 w^T A w: g = A w, and the gradient at w - eta g is g - eta A g.
    A = np.diag([1.0, 4.0, 10.0])
    w = np.array([1.0, -1.0, 0.5])
    f = lambda v: (0.5 * v @ A @ v, A @ v)  # noqa: E731
    steps = np.array([0.01, 0.05, 0.1])
    r = bh.along_gradient(f, w, steps)
    g = A @ w
    np.testing.assert_allclose(r.grad_change, steps * np.linalg.norm(A @ g))
    np.testing.assert_allclose(r.losses, [f(w - s * g)[0] for s in steps])
    assert r.grad_norm == pytest.approx(np.linalg.norm(g))
    assert r.beta_smoothness == pytest.approx(np.linalg.norm(A @ g) / np.linalg.norm(g))  # <= the largest eigenvalue
    assert r.beta_smoothness <= 10.0
    assert r.loss_range == pytest.approx(np.ptp(np.append(r.losses, r.loss)))
    with pytest.raises(ValueError, match="step_sizes"):
        bh.along_gradient(f, w, [0.1, -0.1])


def test_landscape_along_gradient_restores_parameters_and_buffers(mnist):
    net = small_mlp()
    x, y = mnist.x_train[:64], mnist.y_train[:64]
    state = {k: v.copy() for k, v in net.state().items()}
    r = bh.landscape_along_gradient(net, x, y, [1e-3, 1e-2])
    assert all(np.array_equal(v, net.state()[k]) for k, v in state.items())
    loss, _ = bh.softmax_cross_entropy(net.forward(x), y)
    assert r.loss == pytest.approx(loss)
    assert r.losses[0] < r.loss  # a small step down the gradient lowers the loss


def test_loss_range_and_beta_within_a_step_size_keep_only_the_small_steps():
    A = np.diag([1.0, 4.0, 10.0])
    w = np.array([1.0, -1.0, 0.5])
    f = lambda v: (0.5 * v @ A @ v, A @ v)  # noqa: E731
    r = bh.along_gradient(f, w, np.array([0.01, 0.05, 0.3]))
    assert r.loss_range_within(0.05) == pytest.approx(np.ptp(np.append(r.losses[:2], r.loss)))
    assert r.loss_range_within(1.0) == pytest.approx(r.loss_range)
    assert r.beta_smoothness_within(0.05) == pytest.approx(r.beta_smoothness)  # a quadratic: the same at every η
    assert np.isnan(r.beta_smoothness_within(0.001))


def test_power_iteration_finds_the_largest_eigenvalue_of_a_known_hessian():
    # L(w) = 1/2 w^T A w with A = Q diag(eigenvalues) Q^T: the Hessian is A everywhere.
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    A = Q @ np.diag([9.0, 3.0, 1.0, 0.5, -2.0, 0.1]) @ Q.T
    f = lambda v: (0.5 * v @ A @ v, A @ v)  # noqa: E731
    w = rng.standard_normal(6)
    assert bh.hessian_power_iteration(f, w, iterations=60) == pytest.approx(9.0, rel=1e-6)
    assert bh.hessian_power_iteration(f, w, iterations=60, h=0.5) == pytest.approx(9.0, rel=1e-6)  # exact at any h
    # the largest eigenvalue even when a negative one has a larger magnitude: -A has eigenvalues -9 ... 2
    assert bh.hessian_power_iteration(lambda v: (0.0, -A @ v), w, iterations=200) == pytest.approx(2.0, rel=1e-4)
    with pytest.raises(ValueError, match="iterations"):
        bh.hessian_power_iteration(f, w, iterations=0)
    with pytest.raises(ValueError, match="h"):
        bh.hessian_power_iteration(f, w, h=-1.0)


def test_largest_hessian_eigenvalue_of_a_network_matches_finite_differences_and_restores_it(mnist):
    net = small_mlp()
    x, y = mnist.x_train[:64], mnist.y_train[:64]
    state = {k: v.copy() for k, v in net.state().items()}
    lam = bh.largest_hessian_eigenvalue(net, x, y, iterations=30)
    assert all(np.array_equal(v, net.state()[k]) for k, v in state.items())
    # the Rayleigh quotient of any direction is at most the largest eigenvalue
    f, w, load = bh.network_objective(net, x, y)
    with net.preserving_buffers():
        v = np.random.default_rng(0).standard_normal(w.shape)
        v /= np.linalg.norm(v)
        h = 1e-3
        quotient = v @ (f(w + h * v)[1] - f(w - h * v)[1]) / (2 * h)
        load(w)
    assert lam > 0
    assert lam >= quotient


def test_directional_curvature_is_the_rayleigh_quotient_of_a_known_hessian():
    # L(w) = 1/2 w^T A w: the curvature along u is u^T A u / ||u||^2, whatever the length of u and the point w.
    A = np.diag([1.0, 4.0, 10.0])
    f = lambda v: (0.5 * v @ A @ v, A @ v)  # noqa: E731
    w = np.array([1.0, -1.0, 0.5])
    u = np.array([1.0, 1.0, 0.0])
    assert bh.directional_curvature(f, w, u) == pytest.approx(2.5)
    assert bh.directional_curvature(f, w, 7 * u) == pytest.approx(2.5)
    assert bh.directional_curvature(f, w, A @ w) == pytest.approx((A @ w) @ A @ (A @ w) / ((A @ w) @ (A @ w)))
    with pytest.raises(ValueError, match="direction"):
        bh.directional_curvature(f, w, np.zeros(3))
    with pytest.raises(ValueError, match="h"):
        bh.directional_curvature(f, w, u, h=0.0)


def test_batch_sharpness_is_each_batch_curvature_along_its_own_gradient(mnist):
    net = small_mlp()
    batches = [(mnist.x_train[i : i + 32], mnist.y_train[i : i + 32]) for i in (0, 32, 64)]
    state = {k: v.copy() for k, v in net.state().items()}
    values = bh.batch_sharpness(net, batches)
    assert values.shape == (3,)
    assert all(np.array_equal(v, net.state()[k]) for k, v in state.items())  # parameters and BN buffers restored
    for (x, y), value in zip(batches, values, strict=True):
        f, w, load = bh.network_objective(net, x, y)
        with net.preserving_buffers():
            expected = bh.directional_curvature(f, w, f(w)[1])
            load(w)
        assert value == pytest.approx(expected)
    with pytest.raises(ValueError, match="batches"):
        bh.batch_sharpness(net, [])


def test_batch_sharpness_lies_within_the_spectrum_of_the_full_batch_hessian(mnist):
    # A network small enough for its whole Hessian: 20 middle pixels of each digit -> 8 -> 8 -> 3 classes.
    net = bh.mlp((20, 8, 8, 10), activation="relu", norm="batch", init="he", seed=0, dtype=np.float64)
    x, y = mnist.x_train[:48, 400:420].astype(np.float64), mnist.y_train[:48]
    f, w, load = bh.network_objective(net, x, y)
    with net.preserving_buffers():
        h = 1e-4
        H = np.array([(f(w + h * e)[1] - f(w - h * e)[1]) / (2 * h) for e in np.eye(w.size)])
        load(w)
    eigenvalues = np.linalg.eigvalsh((H + H.T) / 2)
    value = bh.batch_sharpness(net, [(x, y)])[0]
    g = f(w)[1]
    load(w)
    assert value == pytest.approx(g @ H @ g / (g @ g), rel=1e-4)  # = the full Hessian's quotient
    assert eigenvalues[0] - 1e-6 <= value <= eigenvalues[-1] + 1e-6
