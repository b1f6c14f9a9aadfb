"""Part 3 (notebook 05): spatial BN by the reshape trick, LayerNorm and GroupNorm.

Run them with `make test`. Spatial BN reuses your Part 1 functions, so do Part 1 first.
The grader runs more tests of the same kind (layouts, group counts, dtypes).
"""

import numpy as np

from bnhelpers import (
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)
from bnhelpers.gradcheck import gradient_check
from bnhelpers.spatial import from_rows, to_rows


def maps(N=3, C=4, H=5, W=6, seed=0):
    rng = np.random.default_rng(seed)
    return (2 * rng.standard_normal((N, C, H, W)) + 1), rng.standard_normal(C), rng.standard_normal(C)


def check_gradients(forward, backward, x, gamma, beta, seed=1):
    dout = np.random.default_rng(seed).standard_normal(x.shape)
    _, cache = forward(x, gamma, beta)
    dx, dgamma, dbeta = backward(dout, cache)
    errors = gradient_check(
        lambda: forward(x, gamma, beta)[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )
    assert max(errors.values()) < 1e-6, errors


def test_to_rows_makes_one_row_per_sample_and_position():
    """to_rows gives an (N*H*W, C) matrix whose rows are the channel vectors x[n, :, h, w]; from_rows undoes it."""
    x, _, _ = maps()
    rows = to_rows(x, "NCHW")
    assert rows.shape == (3 * 5 * 6, 4)
    assert sorted(map(tuple, rows)) == sorted(map(tuple, x.transpose(0, 2, 3, 1).reshape(-1, 4)))
    np.testing.assert_array_equal(from_rows(rows, x.shape, "NCHW"), x)


def test_spatial_bn_normalizes_each_channel_over_batch_and_positions():
    """Each output channel has mean beta and std |gamma| over (N, H, W)."""
    x, gamma, beta = maps()
    out, _ = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": 1e-12})
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), beta, atol=1e-9)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), np.abs(gamma), rtol=1e-6)


def test_spatial_bn_backward_matches_numerical_gradients():
    """spatial_batchnorm_backward agrees with finite differences."""
    x, gamma, beta = maps(2, 3, 3, 4)

    def forward(x, gamma, beta):
        return spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})

    check_gradients(forward, spatial_batchnorm_backward, x, gamma, beta)


def test_layernorm_normalizes_each_sample():
    """Each output row of LayerNorm (before gamma, beta) has mean 0 and std 1."""
    x = maps()[0].reshape(3, -1)
    D = x.shape[1]
    out, _ = layernorm_forward(x, np.ones(D), np.zeros(D), {"eps": 1e-12})
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(out.std(axis=1), 1, rtol=1e-6)


def test_layernorm_backward_matches_numerical_gradients():
    """layernorm_backward agrees with finite differences."""
    rng = np.random.default_rng(2)
    x, gamma, beta = rng.standard_normal((4, 6)), rng.standard_normal(6), rng.standard_normal(6)
    check_gradients(lambda x, g, b: layernorm_forward(x, g, b, {}), layernorm_backward, x, gamma, beta)


def test_groupnorm_normalizes_each_group_of_each_sample():
    """With gamma 1 and beta 0, each group of C/G channels of each sample has mean 0 and std 1."""
    x, _, _ = maps()
    out, _ = groupnorm_forward(x, np.ones(4), np.zeros(4), 2, {"eps": 1e-12})
    groups = out.reshape(3, 2, -1)
    np.testing.assert_allclose(groups.mean(axis=2), 0, atol=1e-9)
    np.testing.assert_allclose(groups.std(axis=2), 1, rtol=1e-6)


def test_groupnorm_backward_matches_numerical_gradients():
    """groupnorm_backward agrees with finite differences."""
    x, gamma, beta = maps(2, 4, 3, 3)
    check_gradients(lambda x, g, b: groupnorm_forward(x, g, b, 2, {}), groupnorm_backward, x, gamma, beta)
