"""bnhelpers.ghost: Ghost BN over virtual batches, functional and as a layer option."""

import numpy as np
import pytest
from helpers import assert_gradients_match, assert_same_as_batchnorm, features

from bnhelpers import (
    BatchNorm1d,
    BatchNorm2d,
    batchnorm_backward_fast,
    batchnorm_forward,
    ghost_batchnorm_backward,
    ghost_batchnorm_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 2, 2)])
def test_ghost_batchnorm_with_one_virtual_batch_is_batchnorm(shape):
    x, gamma, beta, dout = features(14, shape)
    plain_forward, plain_backward = (
        (batchnorm_forward, batchnorm_backward_fast)
        if len(shape) == 2
        else (spatial_batchnorm_forward, spatial_batchnorm_backward)
    )
    p_ghost, p_bn = {"mode": "train"}, {"mode": "train"}
    out, cache = ghost_batchnorm_forward(x, gamma, beta, p_ghost, virtual_batch_size=shape[0])
    assert_same_as_batchnorm(
        out,
        ghost_batchnorm_backward(dout, cache),
        p_ghost,
        plain_forward(x, gamma, beta, p_bn),
        plain_backward,
        dout,
        p_bn,
    )


def test_ghost_batchnorm_normalizes_each_virtual_batch_and_updates_running_statistics_in_order():
    x, gamma, beta, dout = features(15, (12, 4))
    p = {"mode": "train"}
    out, cache = ghost_batchnorm_forward(x, gamma, beta, p, virtual_batch_size=4)
    sequential = {"mode": "train"}
    for k in range(3):
        part, _ = batchnorm_forward(x[4 * k : 4 * k + 4], gamma, beta, sequential)
        np.testing.assert_allclose(out[4 * k : 4 * k + 4], part, rtol=1e-12)
    np.testing.assert_allclose(p["running_mean"], sequential["running_mean"], rtol=1e-12)
    assert p["num_batches_tracked"] == 3
    dx, dgamma, dbeta = ghost_batchnorm_backward(dout, cache)
    assert_gradients_match(
        lambda: ghost_batchnorm_forward(x, gamma, beta, {"mode": "train"}, 4)[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )


def test_ghost_batchnorm_bad_input_leaves_state_alone():
    x, gamma, beta, _ = features(16, (12, 4))
    p = {"mode": "train"}
    with pytest.raises(ValueError, match=r"virtual_batch_size \(5\) must divide the batch size N=12"):
        ghost_batchnorm_forward(x, gamma, beta, p, 5)
    with pytest.raises(ValueError, match="virtual_batch_size must be an integer >= 2"):
        ghost_batchnorm_forward(x, gamma, beta, p, 1)
    with pytest.raises(TypeError, match="bn_param must be a dict"):
        ghost_batchnorm_forward(x, gamma, beta, None, 4)
    x[7, 0] = np.nan  # the second virtual batch fails after the first has been normalized
    with pytest.raises(ValueError, match="NaN"):
        ghost_batchnorm_forward(x, gamma, beta, p, 4)
    assert p == {"mode": "train"}


def test_batchnorm_layer_virtual_batch_size_option():
    x, _, _, dout = features(17, (12, 4))
    ghost, plain = BatchNorm1d(4, virtual_batch_size=4, dtype=np.float64), BatchNorm1d(4, dtype=np.float64)
    out = ghost.forward(x)
    np.testing.assert_allclose(out[:4], plain.forward(x[:4]), rtol=1e-12)
    ghost.backward(dout)
    assert ghost.bn_param["num_batches_tracked"] == 3
    assert "virtual_batch_size=4" in repr(ghost)
    ghost.training = False  # eval mode: running statistics for the whole batch, as BN
    assert ghost.forward(x).shape == (12, 4)
    with pytest.raises(ValueError, match="virtual_batch_size must be an integer >= 2"):
        BatchNorm2d(4, virtual_batch_size=1)
