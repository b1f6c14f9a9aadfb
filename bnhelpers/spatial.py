"""Spatial batch normalization for convolutional feature maps.

In a convolution every channel is one feature: the same filter produced it at
every position. So BN keeps one gamma and one beta per channel and takes its
statistics over the batch AND the spatial positions, m = N * H * W values per
channel (Ioffe & Szegedy, section 3.2).

That is exactly fully connected BN applied to a (N*H*W, C) matrix whose rows
are all (sample, position) pairs, so these functions reshape and reuse
``batchnorm_forward`` / ``batchnorm_backward_fast``:

* layout 'NCHW' (PyTorch): move channels last with a transpose, then reshape
  (this copies the data once);
* layout 'NHWC' (TensorFlow, channels last): a free reshape. TensorFlow's
  ``tf.nn.moments(x, [0, 1, 2])`` is the same reduction.
"""

from __future__ import annotations

from typing import NamedTuple

from ._checks import check_float_array
from .batchnorm import BatchNormCache, batchnorm_backward_fast, batchnorm_forward

LAYOUTS = ("NCHW", "NHWC")


class SpatialCache(NamedTuple):
    """layout, the 4-D input shape, and the cache of the (N*H*W, C) batchnorm_forward call."""

    layout: str
    shape: tuple
    bn: BatchNormCache


def _check_layout(layout) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}")
    return layout


def _to_rows(x, layout):
    """(N, C, H, W) or (N, H, W, C) -> (N*H*W, C): one row per (sample, position)."""
    if layout == "NCHW":
        return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
    return x.reshape(-1, x.shape[3])


def _from_rows(rows, shape, layout):
    """Inverse of _to_rows; returns a C-contiguous array."""
    if layout == "NCHW":
        N, C, H, W = shape
        return rows.reshape(N, H, W, C).transpose(0, 3, 1, 2).copy()
    return rows.reshape(shape)


def spatial_batchnorm_forward(x, gamma, beta, bn_param, layout="NCHW"):
    """Spatial BN forward.

    x: (N, C, H, W) for layout 'NCHW', or (N, H, W, C) for 'NHWC'.
    gamma, beta: (C,).  bn_param: as for batchnorm_forward (running statistics are (C,)).
    Returns (out, cache), out with the shape and dtype of x.
    """
    layout = _check_layout(layout)
    x = check_float_array("x", x, ndim=4)
    N, H, W = (x.shape[0], x.shape[2], x.shape[3]) if layout == "NCHW" else x.shape[:3]
    if isinstance(bn_param, dict) and bn_param.get("mode") == "train" and N * H * W < 2:
        raise ValueError(f"expected more than 1 value per channel when training, got x of shape {x.shape}")
    out_rows, cache = batchnorm_forward(_to_rows(x, layout), gamma, beta, bn_param)
    return _from_rows(out_rows, x.shape, layout), SpatialCache(layout, x.shape, cache)


def spatial_batchnorm_backward(dout, cache):
    """Spatial BN backward: dout has the shape of x.  Returns dx, dgamma (C,), dbeta (C,)."""
    if not isinstance(cache, SpatialCache):
        raise TypeError("cache must be the cache returned by spatial_batchnorm_forward")
    dout = check_float_array("dout", dout, ndim=4)
    if dout.shape != cache.shape:
        raise ValueError(f"dout must have the shape of the forward output {cache.shape}, got {dout.shape}")
    dx_rows, dgamma, dbeta = batchnorm_backward_fast(_to_rows(dout, cache.layout), cache.bn)
    return _from_rows(dx_rows, cache.shape, cache.layout), dgamma, dbeta
