"""Batch Renormalization (Ioffe 2017): batch statistics corrected towards the running ones.

BN normalizes a training batch with its own mean and standard deviation, and
inference with the running ones. With small batches the two differ a lot, so
the network learns under one normalization and is evaluated under another.
Batch Renorm keeps the batch normalization but corrects it, per feature, by
how far the batch is from the running statistics (mu, sigma):

    mu_B    = mean_i x_i,  sigma_B = sqrt(var_i x_i + eps)            (D,)
    sigma   = sqrt(running_var + eps)                                 (D,)
    r       = clip(sigma_B / sigma,       1/rmax, rmax)               (D,)
    d       = clip((mu_B - mu) / sigma,   -dmax,  dmax)               (D,)
    x_hat_i = (x_i - mu_B) / sigma_B * r + d                          (N, D)
    out_i   = gamma * x_hat_i + beta                                  (N, D)

Without clipping, x_hat_i = (x_i - mu) / sigma exactly: the inference-time
normalization. r and d are computed from the batch but treated as constants in
the backward pass, so the gradient still flows through mu_B and sigma_B as in
BN. With rmax = 1 and dmax = 0, r = 1 and d = 0 and this is BN.

The paper starts with rmax = 1, dmax = 0 (plain BN, while the running averages
settle), then relaxes them to rmax = 3, dmax = 5 (``renorm_limits``).
Running statistics are updated as in ``batchnorm_forward``, after r and d are
computed; test mode is BN's test mode.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import check_float_array, check_positive, check_vector
from .batchnorm import BatchNormCache, batchnorm_backward_fast, batchnorm_forward, read_bn_param


class RenormCache(NamedTuple):
    """bn: the cache of the plain BN forward (its x_hat is (x - mu_B) / sigma_B);
    r, d: (D,) the corrections used; x_hat: (N, D) the corrected x_hat; gamma: (D,)."""

    bn: BatchNormCache
    r: np.ndarray
    d: np.ndarray
    x_hat: np.ndarray
    gamma: np.ndarray


def renorm_limits(step, *, warmup, ramp, rmax=3.0, dmax=5.0):
    """(rmax_t, dmax_t) at training step ``step``.

    1 and 0 for ``warmup`` steps, then linear up to (rmax, dmax) over ``ramp`` steps.

    The paper (ImageNet, batch 4 per worker) keeps rmax = 1, dmax = 0 for 5,000
    steps and reaches rmax = 3 at 40,000 steps and dmax = 5 at 25,000 steps.
    """
    if rmax < 1 or dmax < 0:
        raise ValueError(f"rmax must be >= 1 and dmax >= 0, got rmax={rmax!r}, dmax={dmax!r}")
    progress = float(np.clip((step - warmup) / ramp, 0.0, 1.0)) if ramp > 0 else float(step >= warmup)
    return 1.0 + progress * (rmax - 1.0), progress * dmax


def batchrenorm_forward(x, gamma, beta, bn_param, rmax, dmax):
    """Batch Renormalization forward pass.

    x: (N, D).  gamma, beta: (D,).  bn_param: as for batchnorm_forward (its
    running statistics are mu and sigma**2 - eps above).  rmax >= 1, dmax >= 0:
    the clipping limits of r and d (see renorm_limits).
    Returns (out (N, D), cache).  In test mode r = 1, d = 0: BN's test mode.
    """
    x = check_float_array("x", x, ndim=2)
    D = x.shape[1]
    check_vector("gamma", gamma, D)
    check_vector("beta", beta, D)
    if check_positive("rmax", rmax) < 1 or not 0 <= dmax < float("inf"):
        raise ValueError(f"rmax must be >= 1 and dmax a finite number >= 0, got rmax={rmax!r}, dmax={dmax!r}")
    # The running statistics before this batch's update: r and d compare the batch with them.
    s = read_bn_param(bn_param, D, x.dtype)
    ones = np.ones(D, dtype=x.dtype)
    _, bn = batchnorm_forward(x, ones, np.zeros(D, dtype=x.dtype), bn_param)
    gamma, beta = gamma.astype(x.dtype, copy=False), beta.astype(x.dtype, copy=False)
    if bn.mode == "test":
        r, d = ones, np.zeros(D, dtype=x.dtype)
    else:
        sigma = np.sqrt(s.running_var + s.eps).astype(x.dtype)
        r = np.clip(bn.std / sigma, 1.0 / rmax, rmax).astype(x.dtype)
        d = np.clip((bn.mean - s.running_mean) / sigma, -dmax, dmax).astype(x.dtype)
    x_hat = bn.x_hat * r + d
    return x_hat * gamma + beta, RenormCache(bn, r, d, x_hat, gamma)


def batchrenorm_backward(dout, cache):
    """Batch Renormalization backward pass, r and d held constant.

    dout: (N, D).  Returns dx (N, D), dgamma (D,), dbeta (D,):

        dbeta  = sum_i dout_i
        dgamma = sum_i dout_i * x_hat_i                 (the corrected x_hat)
        dx     = BN's backward pass applied to dout * gamma * r

    since out = gamma * (r * x_hat_B + d) + beta with x_hat_B = BN's normalized x.
    """
    if not isinstance(cache, RenormCache):
        raise TypeError("cache must be the cache returned by batchrenorm_forward")
    dout = check_float_array("dout", dout, ndim=2)
    if dout.shape != cache.x_hat.shape:
        raise ValueError(f"dout must have the shape of the forward output {cache.x_hat.shape}, got {dout.shape}")
    dbeta = dout.sum(axis=0)
    dgamma = np.einsum("nd,nd->d", dout, cache.x_hat)
    dx, _, _ = batchnorm_backward_fast(dout * (cache.gamma * cache.r), cache.bn)
    return dx, dgamma, dbeta
