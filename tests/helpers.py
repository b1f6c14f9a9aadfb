"""Shared test helpers: a separable toy problem, the one gradient comparison, normalization inputs,
and IDX files written independently of the reader.

Test files import them (``from helpers import blobs, assert_gradients_match``); fixtures live in
conftest.py, where pytest finds them.
"""

import gzip
import struct
from types import SimpleNamespace

import numpy as np

import bnhelpers as bh
from bnhelpers.storage.mnist import IDX_FILES


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


def image_batch(seed, shape=(3, 4, 5, 6)):
    """(x, gamma, beta, dout) for per-channel normalizations: channels of different offsets and scales."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.uniform(-3, 3, (1, C, 1, 1)) + rng.uniform(0.5, 4, (1, C, 1, 1)) * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2, C) * rng.choice([-1, 1], C)
    beta = rng.standard_normal(C)
    return x, gamma, beta, rng.standard_normal(shape)


# Written out again rather than taken from bnhelpers.storage.mnist, so that a wrong
# code in the reader cannot be matched by the same wrong code in the writer.
IDX_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
GZ_NAMES = [f"{name}.gz" for name in IDX_FILES]


def idx_bytes(array):
    """The bytes of an IDX file holding `array`."""
    array = np.asarray(array)
    magic = struct.pack(">HBB", 0, IDX_CODES[array.dtype.str[1:]], array.ndim)
    sizes = struct.pack(f">{array.ndim}I", *array.shape)
    return magic + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, compress=False):
    content = idx_bytes(array)
    path.write_bytes(gzip.compress(content, mtime=0) if compress else content)
    return path


def synthetic_digits(n, first_id=0):
    """n uint8 images whose pixel (0, 0) is first_id + i, with label (first_id + i) % 10.

    The id pixel lets a test follow each image through a shuffled split.
    """
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    ids = np.arange(first_id, first_id + n)
    images[:, 0, 0] = ids
    return images, (ids % 10).astype(np.uint8)


def write_mnist_folder(folder, n_train=100, n_test=20, compress=False):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    train_x, train_y = synthetic_digits(n_train)
    test_x, test_y = synthetic_digits(n_test, first_id=200)
    for name, array in zip(IDX_FILES, (train_x, train_y, test_x, test_y), strict=True):
        write_idx(folder / f"{name}{suffix}", array, compress)
    return folder
