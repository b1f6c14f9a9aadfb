"""Ghost Batch Normalization (Hoffer, Hubara & Soudry 2017): BN over virtual sub-batches.

A large batch of N samples is split into N / v consecutive virtual ("ghost")
batches of v samples, and each is normalized with its own statistics:

    x (N, ...) -> [x[0:v], x[v:2v], ...] -> BN on each -> concatenated (N, ...)

so a large-batch step sees the noisier statistics of small batches, which the
authors found to shrink the generalization gap of large-batch training. The
running statistics are updated once per virtual batch, in order, as if the
virtual batches had been consecutive training batches. With v = N this is BN.

Works for (N, D) activations (batchnorm_forward) and (N, C, H, W) feature maps
(spatial_batchnorm_forward). Only training uses virtual batches; test mode is
BN's test mode over the whole input.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import check_count, check_float_array, check_norm_backward
from .batchnorm import batchnorm_backward_fast, batchnorm_forward
from .spatial import spatial_batchnorm_backward, spatial_batchnorm_forward


class GhostCache(NamedTuple):
    """virtual_batch_size (N in test mode), the BN cache of each virtual batch, in order, and the shape of x."""

    virtual_batch_size: int
    caches: list
    shape: tuple


def check_virtual_batch_size(virtual_batch_size):
    """A virtual batch holds at least 2 samples (BN needs two values per feature)."""
    return check_count("virtual_batch_size", virtual_batch_size, minimum=2)


def ghost_batchnorm_forward(x, gamma, beta, bn_param, virtual_batch_size):
    """Ghost BN forward.  x: (N, D) or (N, C, H, W); gamma, beta: (D,) or (C,); bn_param as for batchnorm_forward.

    virtual_batch_size v must divide N.  Returns (out shaped like x, cache).
    On any error nothing in bn_param is changed.
    """
    x = check_float_array("x", x, ndim=(2, 4))
    v = check_virtual_batch_size(virtual_batch_size)
    if x.shape[0] % v:
        raise ValueError(f"virtual_batch_size ({v}) must divide the batch size N={x.shape[0]}")
    if not isinstance(bn_param, dict):
        raise TypeError(f"bn_param must be a dict, got {type(bn_param).__name__}")
    forward = batchnorm_forward if x.ndim == 2 else spatial_batchnorm_forward
    if bn_param.get("mode") == "test":
        out, cache = forward(x, gamma, beta, bn_param)
        return out, GhostCache(x.shape[0], [cache], x.shape)
    # Each virtual batch updates the running statistics of the one before; work
    # on a copy so that a failure half-way leaves bn_param as it was.
    work = dict(bn_param)
    outs, caches = [], []
    for start in range(0, x.shape[0], v):
        out, cache = forward(x[start : start + v], gamma, beta, work)
        outs.append(out)
        caches.append(cache)
    bn_param.update(work)
    return np.concatenate(outs), GhostCache(v, caches, x.shape)


def ghost_batchnorm_backward(dout, cache):
    """Ghost BN backward: BN's backward pass on each virtual batch.

    dout: shaped like x.  Returns dx (shaped like x), dgamma, dbeta: the sums over the virtual batches.
    """
    dout = check_norm_backward(dout, cache, GhostCache, "ghost_batchnorm_forward")
    v, caches = cache.virtual_batch_size, cache.caches
    backward = batchnorm_backward_fast if dout.ndim == 2 else spatial_batchnorm_backward
    parts = [backward(dout[k * v : (k + 1) * v], c) for k, c in enumerate(caches)]
    dx = np.concatenate([p[0] for p in parts])
    return dx, sum(p[1] for p in parts), sum(p[2] for p in parts)
