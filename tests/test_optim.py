"""bnhelpers.engine.optim: first steps against the formulas, Adam over several steps,
gradient-less steps, bad arguments."""

import numpy as np
import pytest

from bnhelpers import (
    SGD,
    Adam,
    Linear,
    Momentum,
    Network,
    RMSprop,
    mlp,
)


def one_step(optimizer_class, **kwargs):
    layer = Linear(2, 2, rng=np.random.default_rng(0), dtype=np.float64)
    net = Network([layer], input_shape=(2,))
    w0 = layer.params["W"].copy()
    layer.grads = {"W": np.array([[1.0, -2.0], [0.5, 0.0]]), "b": np.array([0.25, -4.0])}
    optimizer_class(net.parameters(), **kwargs).step()
    return layer.params["W"] - w0, layer.grads["W"]


def test_optimizer_first_steps_follow_their_formulas():
    step, g = one_step(SGD, lr=0.1)
    np.testing.assert_allclose(step, -0.1 * g)
    step, g = one_step(Momentum, lr=0.1)
    np.testing.assert_allclose(step, -0.1 * g)
    step, g = one_step(RMSprop, lr=0.01)
    np.testing.assert_allclose(step, -0.01 * g / (np.sqrt(0.01 * g * g) + 1e-8))
    step, g = one_step(Adam, lr=0.001)
    np.testing.assert_allclose(step, -0.001 * g / (np.abs(g) + 1e-8), rtol=1e-6)  # m_hat = g, v_hat = g^2


def test_adam_matches_the_textbook_form_over_several_steps():
    rng = np.random.default_rng(5)
    layer = Linear(3, 2, rng=rng, dtype=np.float64)
    net = Network([layer], input_shape=(3,))
    opt = Adam(net.parameters(), lr=0.01)
    w, m, v = layer.params["W"].copy(), 0, 0
    for t in range(1, 6):
        g = rng.standard_normal((3, 2))
        layer.grads = {"W": g, "b": np.zeros(2)}
        opt.step()
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        w -= 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(layer.params["W"], w, rtol=1e-10)


def test_a_step_without_gradients_changes_nothing_and_is_not_counted():
    rng = np.random.default_rng(1)
    layer = Linear(3, 2, rng=rng, dtype=np.float64)
    net = Network([layer], input_shape=(3,))
    opt = Adam(net.parameters(), lr=0.01)
    w0 = layer.params["W"].copy()
    with pytest.raises(RuntimeError, match=r"no gradient for 0\.W yet"):
        opt.step()
    assert opt.steps == 0
    np.testing.assert_array_equal(layer.params["W"], w0)
    # The first real step is then Adam's first step: m_hat = g, v_hat = g^2.
    g = rng.standard_normal((3, 2))
    layer.grads = {"W": g, "b": np.zeros(2)}
    opt.step()
    np.testing.assert_allclose(layer.params["W"] - w0, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-6)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda p: SGD(p, lr=0), ValueError, r"lr must be a positive finite number, got 0"),
        (lambda p: Adam(p, lr=-1e-3), ValueError, r"lr must be a positive"),
        (lambda p: Adam(p, betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be below 1"),
        (lambda p: Adam(p, betas=(1.0, 0.999)), ValueError, r"betas\[0\] must be below 1"),
        (lambda p: Adam(p, betas=0.9), TypeError, r"betas must be a pair"),
        (lambda p: RMSprop(p, decay=1.0), ValueError, r"decay must be below 1"),
    ],
)
def test_bad_optimizer_arguments_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make(mlp((4, 2)).parameters())
