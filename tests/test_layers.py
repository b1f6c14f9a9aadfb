"""bnhelpers.engine.layers: Linear (and from_weights), activations, dropout, the noise layer, GroupNorm,
bad arguments."""

import numpy as np
import pytest
from helpers import assert_gradients_match, features

import bnhelpers as bh
from bnhelpers import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    GroupNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    Sigmoid,
    groupnorm_forward,
    layernorm_forward,
)


def test_linear_from_weights_computes_x_w_plus_b_with_its_own_copies():
    W, b = np.arange(6.0).reshape(3, 2), np.array([0.5, -1.0], dtype=np.float32)
    layer = Linear.from_weights(W, b)
    assert (layer.in_features, layer.out_features) == (3, 2)
    assert repr(layer) == "Linear(3, 2, bias=True)"
    assert layer.params["b"].dtype == np.float64  # b follows W's dtype
    x = np.ones((4, 3))
    np.testing.assert_array_equal(layer.forward(x), x @ W + b)
    W[0, 0] = 100.0
    assert layer.params["W"][0, 0] == 0.0  # a copy: the caller's array can change
    assert "b" not in Linear.from_weights(W).params
    with pytest.raises(ValueError, match=r"b must have shape \(2,\), one value per column of W"):
        Linear.from_weights(W, np.zeros(3))
    with pytest.raises(TypeError, match=r"W must have a floating dtype"):
        Linear.from_weights(np.ones((3, 2), dtype=int))
    with pytest.raises(ValueError, match=r"out_features \(W.shape\[1\]\) must be a positive integer, got 0"):
        Linear.from_weights(np.ones((3, 0)))


def test_linear_misuse_gets_clear_errors():
    layer = Linear(4, 3, rng=np.random.default_rng(0))
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a forward\(\) first"):
        layer.backward(np.ones((5, 3), np.float32))
    with pytest.raises(TypeError, match=r"x must be a numpy array of shape \(N, 4\) for Linear\(4, 3.*got list"):
        layer.forward([[1.0] * 4])
    layer.forward(np.ones((5, 4), np.float32))
    with pytest.raises(
        ValueError, match=r"dout must have the shape of Linear\(4, 3.*last output \(5, 3\), got \(5, 2\)"
    ):
        layer.backward(np.ones((5, 2), np.float32))


def test_dropout_is_identity_in_eval_and_keeps_the_mean_in_training():
    layer = Dropout(0.5, rng=np.random.default_rng(0))
    x = np.ones((200, 500), dtype=np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32
    assert abs((out == 0).mean() - 0.5) < 0.01
    assert abs(out.mean() - 1.0) < 0.01  # inverted dropout: survivors are scaled by 1 / (1 - p)
    np.testing.assert_array_equal(layer.backward(x), out)
    layer.training = False
    assert layer.forward(x) is x


def test_activations_are_numerically_safe():
    x = np.array([[-1000.0, 0.0, 1000.0]], dtype=np.float32)
    with np.errstate(all="raise"):
        np.testing.assert_allclose(Sigmoid().forward(x), [[0.0, 0.5, 1.0]])


def test_batchnorm_layers_name_the_feature_count_not_gamma():
    with pytest.raises(ValueError, match=r"x has 5 features, BatchNorm1d\(4.*\) expects 4"):
        BatchNorm1d(4).forward(np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"x has 3 channels \(axis 1\), BatchNorm2d\(2.*\) expects 2"):
        BatchNorm2d(2).forward(np.ones((2, 3, 4, 4), np.float32))


def test_groupnorm_layer_identities_and_gradients():
    x, _, _, dout = features(18, (3, 4, 5, 5))
    ln = GroupNorm(4, 1, dtype=np.float64).forward(x)  # G = 1: LayerNorm over (C, H, W)
    np.testing.assert_allclose(
        ln.reshape(3, -1),
        layernorm_forward(x.reshape(3, -1), np.ones(100), np.zeros(100), {})[0],
        rtol=1e-10,
        atol=1e-12,
    )
    inorm = GroupNorm(4, 4, dtype=np.float64).forward(x)  # G = C: InstanceNorm
    mean, var = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(inorm, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10, atol=1e-12)
    layer = GroupNorm(4, 2, dtype=np.float64)
    layer.params["gamma"][:] = [0.5, 1.5, 2.0, -1.0]
    layer.forward(x)
    dx = layer.backward(dout)
    gamma, beta = layer.params["gamma"], layer.params["beta"]
    assert_gradients_match(
        lambda: groupnorm_forward(x, gamma, beta, 2, {})[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, **layer.grads},
        dout,
    )
    flat = GroupNorm(6, 3, dtype=np.float64)  # (N, C) activations: groups of units
    h = np.arange(12.0).reshape(2, 6) ** 2
    assert flat.forward(h).shape == (2, 6)
    assert flat.backward(np.ones((2, 6))).shape == (2, 6)
    with pytest.raises(ValueError, match="groups must be a positive integer dividing num_channels=6, got 4"):
        GroupNorm(6, 4)


def test_noise_layer_draws_per_feature_factors_and_backpropagates_them():
    layer = bh.ShiftScaleNoise(shift=0.5, scale=0.25, rng=bh.rng(0))
    x = bh.rng(1).standard_normal((40, 6))
    out = layer.forward(x)
    s = (out[1] - out[0]) / (x[1] - x[0])  # one scale per feature, the same for every sample
    m = out[0] - s * x[0]
    np.testing.assert_allclose(out, x * s + m)
    assert np.all((s >= 0.75) & (s <= 1.25))
    assert np.all(np.abs(m) <= 0.5)
    dout = bh.rng(2).standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dout), dout * s)
    assert not np.allclose(layer.forward(x), out)  # new factors at every step


def test_noise_layer_is_the_identity_in_eval_mode_and_validates():
    layer = bh.ShiftScaleNoise(rng=bh.rng(0))
    layer.training = False
    x = np.ones((3, 4), dtype=np.float32)
    assert layer.forward(x) is x
    assert layer.backward(x) is x
    with pytest.raises(ValueError, match="scale"):
        bh.ShiftScaleNoise(scale=1.5, rng=bh.rng(0))
    with pytest.raises(ValueError, match="shift"):
        bh.ShiftScaleNoise(shift=-1.0, rng=bh.rng(0))


def rng0():
    return np.random.default_rng(0)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: BatchNorm1d(0), ValueError, r"num_features must be a positive integer, got 0"),
        (lambda: BatchNorm1d(-3), ValueError, r"num_features must be a positive integer, got -3"),
        (lambda: BatchNorm2d(2.5), TypeError, r"num_features must be a positive integer, got 2.5"),
        (lambda: BatchNorm1d(4, momentum=2.0), ValueError, r"bn_param\['momentum'\] must be in \[0, 1\]"),
        (lambda: BatchNorm1d(4, convention=["pytorch"]), ValueError, r"convention.*must be one of.*got \['pytorch'\]"),
        (lambda: Linear(784.0, 10, rng=rng0()), TypeError, r"in_features must be a positive integer"),
        (lambda: Conv2d(1, 8, kernel_size=0, rng=rng0()), ValueError, r"kernel_size must be a positive integer, got 0"),
        (lambda: Conv2d(1, 8.0, rng=rng0()), TypeError, r"out_channels must be a positive integer, got 8.0"),
        (lambda: Conv2d(1, 8, pad=-1, rng=rng0()), ValueError, r"pad must be an integer >= 0, got -1"),
        (lambda: MaxPool2d(0), ValueError, r"size must be a positive integer, got 0"),
        (lambda: GroupNorm(6, 2.0), TypeError, r"groups must be a positive integer, got 2.0"),
        (lambda: GroupNorm(6, 4), ValueError, r"groups must be a positive integer dividing num_channels=6, got 4"),
        (lambda: LeakyReLU(-0.1), ValueError, r"slope must be in \[0, 1\]"),
    ],
)
def test_bad_layer_arguments_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()
