"""Shared fixtures: the bundled MNIST, a tiny image problem, and a data folder kept empty.

Helper functions live in tests/helpers.py; pytest finds these fixtures itself.
"""

from types import SimpleNamespace

import numpy as np
import pytest

import bnhelpers as bh
from bnhelpers.storage import mnist as mnist_module


@pytest.fixture(scope="session")
def mnist():
    """The bundled MNIST subset, flat (read once per test session)."""
    return bh.load_mnist(verbose=False)


@pytest.fixture(scope="module")
def tiny_images():
    """64 random images (64, 1, 28, 28), labelled by the brightness of their top half; validation: the first 32."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = (x[:, 0, :14].mean(axis=(1, 2)) > 0).astype(np.int64)
    return SimpleNamespace(x_train=x, y_train=y, x_val=x[:32], y_val=y[:32])


@pytest.fixture
def no_data_from_the_machine(monkeypatch, tmp_path):
    """Keep a developer's $BNHELPERS_DATA or data/mnist/ out of a test.

    DATA_DIR points at an empty folder; BUNDLED_NPZ keeps pointing at the real file.
    """
    monkeypatch.delenv(mnist_module.DATA_ENV, raising=False)
    monkeypatch.setattr(mnist_module, "DATA_DIR", tmp_path / "no-data")
