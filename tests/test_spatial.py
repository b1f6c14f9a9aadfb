"""Spatial batch normalization: per-channel statistics, both layouts, gradients, bad input."""

import numpy as np
import pytest
from helpers import assert_gradients_match, image_batch

from bnhelpers import (
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)


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
    _out, cache = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"}, layout=layout)
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
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    dx, dgamma, _ = spatial_batchnorm_backward(dout.astype(np.float32), cache)
    assert dx.dtype == dgamma.dtype == np.float32
    assert dx.flags.c_contiguous


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
