"""Convolution and pooling for the course's small CNN: forward and backward passes.

Shapes follow PyTorch (NCHW): x is (N, C, H, W), N samples of C channels of
H x W pixels. A window of size KH x KW slides over the input with step
``stride``; with ``pad`` rows and columns of zeros added on every side, the
output has

    H_out = (H + 2*pad - KH) // stride + 1,   W_out = (W + 2*pad - KW) // stride + 1

positions (floor, as in PyTorch: trailing rows or columns that do not fill a
whole window are not used, and their gradient is zero).

Convolution (cross-correlation, as every deep learning library computes it),
with xp the zero-padded input:

    out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xp[n, c, i*stride + p, j*stride + q]

The forward pass copies every window into a column ("im2col"), which turns the
whole convolution into one matrix product: (F, C*KH*KW) @ (C*KH*KW, H_out*W_out)
per sample. The backward pass reuses those columns for dw, and scatters the
columns' gradients back to the pixels they were copied from ("col2im") for dx.

Max pooling summarizes each channel's windows on their own:

    out[n, c, i, j] = max_{p, q} x[n, c, i*stride + p, j*stride + q]

All loops in this module run over the KH*KW offsets inside a window (at most
a few dozen), never over samples or output positions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._checks import check_count, check_float_array, check_vector


class ConvCache(NamedTuple):
    """What conv2d_forward keeps for conv2d_backward.

    x_shape:  (N, C, H, W) of the unpadded input.
    w:        (F, C, KH, KW) the filters, in the dtype of x, kept by reference.
    cols:     (N, C*KH*KW, H_out*W_out) the im2col patches of the padded input.
    stride, pad: as passed to the forward pass.
    has_bias: False when b was None, so that the backward pass returns db = None.
    """

    x_shape: tuple
    w: np.ndarray
    cols: np.ndarray
    stride: int
    pad: int
    has_bias: bool


class MaxPoolCache(NamedTuple):
    """x (kept by reference), a private copy of the pooled output (the maxima), size and stride."""

    x: np.ndarray
    out: np.ndarray
    size: int
    stride: int


def _window_slice(p, q, stride, H_out, W_out):
    """Index of the input pixels at offset (p, q) inside each window: one pixel per output position.

    x[_window_slice(p, q, ...)] has shape (N, C, H_out, W_out); its entry
    (n, c, i, j) is x[n, c, i*stride + p, j*stride + q].
    """
    rows = slice(p, p + stride * (H_out - 1) + 1, stride)
    cols = slice(q, q + stride * (W_out - 1) + 1, stride)
    return (slice(None), slice(None), rows, cols)


def _check_dout(dout, expected_shape, dtype):
    dout = check_float_array("dout", dout, ndim=4)
    if dout.shape != expected_shape:
        raise ValueError(f"dout must have the shape of the forward output {expected_shape}, got {dout.shape}")
    # Gradients come back in the dtype of the forward pass, whatever dout's precision.
    return dout.astype(dtype, copy=False)


def conv2d_forward(x, w, b, stride=1, pad=0):
    """Convolution forward pass.

    x: (N, C, H, W) float32 or float64.
    w: (F, C, KH, KW) F filters.
    b: (F,) one bias per filter, or None (a convolution followed by BN has no
       bias: BN's beta takes its place, and BN would subtract it anyway).
    stride: step between windows, an integer >= 1.   pad: zeros added on each side, >= 0.

    out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xp[n, c, i*stride + p, j*stride + q]

    Returns (out, cache): out is (N, F, H_out, W_out), C-contiguous, in the dtype
    of x (w and b are converted to it, as batchnorm does with gamma and beta).
    """
    x = check_float_array("x", x, ndim=4)
    w = check_float_array("w", w, ndim=4)
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if Cw != C:
        raise ValueError(f"w has C={Cw} input channels but x has C={C}")
    if b is not None:
        check_vector("b", b, F, what="filter of w")
    stride = check_count("stride", stride)
    pad = check_count("pad", pad, minimum=0)
    Hp, Wp = H + 2 * pad, W + 2 * pad
    if KH > Hp or KW > Wp:
        raise ValueError(f"w's {KH}x{KW} kernel is larger than the padded input {Hp}x{Wp} (x is {H}x{W}, pad={pad})")
    w = w.astype(x.dtype, copy=False)

    # Zero padding written directly: np.pad is slower for these small images (benchmarks/bench_choices.py).
    xp = np.zeros((N, C, Hp, Wp), dtype=x.dtype)
    xp[:, :, pad : pad + H, pad : pad + W] = x
    # A view, no copy: windows[n, c, i, j] is the KH x KW patch under output (i, j).
    windows = sliding_window_view(xp, (KH, KW), axis=(2, 3))[:, :, ::stride, ::stride]
    H_out, W_out = windows.shape[2:4]
    # The one copy: each sample's patches as the columns of a (C*KH*KW, H_out*W_out)
    # matrix. Kept in sample-major order so that the product below comes out in
    # NCHW order directly, without a transpose of the output.
    cols = windows.transpose(0, 1, 4, 5, 2, 3).reshape(N, C * KH * KW, H_out * W_out)
    out = w.reshape(F, C * KH * KW) @ cols  # (F, CKK) @ (N, CKK, L) -> (N, F, L)
    if b is not None:
        out += b.astype(x.dtype, copy=False)[:, None]
    return out.reshape(N, F, H_out, W_out), ConvCache(x.shape, w, cols, stride, pad, b is not None)


def conv2d_backward(dout, cache, input_grad=True):
    """Convolution backward pass.

    dout: (N, F, H_out, W_out) upstream gradient.   cache: from conv2d_forward.
    input_grad: False skips dx (returned as None): a network's first layer
    needs no gradient with respect to the images, and for it dx is the costly part.
    Returns dx (N, C, H, W), dw (F, C, KH, KW), db (F,) or None if b was None,
    all in the dtype of the forward pass:

        db[f]          = sum_{n, i, j} dout[n, f, i, j]
        dw[f, c, p, q] = sum_{n, i, j} dout[n, f, i, j] * xp[n, c, i*stride + p, j*stride + q]
        dx[n, c, i*stride + p, j*stride + q]  +=  sum_f w[f, c, p, q] * dout[n, f, i, j]

    dx is computed as col2im, the reverse of im2col: for each window offset
    (p, q), the column entries copied from the pixels at that offset get the
    gradient w[:, :, p, q].T @ dout, which is added back to those pixels. The
    other textbook route, a "full" convolution of dout with the flipped kernel,
    needs dout dilated with zeros when stride > 1 and cropping when the windows
    do not tile the input, and its patches have F*KH*KW rows instead of
    C*KH*KW (8 times more for a first layer with C=1, F=8).
    """
    if not isinstance(cache, ConvCache):
        raise TypeError("cache must be the cache returned by conv2d_forward")
    N, C, H, W = cache.x_shape
    F, _, KH, KW = cache.w.shape
    s, pad = cache.stride, cache.pad
    Hp, Wp = H + 2 * pad, W + 2 * pad
    H_out, W_out = (Hp - KH) // s + 1, (Wp - KW) // s + 1
    dout = _check_dout(dout, (N, F, H_out, W_out), cache.cols.dtype)
    d = dout.reshape(N, F, H_out * W_out)

    db = dout.sum(axis=(0, 2, 3)) if cache.has_bias else None
    # One product per sample, summed: BLAS reads the transposed columns in
    # place, where a single (F, N*L) @ (N*L, CKK) product would first copy both.
    dw = (d @ cache.cols.transpose(0, 2, 1)).sum(axis=0).reshape(F, C, KH, KW)
    if not input_grad:
        return None, dw, db

    dxp = np.zeros((N, C, Hp, Wp), dtype=d.dtype)
    for p in range(KH):
        for q in range(KW):
            # One offset's rows of the columns' gradient at a time, instead of all
            # of w.T @ d at once: that (N, C*KH*KW, L) array would be as large as
            # the columns, and writing it to fresh memory takes longer than the
            # arithmetic.
            dcols_pq = (cache.w[:, :, p, q].T @ d).reshape(N, C, H_out, W_out)
            # Overlapping windows (stride < kernel) share pixels, hence +=.
            dxp[_window_slice(p, q, s, H_out, W_out)] += dcols_pq
    dx = np.ascontiguousarray(dxp[:, :, pad : pad + H, pad : pad + W])
    return dx, dw, db


def _pool_setup(x, size, stride):
    """Validate a pooling call; return (x, size, stride, H_out, W_out)."""
    x = check_float_array("x", x, ndim=4)
    size = check_count("size", size)
    stride = size if stride is None else check_count("stride", stride)
    H, W = x.shape[2:]
    if size > H or size > W:
        raise ValueError(f"size={size} is larger than the input x of {H}x{W} pixels")
    return x, size, stride, (H - size) // stride + 1, (W - size) // stride + 1


def maxpool2d_forward(x, size=2, stride=None):
    """Max pooling forward pass over size x size windows.

    x: (N, C, H, W).   size: window side.   stride: step, default ``size`` (windows tile the input).

    out[n, c, i, j] = max_{p, q} x[n, c, i*stride + p, j*stride + q]

    Returns (out, cache): out is (N, C, H_out, W_out) in the dtype of x.
    """
    x, size, stride, H_out, W_out = _pool_setup(x, size, stride)
    out = np.full((*x.shape[:2], H_out, W_out), -np.inf, dtype=x.dtype)  # below every value
    for p in range(size):
        for q in range(size):
            np.maximum(out, x[_window_slice(p, q, stride, H_out, W_out)], out=out)
    # The caller owns ``out`` and may change it in place (an in-place ReLU, say);
    # the backward pass needs the maxima as they were.
    return out, MaxPoolCache(x, out.copy(), size, stride)


def maxpool2d_backward(dout, cache):
    """Max pooling backward pass.

    dout: (N, C, H_out, W_out).   cache: from maxpool2d_forward.   Returns dx (N, C, H, W).

    Each window's gradient goes to the one pixel that won the max; every other
    pixel of the window gets nothing from it. When several pixels tie for the
    max, the first in row-major order wins (as np.argmax would pick), so the
    gradient is not counted twice.
    """
    if not isinstance(cache, MaxPoolCache):
        raise TypeError("cache must be the cache returned by maxpool2d_forward")
    x, out, size, s = cache
    H_out, W_out = out.shape[2:]
    dout = _check_dout(dout, out.shape, x.dtype)

    dx = np.zeros_like(x)
    unclaimed = np.ones(out.shape, dtype=bool)  # windows whose winner is still to be found
    for p in range(size):
        for q in range(size):
            window = _window_slice(p, q, s, H_out, W_out)
            # Comparing with the cached maxima finds the winners with cheap
            # elementwise operations; np.argmax over a short axis of 4 to 25
            # entries is slower than all of this (benchmarks/bench_choices.py).
            wins = x[window] == out
            wins &= unclaimed
            unclaimed ^= wins  # the winners are unclaimed: this clears exactly them
            if s < size:  # overlapping windows share pixels: add up their gradients
                dx[window] += wins * dout
            else:  # each pixel lies in one window at most: write it, in one pass
                np.multiply(wins, dout, out=dx[window])
    return dx
