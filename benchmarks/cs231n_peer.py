"""The peer for bench_batchnorm.py: batch normalization written the straightforward CS231n way.

No argument checks, no running statistics, no conventions: the forward pass
and the closed-form backward pass as a student of the CS231n assignment
(Stanford, "Batch Normalization" in assignment 2) would write them in plain
numpy. bnhelpers' checked functions should be at least as fast at every size.
"""

from __future__ import annotations

import numpy as np


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """x (N, D) -> (out, cache), training mode."""
    mu = np.mean(x, axis=0)
    xc = x - mu
    var = np.mean(xc**2, axis=0)
    std = np.sqrt(var + eps)
    xn = xc / std
    out = gamma * xn + beta
    return out, (xn, gamma, std)


def batchnorm_backward(dout, cache):
    """The closed form: dx = 1/(N std) * (N dxn - sum dxn - xn * sum(dxn * xn)), with dxn = gamma * dout."""
    xn, gamma, std = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * xn, axis=0)
    dxn = dout * gamma
    dx = (N * dxn - dxn.sum(axis=0) - xn * np.sum(dxn * xn, axis=0)) / (N * std)
    return dx, dgamma, dbeta
