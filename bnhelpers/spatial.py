"""Spatial batch normalization for convolutional feature maps.

In a convolution every channel is one feature: the same filter produced it at
every position. So BN keeps one gamma and one beta per channel and takes its
statistics over the batch AND the spatial positions, m = N * H * W values per
channel (Ioffe & Szegedy, section 3.2).

That is exactly fully connected BN applied to a (N*H*W, C) matrix whose rows
are all (sample, position) pairs, so these functions reshape and reuse
``batchnorm_forward`` / ``batchnorm_backward_fast``:

* layout 'NCHW' (PyTorch): one copy with the channels first, (C, N*H*W),
  seen transposed as (N*H*W, C);
* layout 'NHWC' (TensorFlow, channels last): a free reshape. TensorFlow's
  ``tf.nn.moments(x, [0, 1, 2])`` is the same reduction.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import check_float_array, check_norm_backward
from .batchnorm import BatchNormCache, batchnorm_backward_fast, batchnorm_forward

LAYOUTS = ("NCHW", "NHWC")


class SpatialCache(NamedTuple):
    """layout, the 4-D input shape, and the cache of the (N*H*W, C) batchnorm_forward call."""

    layout: str
    shape: tuple
    bn: BatchNormCache


def spatial_inputs(x, bn_param, layout):
    """The checks of spatial_batchnorm_forward's own (batchnorm_forward checks the rest); returns x."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}")
    x = check_float_array("x", x, ndim=4)
    N, H, W = (x.shape[0], x.shape[2], x.shape[3]) if layout == "NCHW" else x.shape[:3]
    if isinstance(bn_param, dict) and bn_param.get("mode") == "train" and N * H * W < 2:
        raise ValueError(f"expected more than 1 value per channel when training, got x of shape {x.shape}")
    return x


def to_rows(x, layout):
    """(N, C, H, W) or (N, H, W, C) -> (N*H*W, C): one row per (sample, position)."""
    ### BEGIN SOLUTION
    if layout == "NHWC":
        rows = x.reshape(-1, x.shape[3])
    else:
        # Channels first, (C, N*H*W), then transposed: the same rows, but each
        # channel's values stay contiguous, so BN's sums over the rows run
        # along memory, faster than down C-wide rows (benchmarks/bench_choices.py).
        rows = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1).T
    ### END SOLUTION
    return rows


def from_rows(rows, shape, layout):
    """Inverse of to_rows: (N*H*W, C) -> ``shape`` in ``layout``, C-contiguous."""
    ### BEGIN SOLUTION
    if layout == "NHWC":
        x = rows.reshape(shape)
    else:
        N, C, H, W = shape
        x = np.ascontiguousarray(rows.T.reshape(C, N, H, W).transpose(1, 0, 2, 3))
    ### END SOLUTION
    return x


def spatial_batchnorm_forward(x, gamma, beta, bn_param, layout="NCHW"):
    """Spatial BN forward.

    x: (N, C, H, W) for layout 'NCHW', or (N, H, W, C) for 'NHWC'.
    gamma, beta: (C,).  bn_param: as for batchnorm_forward (running statistics are (C,)).
    Returns (out, cache), out with the shape and dtype of x:

        rows = x as an (N*H*W, C) matrix (to_rows),  out = batchnorm_forward(rows) reshaped back (from_rows)
    """
    x = spatial_inputs(x, bn_param, layout)
    ### BEGIN SOLUTION
    out_rows, bn_cache = batchnorm_forward(to_rows(x, layout), gamma, beta, bn_param)
    out = from_rows(out_rows, x.shape, layout)
    ### END SOLUTION
    return out, SpatialCache(layout, x.shape, bn_cache)


def spatial_batchnorm_backward(dout, cache):
    """Spatial BN backward: dout has the shape of x.  Returns dx, dgamma (C,), dbeta (C,):

    dx_rows, dgamma, dbeta = batchnorm_backward_fast(dout as rows, the rows' cache),  dx = dx_rows reshaped back
    """
    dout = check_norm_backward(dout, cache, SpatialCache, "spatial_batchnorm_forward")
    ### BEGIN SOLUTION
    dx_rows, dgamma, dbeta = batchnorm_backward_fast(to_rows(dout, cache.layout), cache.bn)
    dx = from_rows(dx_rows, cache.shape, cache.layout)
    ### END SOLUTION
    return dx, dgamma, dbeta
