"""Spatial batch normalization, LayerNorm, GroupNorm, and the gradient-check helpers."""

import numpy as np
import pytest
from conftest import assert_gradients_match

from bnhelpers import (
    gradient_check,
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
    numerical_gradient,
    rel_error,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)


def image_batch(seed, shape=(3, 4, 5, 6)):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.uniform(-3, 3, (1, C, 1, 1)) + rng.uniform(0.5, 4, (1, C, 1, 1)) * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2, C) * rng.choice([-1, 1], C)
    beta = rng.standard_normal(C)
    return x, gamma, beta, rng.standard_normal(shape)


# --- spatial batch normalization ------------------------------------------------------


def test_spatial_statistics_are_per_channel_over_batch_and_positions():
    x, gamma, beta, _ = image_batch(0)
    out, _ = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), beta, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), np.abs(gamma), rtol=1e-5)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_spatial_gradients_match_finite_differences(layout):
    x, gamma, beta, dout = image_batch(1, (2, 3, 4, 3))
    if layout == "NHWC":
        x, dout = (
            np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
            np.ascontiguousarray(dout.transpose(0, 2, 3, 1)),
        )
    out, cache = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"}, layout=layout)
    dx, dgamma, dbeta = spatial_batchnorm_backward(dout, cache)
    assert_gradients_match(
        lambda: spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"}, layout=layout)[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )


def test_channels_last_equals_channels_first():
    x, gamma, beta, dout = image_batch(2)
    p1, p2 = {"mode": "train"}, {"mode": "train"}
    out1, c1 = spatial_batchnorm_forward(x, gamma, beta, p1)
    out2, c2 = spatial_batchnorm_forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), gamma, beta, p2, layout="NHWC")
    np.testing.assert_allclose(out2, out1.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p1["running_var"], p2["running_var"], rtol=1e-12)
    dx1 = spatial_batchnorm_backward(dout, c1)[0]
    dx2 = spatial_batchnorm_backward(np.ascontiguousarray(dout.transpose(0, 2, 3, 1)), c2)[0]
    np.testing.assert_allclose(dx2, dx1.transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)


def test_spatial_unbiased_correction_counts_every_position():
    x, gamma, beta, _ = image_batch(3)
    p = {"mode": "train", "convention": "pytorch", "momentum": 1.0}
    spatial_batchnorm_forward(x, gamma, beta, p)
    np.testing.assert_allclose(p["running_var"], x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)


def test_spatial_output_is_contiguous_and_keeps_float32():
    x, gamma, beta, dout = image_batch(4)
    out, cache = spatial_batchnorm_forward(x.astype(np.float32), gamma, beta, {"mode": "train"})
    assert out.dtype == np.float32 and out.flags.c_contiguous
    dx, dgamma, _ = spatial_batchnorm_backward(dout.astype(np.float32), cache)
    assert dx.dtype == dgamma.dtype == np.float32 and dx.flags.c_contiguous


def test_spatial_bad_input():
    x, gamma, beta, _ = image_batch(5)
    with pytest.raises(ValueError, match="layout must be 'NCHW' or 'NHWC'"):
        spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"}, layout="CHWN")
    with pytest.raises(ValueError, match=r"x must have 4 dimensions"):
        spatial_batchnorm_forward(x[0], gamma, beta, {"mode": "train"})
    with pytest.raises(ValueError, match=r"gamma must have shape \(4,\)"):
        spatial_batchnorm_forward(x, gamma[:3], beta, {"mode": "train"})
    p = {"mode": "train"}
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        spatial_batchnorm_forward(x[:1, :, :1, :1].copy(), gamma, beta, p)
    assert p == {"mode": "train"}


# --- LayerNorm and GroupNorm -----------------------------------------------------------


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
    out, cache = groupnorm_forward(x, gamma, beta, G, {})
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


def test_numerical_gradient_of_a_known_function_and_restores_x():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    saved = x.copy()
    dout = np.array([[1.0, 2.0], [3.0, 4.0]])
    grad = numerical_gradient(lambda v: v**3, x, dout)
    np.testing.assert_allclose(grad, 3 * saved**2 * dout, rtol=1e-8)
    np.testing.assert_array_equal(x, saved)


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.arange(4.0)
    saved = x.copy()
    calls = []

    def failing(v):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return v

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(failing, x, np.ones(4))
    np.testing.assert_array_equal(x, saved)


def test_rel_error_and_gradient_check_argument_errors():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.ones(3), -np.ones(3)) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        rel_error(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"unmatched: \['gamma'\]"):
        gradient_check(lambda: None, {"x": np.ones(2)}, {"x": np.ones(2), "gamma": np.ones(2)}, np.ones(2))
    with pytest.raises(TypeError, match="numpy array of floats"):
        numerical_gradient(lambda v: v, np.arange(3), np.ones(3))


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
