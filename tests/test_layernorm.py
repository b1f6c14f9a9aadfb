"""LayerNorm and GroupNorm: per-sample statistics, gradients, special cases, bad input."""

import numpy as np
import pytest
from helpers import assert_gradients_match, image_batch

from bnhelpers import (
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
)


def test_layernorm_normalizes_each_sample_and_matches_finite_differences():
    rng = np.random.default_rng(6)
    x = 5 + 3 * rng.standard_normal((6, 8))
    gamma, beta, dout = rng.uniform(0.5, 2, 8), rng.standard_normal(8), rng.standard_normal((6, 8))
    out, cache = layernorm_forward(x, np.ones(8), np.zeros(8), {})
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=1), 1, rtol=1e-5)
    out, cache = layernorm_forward(x, gamma, beta, {"eps": 1e-5})
    dx, dgamma, dbeta = layernorm_backward(dout, cache)
    assert_gradients_match(
        lambda: layernorm_forward(x, gamma, beta, {})[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )


def test_layernorm_output_of_a_sample_does_not_depend_on_the_batch():
    rng = np.random.default_rng(7)
    x, gamma, beta = rng.standard_normal((10, 5)), rng.standard_normal(5), rng.standard_normal(5)
    np.testing.assert_array_equal(
        layernorm_forward(x, gamma, beta, {})[0][3:4], layernorm_forward(x[3:4], gamma, beta, {})[0]
    )


@pytest.mark.parametrize("G", [1, 2, 4])
def test_groupnorm_gradients_match_finite_differences(G):
    x, gamma, beta, dout = image_batch(8, (2, 4, 3, 3))
    _out, cache = groupnorm_forward(x, gamma, beta, G, {})
    dx, dgamma, dbeta = groupnorm_backward(dout, cache)
    assert_gradients_match(
        lambda: groupnorm_forward(x, gamma, beta, G, {})[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )


def test_groupnorm_special_cases():
    x, _, _, _ = image_batch(9, (3, 6, 4, 4))
    ones, zeros = np.ones(6), np.zeros(6)
    # G = 1: the whole sample is one group, i.e. LayerNorm over C*H*W.
    g1, _ = groupnorm_forward(x, ones, zeros, 1, {})
    ln, _ = layernorm_forward(x.reshape(3, -1), np.ones(96), np.zeros(96), {})
    np.testing.assert_allclose(g1.reshape(3, -1), ln, rtol=1e-12, atol=1e-12)
    # G = C: every channel of every sample on its own, i.e. InstanceNorm.
    gc, _ = groupnorm_forward(x, ones, zeros, 6, {})
    mean, var = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(gc, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-12, atol=1e-12)


def test_groupnorm_and_layernorm_bad_input():
    x, gamma, beta, _ = image_batch(10, (2, 6, 3, 3))
    with pytest.raises(ValueError, match=r"G \(number of groups\) must divide the number of channels C=6, got G=4"):
        groupnorm_forward(x, gamma, beta, 4, {})
    with pytest.raises(ValueError, match=r"G \(number of groups\) must be a positive integer"):
        groupnorm_forward(x, gamma, beta, 0, {})
    with pytest.raises(ValueError, match=r"gamma must have shape \(6,\), one value per channel"):
        groupnorm_forward(x, gamma[:3], beta, 3, {})
    with pytest.raises(ValueError, match=r"gn_param\['eps'\] must be a positive"):
        groupnorm_forward(x, gamma, beta, 3, {"eps": 0})
    with pytest.raises(ValueError, match=r"ln_param has unknown keys \['mode'\]"):
        layernorm_forward(x[:, :, 0, 0], gamma, beta, {"mode": "train"})
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        layernorm_forward(np.ones((2, 6), dtype=np.int32), gamma, beta, {})


# --- the gradient-check helpers themselves ---------------------------------------------


def test_layernorm_and_groupnorm_refuse_each_others_cache():
    from bnhelpers import groupnorm_backward, groupnorm_forward, layernorm_backward, layernorm_forward

    rng = np.random.default_rng(0)
    x2, x4 = rng.standard_normal((4, 8)), rng.standard_normal((4, 8, 1, 1))
    out2, ln_cache = layernorm_forward(x2, np.ones(8), np.zeros(8), {})
    out4, gn_cache = groupnorm_forward(x4, np.ones(8), np.zeros(8), 2, {})
    with pytest.raises(TypeError, match="cache returned by groupnorm_forward, got one from layernorm_forward"):
        groupnorm_backward(out2, ln_cache)
    with pytest.raises(TypeError, match="cache returned by layernorm_forward, got one from groupnorm_forward"):
        layernorm_backward(out4, gn_cache)


def test_groupnorm_of_activations_is_groupnorm_of_one_position_maps():
    rng = np.random.default_rng(3)
    x, dout = rng.standard_normal((6, 8)), rng.standard_normal((6, 8))
    gamma, beta = rng.uniform(0.5, 2, 8), rng.standard_normal(8)
    out, cache = groupnorm_forward(x, gamma, beta, 4, {})
    maps_out, maps_cache = groupnorm_forward(x.reshape(6, 8, 1, 1), gamma, beta, 4, {})
    assert out.shape == (6, 8)
    np.testing.assert_array_equal(out, maps_out.reshape(6, 8))
    dx, dgamma, _ = groupnorm_backward(dout, cache)
    maps_dx, maps_dgamma, _ = groupnorm_backward(dout.reshape(6, 8, 1, 1), maps_cache)
    assert dx.shape == (6, 8)
    np.testing.assert_array_equal(dx, maps_dx.reshape(6, 8))
    np.testing.assert_array_equal(dgamma, maps_dgamma)
