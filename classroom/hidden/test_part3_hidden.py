"""Hidden tests, Part 3. Instructor material: never in the student release."""

import numpy as np
import pytest

from bnhelpers import (
    batchnorm_forward,
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)
from bnhelpers.gradcheck import gradient_check


def maps(shape, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    C = shape[1]
    return (3 * rng.standard_normal(shape) - 1).astype(dtype), rng.standard_normal(C), rng.standard_normal(C)


def assert_gradients(forward, backward, x, gamma, beta, tolerance=1e-5):
    dout = np.random.default_rng(99).standard_normal(x.shape)
    _, cache = forward(x, gamma, beta)
    dx, dgamma, dbeta = backward(dout, cache)
    errors = gradient_check(
        lambda: forward(x, gamma, beta)[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )
    assert max(errors.values()) < tolerance, errors


@pytest.mark.parametrize("shape", [(2, 1, 1, 1), (1, 3, 2, 2), (4, 5, 3, 7)])
def test_spatial_bn_equals_bn_on_every_sample_and_position(shape):
    """Spatial BN equals BN of the (N*H*W, C) matrix of channel vectors, running statistics included."""
    x, gamma, beta = maps(shape, seed=sum(shape))
    p_spatial, p_rows = {"mode": "train"}, {"mode": "train"}
    out, _ = spatial_batchnorm_forward(x, gamma, beta, p_spatial)
    rows, _ = batchnorm_forward(x.transpose(0, 2, 3, 1).reshape(-1, shape[1]), gamma, beta, p_rows)
    np.testing.assert_allclose(
        out, rows.reshape(shape[0], shape[2], shape[3], shape[1]).transpose(0, 3, 1, 2), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(p_spatial["running_var"], p_rows["running_var"], rtol=1e-12)


def test_spatial_bn_channels_last_layout():
    """layout='NHWC' normalizes over the last axis and gives the NCHW result transposed."""
    x, gamma, beta = maps((3, 4, 5, 2), seed=1)
    nchw, _ = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    nhwc, cache = spatial_batchnorm_forward(
        x.transpose(0, 2, 3, 1).copy(), gamma, beta, {"mode": "train"}, layout="NHWC"
    )
    np.testing.assert_allclose(nhwc, nchw.transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    dout = np.random.default_rng(0).standard_normal(nhwc.shape)
    dx, _, _ = spatial_batchnorm_backward(dout, cache)
    assert dx.shape == nhwc.shape


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_spatial_bn_backward_in_both_layouts(layout):
    """The spatial backward pass agrees with finite differences in both layouts."""
    x, gamma, beta = maps((2, 3, 2, 3), seed=2)

    def forward(x, g, b):
        return spatial_batchnorm_forward(x, g, b, {"mode": "train"}, layout=layout)

    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1).copy()
    assert_gradients(forward, spatial_batchnorm_backward, x, gamma, beta)


def test_spatial_bn_keeps_float32():
    """float32 feature maps give float32 outputs and gradients."""
    x, gamma, beta = maps((4, 3, 5, 5), seed=3, dtype=np.float32)
    out, cache = spatial_batchnorm_forward(x, gamma.astype(np.float32), beta.astype(np.float32), {"mode": "train"})
    dx, _, _ = spatial_batchnorm_backward(np.ones_like(out), cache)
    assert out.dtype == np.float32 and dx.dtype == np.float32


@pytest.mark.parametrize("shape", [(1, 4), (2, 9), (7, 30)])
def test_layernorm_matches_the_formula_and_gradients(shape):
    """LayerNorm equals gamma * (x - row mean) / sqrt(row var + eps) + beta; its gradients are right."""
    rng = np.random.default_rng(sum(shape))
    x, gamma, beta = 2 * rng.standard_normal(shape) + 1, rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    out, _ = layernorm_forward(x, gamma, beta, {"eps": 0.01})
    mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    np.testing.assert_allclose(out, gamma * (x - mean) / np.sqrt(var + 0.01) + beta, rtol=1e-10, atol=1e-12)
    assert_gradients(lambda x, g, b: layernorm_forward(x, g, b, {}), layernorm_backward, x, gamma, beta)


def test_layernorm_does_not_depend_on_the_other_samples():
    """A sample's LayerNorm output is the same alone or in a batch."""
    x, gamma, beta = maps((5, 6, 1, 1), seed=4)
    x = x.reshape(5, 6)
    batch, _ = layernorm_forward(x, gamma, beta, {})
    alone, _ = layernorm_forward(x[2:3], gamma, beta, {})
    np.testing.assert_allclose(alone[0], batch[2], rtol=1e-12)


@pytest.mark.parametrize("G", [1, 2, 6])
def test_groupnorm_matches_the_formula_and_gradients_for_any_group_count(G):
    """GroupNorm standardizes each group of C/G channels per sample, for G=1, 2 and C; its gradients are right."""
    x, gamma, beta = maps((3, 6, 2, 3), seed=G)
    out, _ = groupnorm_forward(x, gamma, beta, G, {"eps": 1e-4})
    groups = x.reshape(3, G, -1)
    x_hat = ((groups - groups.mean(axis=2, keepdims=True)) / np.sqrt(groups.var(axis=2, keepdims=True) + 1e-4)).reshape(
        x.shape
    )
    np.testing.assert_allclose(out, gamma[:, None, None] * x_hat + beta[:, None, None], rtol=1e-10, atol=1e-12)
    assert_gradients(lambda x, g, b: groupnorm_forward(x, g, b, G, {}), groupnorm_backward, x, gamma, beta)


def test_groupnorm_with_one_group_is_layernorm_over_each_sample():
    """GroupNorm with G=1 equals LayerNorm of each sample's flattened (C, H, W) before gamma and beta."""
    x, _, _ = maps((2, 4, 3, 3), seed=5)
    gn, _ = groupnorm_forward(x, np.ones(4), np.zeros(4), 1, {})
    ln, _ = layernorm_forward(x.reshape(2, -1), np.ones(36), np.zeros(36), {})
    np.testing.assert_allclose(gn.reshape(2, -1), ln, rtol=1e-10, atol=1e-12)


def test_per_sample_norms_keep_float32():
    """LayerNorm and GroupNorm give float32 outputs and gradients for float32 input."""
    x = np.random.default_rng(6).standard_normal((4, 4, 3, 3)).astype(np.float32)
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    out, cache = groupnorm_forward(x, ones, zeros, 2, {})
    assert out.dtype == np.float32 and groupnorm_backward(np.ones_like(out), cache)[0].dtype == np.float32
    flat = x.reshape(4, -1)
    out, cache = layernorm_forward(flat, np.ones(36, np.float32), np.zeros(36, np.float32), {})
    assert out.dtype == np.float32 and layernorm_backward(np.ones_like(out), cache)[0].dtype == np.float32
