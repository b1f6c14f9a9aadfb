"""bnhelpers.analysis.scale_invariance: weights followed by a normalization, checked against the identities they
rest on.

The identities are exact for eps = 0; the nets here use eps = 1e-14 so that they hold to float64 rounding
(at the default 1e-5 they hold up to a relative 1e-6 or so, the size of eps / var).
"""

import numpy as np
import pytest

import bnhelpers as bh
from bnhelpers.analysis.scale_invariance import (
    angular_update,
    effective_learning_rate,
    equilibrium_angular_update,
    normalized_weights,
    weight_norms,
)

TINY_EPS = {"eps": 1e-14}


def loss_and_grads(net, x, y):
    loss, dlogits = bh.softmax_cross_entropy(net.forward(x), y)
    net.backward(dlogits)
    return loss, {p.name: p.grad.copy() for p in net.parameters()}


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((32, 12)), rng.integers(0, 3, 32)


def test_normalized_weights_are_the_ones_feeding_a_normalization():
    assert list(normalized_weights(bh.mlp((12, 8, 8, 3), norm="batch", seed=0, dtype=np.float64))) == ["0.W", "3.W"]
    assert list(normalized_weights(bh.mlp((12, 8, 8, 3), norm="layer", seed=0, dtype=np.float64))) == ["0.W", "3.W"]
    assert normalized_weights(bh.mlp((12, 8, 8, 3), seed=0, dtype=np.float64)) == {}


def test_the_gradient_is_orthogonal_to_normalized_weights_and_scales_as_one_over_the_norm(batch):
    x, y = batch
    net = bh.mlp((12, 8, 8, 3), activation="relu", norm="batch", seed=0, dtype=np.float64, bn_options=TINY_EPS)
    loss, grads = loss_and_grads(net, x, y)
    for name, W in normalized_weights(net).items():
        cosine = np.vdot(grads[name], W) / (np.linalg.norm(grads[name]) * np.linalg.norm(W))
        assert abs(cosine) < 1e-10, name
    net.layers[0].params["W"] *= 3.0
    scaled_loss, scaled = loss_and_grads(net, x, y)
    assert scaled_loss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(scaled["0.W"], grads["0.W"] / 3.0, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(scaled["3.W"], grads["3.W"], rtol=1e-9, atol=1e-15)


def test_an_sgd_step_grows_the_norm_by_the_gradient_norm_squared(batch):
    x, y = batch
    net = bh.mlp((12, 8, 8, 3), activation="relu", norm="batch", seed=0, dtype=np.float64, bn_options=TINY_EPS)
    before = weight_norms(net)
    _, grads = loss_and_grads(net, x, y)
    bh.SGD(net.parameters(), lr=0.5).step()
    after = weight_norms(net)
    for name in before:
        assert after[name] ** 2 == pytest.approx(before[name] ** 2 + 0.25 * np.sum(grads[name] ** 2), rel=1e-10)


def test_effective_learning_rate_and_angles_by_hand():
    assert effective_learning_rate(0.1, 2.0) == pytest.approx(0.025)
    assert angular_update([1.0, 0.0], [1.0, 1.0]) == pytest.approx(np.pi / 4)
    assert angular_update(np.eye(2), 5 * np.eye(2)) == pytest.approx(0.0, abs=1e-7)
    assert equilibrium_angular_update(0.1, 5e-4) == pytest.approx(0.01)
    assert equilibrium_angular_update(0.1, 5e-4, momentum=0.9) == pytest.approx(np.sqrt(1e-4 / 1.9))
    with pytest.raises(ValueError, match="weight_norm"):
        effective_learning_rate(0.1, 0.0)
    with pytest.raises(ValueError, match="momentum"):
        equilibrium_angular_update(0.1, 1e-4, momentum=1.0)
    with pytest.raises(ValueError, match="same size"):
        angular_update([1.0, 2.0], [1.0, 2.0, 3.0])
