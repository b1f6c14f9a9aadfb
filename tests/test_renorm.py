"""bnhelpers.renorm: Batch Renormalization, its schedule and its layers."""

import numpy as np
import pytest
from helpers import assert_gradients_match, assert_same_as_batchnorm, features, renorm_param

from bnhelpers import (
    BatchNorm2d,
    BatchRenorm1d,
    BatchRenorm2d,
    batchnorm_backward_fast,
    batchnorm_forward,
    batchrenorm_backward,
    batchrenorm_forward,
    renorm_limits,
)


def test_batchrenorm_with_rmax_1_and_dmax_0_is_batchnorm():
    x, gamma, beta, dout = features(0)
    p_renorm, p_bn = renorm_param(5, 1), renorm_param(5, 1)
    out, cache = batchrenorm_forward(x, gamma, beta, p_renorm, rmax=1.0, dmax=0.0)
    assert_same_as_batchnorm(
        out,
        batchrenorm_backward(dout, cache),
        p_renorm,
        batchnorm_forward(x, gamma, beta, p_bn),
        batchnorm_backward_fast,
        dout,
        p_bn,
    )


def test_batchrenorm_without_clipping_normalizes_with_the_running_statistics():
    x, gamma, beta, _ = features(2)
    p = renorm_param(5, 3)
    mu, sigma = p["running_mean"].copy(), np.sqrt(p["running_var"] + 1e-5)
    out, cache = batchrenorm_forward(x, gamma, beta, p, rmax=1e6, dmax=1e6)
    np.testing.assert_allclose(out, gamma * (x - mu) / sigma + beta, rtol=1e-10)
    assert np.all(cache.r != 1)
    assert np.all(cache.d != 0)


def test_batchrenorm_clips_r_and_d():
    x, gamma, beta, _ = features(4)
    _, cache = batchrenorm_forward(x, gamma, beta, renorm_param(5, 5), rmax=1.5, dmax=0.25)
    assert np.all((cache.r >= 1 / 1.5) & (cache.r <= 1.5))
    assert np.all(np.abs(cache.d) <= 0.25)
    assert np.any(np.isclose(np.abs(cache.d), 0.25))  # the test data do reach the limit


@pytest.mark.parametrize("limits", [(1.0, 0.0), (2.0, 1.0), (1e6, 1e6)])
def test_batchrenorm_gradients_match_finite_differences_with_r_and_d_held_constant(limits):
    x, gamma, beta, dout = features(6)
    p = renorm_param(5, 7)
    _, cache = batchrenorm_forward(x, gamma, beta, dict(p), *limits)
    dx, dgamma, dbeta = batchrenorm_backward(dout, cache)
    r, d = cache.r, cache.d

    def forward_with_constant_r_d():
        # The same computation with r and d frozen at the values of the pass above.
        _out, bn = batchnorm_forward(x, np.ones(5), np.zeros(5), dict(p))
        return gamma * (bn.x_hat * r + d) + beta

    assert_gradients_match(
        forward_with_constant_r_d,
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )


def test_batchrenorm_test_mode_is_batchnorm_test_mode():
    x, gamma, beta, dout = features(8)
    p = dict(renorm_param(5, 9), mode="test")
    out, cache = batchrenorm_forward(x, gamma, beta, p, rmax=3.0, dmax=5.0)
    expected, bn_cache = batchnorm_forward(x, gamma, beta, dict(p))
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_allclose(
        batchrenorm_backward(dout, cache)[0], batchnorm_backward_fast(dout, bn_cache)[0], rtol=1e-12
    )


def test_renorm_limits_schedule_and_bad_input():
    assert renorm_limits(0, warmup=10, ramp=20) == (1.0, 0.0)
    assert renorm_limits(10, warmup=10, ramp=20) == (1.0, 0.0)
    assert renorm_limits(20, warmup=10, ramp=20) == pytest.approx((2.0, 2.5))
    assert renorm_limits(500, warmup=10, ramp=20, rmax=2.0, dmax=1.0) == (2.0, 1.0)
    with pytest.raises(ValueError, match="rmax must be a finite number >= 1"):
        renorm_limits(0, warmup=1, ramp=1, rmax=0.5)
    x, gamma, beta, _ = features(10)
    p = renorm_param(5, 11)
    before = {k: np.copy(v) for k, v in p.items()}
    with pytest.raises(ValueError, match="rmax must be a finite number >= 1"):
        batchrenorm_forward(x, gamma, beta, p, rmax=0.5, dmax=0.0)
    assert all(np.array_equal(p[k], v) for k, v in before.items())  # nothing updated
    with pytest.raises(TypeError, match="cache must be the cache returned by batchrenorm_forward"):
        batchrenorm_backward(x, None)


def test_batchrenorm_layers_follow_the_schedule_and_the_2d_layer_is_per_channel():
    layer = BatchRenorm1d(5, warmup=2, ramp=2, rmax=3.0, dmax=4.0, dtype=np.float64)
    x, _, _, dout = features(12)
    seen = []
    for _ in range(5):
        seen.append(layer.limits())
        layer.forward(x)
        layer.backward(dout)
    assert seen == [(1.0, 0.0), (1.0, 0.0), (1.0, 0.0), (2.0, 2.0), (3.0, 4.0)]
    with pytest.raises(TypeError, match="unexpected keyword argument 'virtual_batch_size'"):  # Ghost BN is BN's
        BatchRenorm1d(5, warmup=1, ramp=1, virtual_batch_size=2)
    images, _, _, dmaps = features(13, (3, 4, 5, 5))
    layer2d = BatchRenorm2d(4, warmup=0, ramp=1, dtype=np.float64)
    bn2d = BatchNorm2d(4, dtype=np.float64)
    np.testing.assert_allclose(layer2d.forward(images), bn2d.forward(images), rtol=1e-12)  # step 0: rmax 1, dmax 0
    np.testing.assert_allclose(layer2d.backward(dmaps), bn2d.backward(dmaps), rtol=1e-12)


def test_spatial_batchrenorm_is_batchrenorm_on_the_rows_of_the_feature_maps():
    import bnhelpers as bh
    from bnhelpers.spatial import from_rows, to_rows

    images, gamma, beta, dmaps = features(14, (3, 4, 5, 5))
    p_maps, p_rows = renorm_param(4, 15), renorm_param(4, 15)
    out, cache = bh.spatial_batchrenorm_forward(images, gamma, beta, p_maps, rmax=2.0, dmax=1.0)
    rows_out, rows_cache = batchrenorm_forward(to_rows(images, "NCHW"), gamma, beta, p_rows, rmax=2.0, dmax=1.0)
    np.testing.assert_array_equal(out, from_rows(rows_out, images.shape, "NCHW"))
    np.testing.assert_array_equal(p_maps["running_var"], p_rows["running_var"])
    dx, dgamma, dbeta = bh.spatial_batchrenorm_backward(dmaps, cache)
    rows_dx, rows_dgamma, rows_dbeta = batchrenorm_backward(to_rows(dmaps, "NCHW"), rows_cache)
    np.testing.assert_array_equal(dx, from_rows(rows_dx, images.shape, "NCHW"))
    np.testing.assert_array_equal(dbeta, rows_dbeta)
    np.testing.assert_array_equal(dgamma, rows_dgamma)
    with pytest.raises(ValueError, match="dout must have the shape of the forward output"):
        bh.spatial_batchrenorm_backward(dmaps[:2], cache)
    with pytest.raises(TypeError, match="cache must be the cache returned by spatial_batchrenorm_forward"):
        bh.spatial_batchrenorm_backward(dmaps, rows_cache)
