"""Hidden tests, Part 2. Instructor material: never in the student release."""

import numpy as np
import pytest

from bnhelpers import CONVENTIONS, batchnorm_fold, batchnorm_forward


def independent_update(c, running_mean, running_var, batch_mean, batch_var, n, momentum, k):
    a = 1 / k if momentum is None else (momentum if c.momentum_is_new else 1 - momentum)
    stored = batch_var * n / (n - 1) if c.unbiased else batch_var
    return (1 - a) * running_mean + a * batch_mean, (1 - a) * running_var + a * stored


@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_every_convention_over_several_batches(name):
    """Each framework's convention (momentum meaning, unbiased or biased variance) holds over six batches."""
    c, rng = CONVENTIONS[name], np.random.default_rng(len(name))
    mean, var = np.zeros(4), np.full(4, c.running_var_init)
    expected = mean, var
    for k in range(1, 7):
        batch_mean, batch_var, n = rng.standard_normal(4), rng.random(4) + 0.1, int(rng.integers(2, 50))
        mean, var = c.update(mean, var, batch_mean, batch_var, n, c.momentum, k)
        expected = independent_update(c, *expected, batch_mean, batch_var, n, c.momentum, k)
    np.testing.assert_allclose(mean, expected[0], rtol=1e-12)
    np.testing.assert_allclose(var, expected[1], rtol=1e-12)


def test_cumulative_average_equals_the_mean_of_the_batch_statistics():
    """PyTorch's momentum=None: after k batches the running mean is the plain mean of the k batch means."""
    c, rng = CONVENTIONS["pytorch"], np.random.default_rng(1)
    mean, var, means = np.zeros(3), np.ones(3), []
    for k in range(1, 8):
        batch_mean = rng.standard_normal(3)
        means.append(batch_mean)
        mean, var = c.update(mean, var, batch_mean, np.ones(3), 10, None, k)
    np.testing.assert_allclose(mean, np.mean(means, axis=0), rtol=1e-12)


def test_update_keeps_float32_and_does_not_modify_its_inputs():
    """update returns arrays in the running statistics' dtype and leaves every input unchanged."""
    c = CONVENTIONS["keras"]
    running_mean, running_var = np.zeros(3, np.float32), np.ones(3, np.float32)
    batch_mean, batch_var = np.array([1.0, 2, 3]), np.array([2.0, 2, 2])
    new_mean, new_var = c.update(running_mean, running_var, batch_mean, batch_var, 8, 0.99, 1)
    assert new_mean.dtype == np.float32 and new_var.dtype == np.float32
    np.testing.assert_array_equal(running_mean, 0)
    np.testing.assert_array_equal(running_var, 1)
    np.testing.assert_allclose(new_mean, [0.01, 0.02, 0.03], rtol=1e-6)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (20, 11)])
def test_fold_equals_linear_then_bn_for_several_shapes(shape, with_bias):
    """The folded layer reproduces Linear followed by test-mode BN, with and without a bias."""
    rng = np.random.default_rng(sum(shape))
    D_in, D_out = shape
    x, W = rng.standard_normal((7, D_in)), rng.standard_normal((D_in, D_out))
    b = rng.standard_normal(D_out) if with_bias else None
    gamma, beta = rng.standard_normal(D_out), rng.standard_normal(D_out)
    mean, var = rng.standard_normal(D_out), rng.random(D_out) + 0.01
    W_f, b_f = batchnorm_fold(W, b, gamma, beta, mean, var, eps=1e-3)
    y = x @ W + (b if with_bias else 0)
    expected, _ = batchnorm_forward(
        y, gamma, beta, {"mode": "test", "running_mean": mean, "running_var": var, "eps": 1e-3}
    )
    np.testing.assert_allclose(x @ W_f + b_f, expected, rtol=1e-9, atol=1e-10)


def test_fold_keeps_float32_and_does_not_modify_its_inputs():
    """Folding float32 weights gives float32 weights and leaves W and b unchanged."""
    rng = np.random.default_rng(2)
    W, b = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    W0, b0 = W.copy(), b.copy()
    W_f, b_f = batchnorm_fold(W, b, np.ones(3), np.zeros(3), np.zeros(3), np.full(3, 4.0))
    assert W_f.dtype == np.float32 and b_f.dtype == np.float32
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(b, b0)
    np.testing.assert_allclose(W_f, W / np.sqrt(4.0 + 1e-5), rtol=1e-6)
