"""Part 2 (notebook 04): Convention.weight_on_new, Convention.update, batchnorm_fold.

Run them with `make test`. The grader runs more tests of the same kind
(every convention, several steps, other shapes and dtypes).
"""

import numpy as np

from bnhelpers import CONVENTIONS, batchnorm_fold, batchnorm_forward


def test_course_update_keeps_momentum_on_the_old_value():
    """course: running <- 0.9 * running + 0.1 * batch, with the biased batch variance."""
    new_mean, new_var = CONVENTIONS["course"].update(
        np.zeros(3), np.ones(3), np.array([1.0, 2.0, 3.0]), np.array([4.0, 4.0, 4.0]), 10, 0.9, 1
    )
    np.testing.assert_allclose(new_mean, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(new_var, [1.3, 1.3, 1.3])


def test_pytorch_update_weights_the_new_value_and_stores_the_unbiased_variance():
    """pytorch: running <- 0.9 * running + 0.1 * batch, with the variance times n / (n - 1)."""
    new_mean, new_var = CONVENTIONS["pytorch"].update(
        np.zeros(2), np.ones(2), np.array([1.0, -1.0]), np.array([4.0, 8.0]), 5, 0.1, 1
    )
    np.testing.assert_allclose(new_mean, [0.1, -0.1])
    np.testing.assert_allclose(new_var, [0.9 + 0.1 * 5.0, 0.9 + 0.1 * 10.0])


def test_cumulative_average_weighs_every_batch_alike():
    """pytorch with momentum None: after k batches the running mean is the mean of the k batch means."""
    c = CONVENTIONS["pytorch"]
    assert [c.weight_on_new(None, k) for k in (1, 2, 4)] == [1.0, 0.5, 0.25]


def test_folded_layer_equals_linear_then_test_mode_bn():
    """x @ W_folded + b_folded equals BN in test mode applied to x @ W + b."""
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((6, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    gamma, beta, mean, var = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(3), rng.random(3) + 0.5
    W_f, b_f = batchnorm_fold(W, b, gamma, beta, mean, var)
    expected, _ = batchnorm_forward(x @ W + b, gamma, beta, {"mode": "test", "running_mean": mean, "running_var": var})
    np.testing.assert_allclose(x @ W_f + b_f, expected, rtol=1e-10, atol=1e-12)
