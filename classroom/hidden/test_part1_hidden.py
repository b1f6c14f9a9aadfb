"""Hidden tests, Part 1. Instructor material: never in the student release.

Each test's docstring is the feedback line a student sees; it names the
property, not the code.
"""

import numpy as np
import pytest

from bnhelpers import CONVENTIONS, batchnorm_backward, batchnorm_backward_fast, batchnorm_forward
from bnhelpers.gradcheck import gradient_check

SHAPES = [(2, 1), (2, 7), (3, 4), (17, 5), (64, 33)]


def batch(N, D, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = (rng.uniform(0.5, 4) * rng.standard_normal((N, D)) + rng.uniform(-3, 3)).astype(dtype)
    return x, rng.standard_normal(D).astype(dtype), rng.standard_normal(D).astype(dtype), rng.standard_normal((N, D))


def reference(x, gamma, beta, eps):
    mean, var = x.mean(axis=0), x.var(axis=0)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_the_formula_for_many_shapes_including_batches_of_two(shape):
    """Training-mode output equals gamma * (x - mean) / sqrt(var + eps) + beta for shapes from (2, 1) to (64, 33)."""
    x, gamma, beta, _ = batch(*shape, seed=sum(shape))
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out, reference(x, gamma, beta, 1e-5), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_keeps_the_dtype_of_x(dtype):
    """float32 input gives float32 output (and float64 gives float64), with matching accuracy."""
    x, gamma, beta, _ = batch(16, 6, seed=3, dtype=dtype)
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    assert out.dtype == dtype
    np.testing.assert_allclose(
        out, reference(x, gamma, beta, 1e-5), rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-4
    )


def test_forward_uses_eps_inside_the_square_root():
    """A large eps shrinks the output exactly as sqrt(var / (var + eps))."""
    x, gamma, beta, _ = batch(10, 4, seed=4)
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": 2.0})
    np.testing.assert_allclose(out, reference(x, gamma, beta, 2.0), rtol=1e-10)


def test_cache_holds_the_batch_statistics():
    """The cache holds x_hat, the batch mean, the biased batch variance, std = sqrt(var + eps) and gamma."""
    x, gamma, beta, _ = batch(9, 3, seed=5)
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": 0.1})
    np.testing.assert_allclose(cache.mean, x.mean(axis=0))
    np.testing.assert_allclose(cache.var, x.var(axis=0))
    np.testing.assert_allclose(cache.std, np.sqrt(x.var(axis=0) + 0.1))
    np.testing.assert_allclose(cache.x_hat, (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 0.1))
    np.testing.assert_allclose(cache.gamma, gamma)


def test_running_statistics_over_several_training_steps():
    """Over five training batches the running statistics follow running <- m * running + (1 - m) * batch."""
    bn_param, mean, var = {"mode": "train", "momentum": 0.8}, np.zeros(4), np.ones(4)
    for step in range(5):
        x, gamma, beta, _ = batch(12, 4, seed=10 + step)
        batchnorm_forward(x, gamma, beta, bn_param)
        mean, var = 0.8 * mean + 0.2 * x.mean(axis=0), 0.8 * var + 0.2 * x.var(axis=0)
    np.testing.assert_allclose(bn_param["running_mean"], mean, rtol=1e-10)
    np.testing.assert_allclose(bn_param["running_var"], var, rtol=1e-10)
    assert bn_param["num_batches_tracked"] == 5


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_running_statistics_follow_the_convention_in_bn_param(convention):
    """With bn_param['convention'] set, a training step updates the running statistics by that convention's rule."""
    x, gamma, beta, _ = batch(6, 3, seed=20)
    bn_param = {"mode": "train", "convention": convention}
    batchnorm_forward(x, gamma, beta, bn_param)
    c = CONVENTIONS[convention]
    a = c.momentum if c.momentum_is_new else 1 - c.momentum
    stored = x.var(axis=0) * (6 / 5 if c.unbiased else 1)
    np.testing.assert_allclose(bn_param["running_mean"], a * x.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(bn_param["running_var"], (1 - a) * c.running_var_init + a * stored, rtol=1e-10)


def test_cumulative_average_through_bn_param_counts_this_batch():
    """With PyTorch's momentum=None the running mean after k batches is the mean of the k batch means."""
    bn_param, means = {"mode": "train", "convention": "pytorch", "momentum": None}, []
    for step in range(4):
        x, gamma, beta, _ = batch(8, 3, seed=40 + step)
        batchnorm_forward(x, gamma, beta, bn_param)
        means.append(x.mean(axis=0))
    np.testing.assert_allclose(bn_param["running_mean"], np.mean(means, axis=0), rtol=1e-10)


def test_test_mode_leaves_running_statistics_alone():
    """A test-mode pass normalizes with the running statistics and changes nothing in bn_param."""
    x, gamma, beta, _ = batch(5, 3, seed=6)
    mean, var = np.array([1.0, -2.0, 0.5]), np.array([4.0, 0.25, 1.0])
    bn_param = {"mode": "test", "running_mean": mean.copy(), "running_var": var.copy(), "eps": 1e-3}
    out, _ = batchnorm_forward(x, gamma, beta, bn_param)
    np.testing.assert_allclose(out, gamma * (x - mean) / np.sqrt(var + 1e-3) + beta, rtol=1e-10)
    np.testing.assert_array_equal(bn_param["running_mean"], mean)
    np.testing.assert_array_equal(bn_param["running_var"], var)


@pytest.mark.parametrize("backward", [batchnorm_backward, batchnorm_backward_fast], ids=["staged", "fast"])
@pytest.mark.parametrize("shape", [(2, 3), (5, 1), (13, 6)])
def test_backward_matches_numerical_gradients_for_several_shapes(backward, shape):
    """Both backward passes agree with finite differences, batches of two included."""
    x, gamma, beta, dout = batch(*shape, seed=30 + shape[0])
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = backward(dout, cache)
    errors = gradient_check(
        lambda: batchnorm_forward(x, gamma, beta, {"mode": "train"})[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )
    assert max(errors.values()) < 1e-5, errors


def test_the_two_backward_passes_agree_in_float32():
    """The staged and closed-form backward passes give the same gradients on float32 input."""
    x, gamma, beta, dout = batch(32, 8, seed=7, dtype=np.float32)
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    for a, b in zip(
        batchnorm_backward(dout.astype(np.float32), cache),
        batchnorm_backward_fast(dout.astype(np.float32), cache),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_gradient_with_respect_to_x_sums_to_zero_over_the_batch():
    """Shifting a feature by a constant does not change BN's output, so dx sums to zero over the batch."""
    x, gamma, beta, dout = batch(20, 5, seed=8)
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": 1e-12})
    for backward in (batchnorm_backward, batchnorm_backward_fast):
        dx, _, _ = backward(dout, cache)
        np.testing.assert_allclose(dx.sum(axis=0), 0, atol=1e-8)
