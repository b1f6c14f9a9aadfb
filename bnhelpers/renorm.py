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
computed; test mode is BN's test mode. Feature maps (N, C, H, W) are
renormalized per channel over (N, H, W), as spatial BN does
(``spatial_batchrenorm_forward``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._checks import _is_real, check_norm_backward
from .batchnorm import BatchNormCache, batchnorm_backward_fast, batchnorm_inputs, update_running_stats
from .spatial import from_rows, spatial_inputs, to_rows


class RenormCache(NamedTuple):
    """bn: a plain BN cache (its x_hat is (x - mu_B) / sigma_B, its gamma ones);
    r, d: (D,) the corrections used; x_hat: (N, D) the corrected x_hat; gamma: (D,)."""

    bn: BatchNormCache
    r: np.ndarray
    d: np.ndarray
    x_hat: np.ndarray
    gamma: np.ndarray


class SpatialRenormCache(NamedTuple):
    """The 4-D input shape and the RenormCache of its (N*H*W, C) rows."""

    shape: tuple
    renorm: RenormCache

    @property
    def bn(self):
        """The plain BN cache of the rows (batch mean and variance per channel)."""
        return self.renorm.bn


def check_renorm_limits(rmax, dmax):
    """rmax a finite number >= 1, dmax a finite number >= 0; returns them as floats."""
    if not (_is_real(rmax) and _is_real(dmax) and 1 <= rmax < math.inf and 0 <= dmax < math.inf):
        raise ValueError(f"rmax must be a finite number >= 1 and dmax one >= 0, got rmax={rmax!r}, dmax={dmax!r}")
    return float(rmax), float(dmax)


def renorm_limits(step, *, warmup, ramp, rmax=3.0, dmax=5.0):
    """(rmax_t, dmax_t) at training step ``step``.

    1 and 0 for ``warmup`` steps, then linear up to (rmax, dmax) over ``ramp`` steps.

    The paper (ImageNet, batch 4 per worker) keeps rmax = 1, dmax = 0 for 5,000
    steps and reaches rmax = 3 at 40,000 steps and dmax = 5 at 25,000 steps.
    """
    rmax, dmax = check_renorm_limits(rmax, dmax)
    progress = float(np.clip((step - warmup) / ramp, 0.0, 1.0)) if ramp > 0 else float(step >= warmup)
    return 1.0 + progress * (rmax - 1.0), progress * dmax


def batchrenorm_inputs(x, gamma, beta, bn_param, rmax, dmax):
    """Every check batchrenorm_forward makes, in one call: returns (x, gamma, beta, BNSettings, rmax, dmax)."""
    rmax, dmax = check_renorm_limits(rmax, dmax)
    x, gamma, beta, settings = batchnorm_inputs(x, gamma, beta, bn_param)
    return x, gamma, beta, settings, rmax, dmax


def batchrenorm_forward(x, gamma, beta, bn_param, rmax, dmax):
    """Batch Renormalization forward pass.

    x: (N, D).  gamma, beta: (D,).  bn_param: as for batchnorm_forward (its
    running statistics are mu and sigma**2 - eps above).  rmax >= 1, dmax >= 0:
    the clipping limits of r and d (see renorm_limits).
    Returns (out (N, D), cache).  In test mode r = 1, d = 0: BN's test mode.
    """
    x, gamma, beta, settings, rmax, dmax = batchrenorm_inputs(x, gamma, beta, bn_param, rmax, dmax)
    N, D = x.shape
    # BN's normalization, with the batch's statistics (training) or the running ones (test).
    if settings.mode == "train":
        mean = x.sum(axis=0) / N
        xc = x - mean
        var = (xc**2).sum(axis=0) / N
    else:
        mean, var = settings.running_mean, settings.running_var
        xc = x - mean
    std = np.sqrt(var + settings.eps)
    x_hat_batch = xc / std
    # The corrections compare the batch with the running statistics from before this batch.
    if settings.mode == "train":
        sigma = np.sqrt(settings.running_var + settings.eps).astype(x.dtype)
        r = np.clip(std / sigma, 1.0 / rmax, rmax).astype(x.dtype)
        d = np.clip((mean - settings.running_mean) / sigma, -dmax, dmax).astype(x.dtype)
        update_running_stats(bn_param, settings, mean, var, N)
    else:
        r, d = np.ones(D, dtype=x.dtype), np.zeros(D, dtype=x.dtype)
    x_hat = x_hat_batch * r + d
    bn = BatchNormCache(settings.mode, x, x_hat_batch, mean, var, std, np.ones(D, dtype=x.dtype))
    return x_hat * gamma + beta, RenormCache(bn, r, d, x_hat, gamma)


def batchrenorm_backward(dout, cache):
    """Batch Renormalization backward pass, r and d held constant.

    dout: (N, D).  Returns dx (N, D), dgamma (D,), dbeta (D,):

        dbeta  = sum_i dout_i
        dgamma = sum_i dout_i * x_hat_i                 (the corrected x_hat)
        dx     = BN's backward pass applied to dout * gamma * r

    since out = gamma * (r * x_hat_B + d) + beta with x_hat_B = BN's normalized x.
    """
    dout = check_norm_backward(dout, cache, RenormCache, "batchrenorm_forward")
    dbeta = dout.sum(axis=0)
    # sum_i dout_i * x_hat_i as einsum sums it: (dout * x_hat).sum(axis=0) rounds differently.
    dgamma = np.einsum("nd,nd->d", dout, cache.x_hat)
    dx, _, _ = batchnorm_backward_fast(dout * (cache.gamma * cache.r), cache.bn)
    return dx, dgamma, dbeta


def spatial_batchrenorm_forward(x, gamma, beta, bn_param, rmax, dmax):
    """Batch Renormalization of feature maps.  x: (N, C, H, W); gamma, beta: (C,); the rest as batchrenorm_forward.

    rows = x as an (N*H*W, C) matrix (to_rows),  out = batchrenorm_forward(rows) reshaped back (from_rows)
    """
    x = spatial_inputs(x, bn_param, "NCHW")
    out_rows, cache = batchrenorm_forward(to_rows(x, "NCHW"), gamma, beta, bn_param, rmax, dmax)
    return from_rows(out_rows, x.shape, "NCHW"), SpatialRenormCache(x.shape, cache)


def spatial_batchrenorm_backward(dout, cache):
    """Backward of spatial_batchrenorm_forward: dout (N, C, H, W).  Returns dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    dout = check_norm_backward(dout, cache, SpatialRenormCache, "spatial_batchrenorm_forward")
    dx_rows, dgamma, dbeta = batchrenorm_backward(to_rows(dout, "NCHW"), cache.renorm)
    return from_rows(dx_rows, cache.shape, "NCHW"), dgamma, dbeta
