"""Shared test helpers: a separable toy problem, the bundled MNIST, and the one gradient comparison.

Test files import the helpers (``from conftest import blobs, assert_gradients_match``);
fixtures are found by pytest.
"""

from types import SimpleNamespace

import numpy as np
import pytest

import bnhelpers as bh


def blobs(n=240, d=10, classes=3, seed=0, spread=0.6):
    """Well separated Gaussian clusters: a problem any working network solves exactly.

    Returns an object with x_train, y_train, x_val, y_val (validation = training data), as train expects.
    """
    rng = np.random.default_rng(seed)
    centres = 3 * rng.standard_normal((classes, d))
    y = rng.integers(0, classes, n)
    x = (centres[y] + spread * rng.standard_normal((n, d))).astype(np.float32)
    return SimpleNamespace(x_train=x, y_train=y, x_val=x, y_val=y)


def assert_gradients_match(forward, inputs: dict, analytic: dict, dout, tol=1e-7) -> dict:
    """Assert that every analytic gradient agrees with centred finite differences; returns the errors.

    forward:  no arguments, returns the output; it must read the arrays in ``inputs``.
    inputs:   name -> array (perturbed in place).   analytic: name -> the backward pass's gradient.
    dout:     the upstream gradient, shaped like the output.
    tol:      the largest relative error allowed (float64: 1e-7 for a layer, 1e-6 for a whole network).
    """
    errors = bh.gradient_check(forward, inputs, analytic, dout)
    assert max(errors.values()) <= tol, errors
    return errors


@pytest.fixture(scope="session")
def mnist():
    """The bundled MNIST subset, flat (read once per test session)."""
    return bh.load_mnist(verbose=False)


def features(seed, shape=(8, 5)):
    """(x, gamma, beta, dout) in float64 for a normalization test: (N, D) with features of different
    means and scales, or (N, C, H, W) feature maps; gamma, beta: one value per feature or channel."""
    rng = np.random.default_rng(seed)
    D = shape[-1] if len(shape) == 2 else shape[1]
    x = (
        rng.uniform(-3, 3, D) + rng.uniform(0.5, 3, D) * rng.standard_normal(shape)
        if len(shape) == 2
        else 2 + 3 * rng.standard_normal(shape)
    )
    return x, rng.uniform(0.5, 2, D), rng.standard_normal(D), rng.standard_normal(shape)


def renorm_param(D, seed):
    """A bn_param whose running statistics are away from the batch's, so that Batch Renorm's r != 1 and d != 0."""
    rng = np.random.default_rng(seed)
    return {"mode": "train", "running_mean": rng.standard_normal(D), "running_var": rng.uniform(0.3, 4, D)}


def assert_same_as_batchnorm(out, grads, bn_param, bn_result, bn_backward, dout, bn_reference):
    """A BN variant reduced to plain BN: same output, gradients and running variance (to 1e-12)."""
    expected, bn_cache = bn_result
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, bn_backward(dout, bn_cache), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bn_param["running_var"], bn_reference["running_var"], rtol=1e-12)


def small_mlp(norm="batch", seed=0):
    """784 -> 3 x 32 -> 10, ReLU, He init, float64: small enough for exact checks on real digits."""
    return bh.mlp((784, 32, 32, 32, 10), activation="relu", norm=norm, init="he", seed=seed, dtype=np.float64)


@pytest.fixture(scope="module")
def tiny_images():
    """64 random images (64, 1, 28, 28), labelled by the brightness of their top half; validation: the first 32."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = (x[:, 0, :14].mean(axis=(1, 2)) > 0).astype(np.int64)
    return SimpleNamespace(x_train=x, y_train=y, x_val=x[:32], y_val=y[:32])


def image_batch(seed, shape=(3, 4, 5, 6)):
    """(x, gamma, beta, dout) for per-channel normalizations: channels of different offsets and scales."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.uniform(-3, 3, (1, C, 1, 1)) + rng.uniform(0.5, 4, (1, C, 1, 1)) * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2, C) * rng.choice([-1, 1], C)
    beta = rng.standard_normal(C)
    return x, gamma, beta, rng.standard_normal(shape)
