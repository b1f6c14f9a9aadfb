"""bnhelpers.landscape: the loss and its gradient along the gradient direction (notebook 06)."""

import numpy as np
import pytest
from conftest import small_mlp

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
