"""Part 1 (notebook 02): batchnorm_forward, batchnorm_backward, batchnorm_backward_fast.

Run them with `make test`. They check the formulas in the docstrings of
bnhelpers/batchnorm.py on small random batches; the grader runs more tests of
the same kind (other shapes, dtypes and settings).
"""

import numpy as np
import pytest

from bnhelpers import batchnorm_backward, batchnorm_backward_fast, batchnorm_forward
from bnhelpers.gradcheck import gradient_check


def batch(N=8, D=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((N, D)) + 2).astype(dtype)
    gamma, beta = rng.standard_normal(D).astype(dtype), rng.standard_normal(D).astype(dtype)
    return x, gamma, beta, rng.standard_normal((N, D)).astype(dtype)


def test_train_mode_output_has_mean_beta_and_std_gamma():
    """In training mode each feature of the output has mean beta and standard deviation |gamma|."""
    x, gamma, beta, _ = batch()
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": 1e-12})
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-9)
    np.testing.assert_allclose(out.std(axis=0), np.abs(gamma), rtol=1e-6)


def test_train_mode_updates_running_statistics():
    """One training batch moves the running statistics 10% of the way to the batch's (course convention)."""
    x, gamma, beta, _ = batch()
    bn_param = {"mode": "train"}
    batchnorm_forward(x, gamma, beta, bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(bn_param["running_var"], 0.9 + 0.1 * x.var(axis=0), rtol=1e-6)


def test_test_mode_uses_running_statistics():
    """In test mode BN normalizes with the running statistics, not the batch's."""
    x, gamma, beta, _ = batch()
    mean, var = np.linspace(-1, 1, 5), np.linspace(0.5, 2, 5)
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "test", "running_mean": mean, "running_var": var})
    np.testing.assert_allclose(out, gamma * (x - mean) / np.sqrt(var + 1e-5) + beta, rtol=1e-10)


@pytest.mark.parametrize("backward", [batchnorm_backward, batchnorm_backward_fast], ids=["staged", "fast"])
def test_backward_matches_numerical_gradients(backward):
    """batchnorm_backward and batchnorm_backward_fast: dx, dgamma and dbeta agree with centred finite differences."""
    x, gamma, beta, dout = batch()
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = backward(dout, cache)
    errors = gradient_check(
        lambda: batchnorm_forward(x, gamma, beta, {"mode": "train"})[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )
    assert max(errors.values()) < 1e-6, errors
