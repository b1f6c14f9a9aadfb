"""Batch normalization of fully connected activations: forward, two backward passes, folding.

Shapes: ``x`` is (N, D), a batch of N samples with D features. Each feature is
normalized with statistics taken over the batch (axis 0):

    mean    = 1/N * sum_i x_i                      (D,)
    var     = 1/N * sum_i (x_i - mean)**2          (D,)  biased, as in the paper
    x_hat_i = (x_i - mean) / sqrt(var + eps)       (N, D)
    out_i   = gamma * x_hat_i + beta               (N, D)

In test mode ``mean`` and ``var`` are the running statistics kept in
``bn_param``, so BN becomes a fixed affine map of each sample on its own.

Two backward passes share one cache:

* ``batchnorm_backward`` walks the computational graph node by node (the
  derivation notebook draws the same graph);
* ``batchnorm_backward_fast`` evaluates the closed form
  ``dx = gamma / (N * sqrt(var + eps)) * (N * dout - dbeta - x_hat * dgamma)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._checks import (
    NonFiniteError,
    check_finite,
    check_float_array,
    check_fraction,
    check_mode,
    check_positive,
    check_vector,
    listed,
)
from .conventions import Convention, get_convention, initial_running_stats

BN_PARAM_KEYS = frozenset(
    ("mode", "eps", "momentum", "running_mean", "running_var", "convention", "num_batches_tracked")
)


class BatchNormCache(NamedTuple):
    """What the forward pass keeps for the backward pass.

    mode:    'train' or 'test' (in test mode mean and std are constants).
    x:       (N, D) the input, kept by reference, not copied.
    mean:    (D,) the mean that was subtracted (batch or running).
    std:     (D,) sqrt(var + eps).
    inv_std: (D,) 1 / std.
    x_hat:   (N, D) the normalized input.
    gamma:   (D,) the scale that was applied.
    """

    mode: str
    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    inv_std: np.ndarray
    x_hat: np.ndarray
    gamma: np.ndarray


class _Settings(NamedTuple):
    mode: str
    convention: Convention
    eps: float
    momentum: float | None
    running_mean: np.ndarray
    running_var: np.ndarray
    num_batches_tracked: int


def batch_sum(a):
    """Sum over the batch axis of an (N, D) array: a (D,) vector.

    Written as the matrix-vector product ones(N) @ a, which BLAS runs several
    times faster than a.sum(axis=0); most of all for the tall, narrow matrices
    of spatial BN (N*H*W rows, C columns).
    """
    return np.ones(a.shape[0], dtype=a.dtype) @ a


def read_bn_param(bn_param, D: int, dtype) -> _Settings:
    """Validate ``bn_param`` for D features and return the effective settings.

    Explicit keys win over the convention preset's defaults. Missing running
    statistics are created here but NOT written back: the caller stores them
    only once the whole forward pass has succeeded.
    """
    if not isinstance(bn_param, dict):
        raise TypeError(f"bn_param must be a dict, got {type(bn_param).__name__}")
    unknown = bn_param.keys() - BN_PARAM_KEYS
    if unknown:
        raise ValueError(f"bn_param has unknown keys {listed(unknown)}; allowed keys are {listed(BN_PARAM_KEYS)}")
    if "mode" not in bn_param:
        raise ValueError("bn_param['mode'] is required: 'train' or 'test'")
    mode = check_mode(bn_param["mode"])
    convention = get_convention(bn_param.get("convention", "house"))
    eps = check_positive("bn_param['eps']", bn_param.get("eps", convention.eps))
    momentum = bn_param.get("momentum", convention.momentum)
    if momentum is None:
        if convention.name != "pytorch":
            raise ValueError("bn_param['momentum'] may be None (cumulative average) only with convention 'pytorch'")
    else:
        momentum = check_fraction("bn_param['momentum']", momentum)
    if "running_mean" in bn_param and "running_var" in bn_param:
        running_mean = check_vector("bn_param['running_mean']", bn_param["running_mean"], D)
        running_var = check_vector("bn_param['running_var']", bn_param["running_var"], D)
    elif "running_mean" in bn_param or "running_var" in bn_param:
        raise ValueError("bn_param must hold both 'running_mean' and 'running_var', or neither (to start fresh)")
    else:
        running_mean, running_var = initial_running_stats(convention, D, dtype)
    tracked = bn_param.get("num_batches_tracked", 0)
    if isinstance(tracked, bool) or not isinstance(tracked, (int, np.integer)) or tracked < 0:
        raise ValueError(f"bn_param['num_batches_tracked'] must be a non-negative integer, got {tracked!r}")
    return _Settings(mode, convention, eps, momentum, running_mean, running_var, int(tracked))


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalization forward pass.

    x:        (N, D) float32 or float64.
    gamma:    (D,) scale.   beta: (D,) shift.
    bn_param: dict with
        'mode'        'train' (batch statistics) or 'test' (running statistics), required;
        'convention'  'house' (default), 'pytorch', 'keras', 'tf1_layers', 'tf1' or 'cs231n':
                      sets the defaults and update rule below (see bnhelpers.conventions);
        'eps'         added to the variance, default from the convention (house 1e-5);
        'momentum'    running-average momentum in the convention's meaning
                      (house: weight kept on the OLD value, default 0.9);
        'running_mean', 'running_var'  (D,) arrays, created on first use and
                      replaced by updated arrays after each training batch;
        'num_batches_tracked'  training batches seen so far.

    Returns (out, cache): out is (N, D) in the dtype of x.
    NaN or infinity in x, gamma, beta or the running statistics raises a
    ValueError naming it (in test mode also a negative running_var).
    On any error nothing in bn_param is changed.
    """
    x = check_float_array("x", x, ndim=2)
    N, D = x.shape
    check_vector("gamma", gamma, D)
    check_vector("beta", beta, D)
    s = read_bn_param(bn_param, D, x.dtype)
    train = s.mode == "train"
    if train and N < 2:
        raise ValueError(f"expected more than 1 value per feature when training, got x of shape {x.shape}")
    if not train:
        _check_test_values(x, gamma, beta, s)
    # Parameters follow the data's dtype so that float32 in gives float32 out.
    gamma = gamma.astype(x.dtype, copy=False)
    beta = beta.astype(x.dtype, copy=False)

    if train:
        mean = batch_sum(x) / N
        # Before x - mean, where NaN or inf in x would warn; the mean is finite iff x is.
        _check_finite_pair("x", mean, "gamma", gamma)
        _check_finite_pair("bn_param['running_mean']", s.running_mean, "bn_param['running_var']", s.running_var)
    else:
        mean = s.running_mean.astype(x.dtype, copy=False)
    xc = x - mean
    if train:
        var = np.einsum("nd,nd->d", xc, xc) / N
        if not math.isfinite(np.vdot(var, beta)):  # var and beta with one product, as in _check_finite_pair
            if not np.isfinite(var).all():
                raise NonFiniteError(f"x has values too large to square in {x.dtype}")
            check_finite("beta", beta)
    else:
        var = s.running_var.astype(x.dtype, copy=False)
    std = np.sqrt(var + s.eps)
    inv_std = 1.0 / std
    x_hat = np.multiply(xc, inv_std, out=xc)  # in place: one (N, D) buffer instead of two
    out = x_hat * gamma
    out += beta

    if train:
        tracked = s.num_batches_tracked + 1
        bn_param["running_mean"], bn_param["running_var"] = s.convention.update(
            s.running_mean, s.running_var, mean, var, N, s.momentum, tracked
        )
        bn_param["num_batches_tracked"] = tracked
    return out, BatchNormCache(s.mode, x, mean, std, inv_std, x_hat, gamma)


def check_running_stats(running_mean, running_var, mean_name="running_mean", var_name="running_var") -> None:
    """Running statistics must be finite, and the variance non-negative (sqrt(var + eps) needs it)."""
    check_finite(mean_name, running_mean)
    check_finite(var_name, running_var)
    if (running_var < 0).any():
        raise ValueError(f"{var_name} must be non-negative (it is a variance), got minimum {running_var.min()}")


def _check_test_values(x, gamma, beta, s: _Settings) -> None:
    check_finite("x", x)
    check_finite("gamma", gamma)
    check_finite("beta", beta)
    check_running_stats(s.running_mean, s.running_var, "bn_param['running_mean']", "bn_param['running_var']")


def _check_finite_pair(name_a, a, name_b, b) -> None:
    """Raise NonFiniteError naming a or b if either (D,) vector holds NaN or infinity.

    The fast test is one dot product, which is NaN or infinite as soon as
    either vector is: two vectors for less than the cost of one isfinite
    scan. Only if it fails (or its products merely overflowed, which takes
    values beyond about 1e19 in float32) are the vectors scanned. np.vdot,
    unlike @, does not warn about the NaN or overflow it runs into. The
    running variance's sign matters only in test mode, where it is checked.
    """
    if not math.isfinite(np.vdot(a, b)):
        check_finite(name_a, a)
        check_finite(name_b, b)


def _check_backward_args(dout, cache) -> np.ndarray:
    if not isinstance(cache, BatchNormCache):
        raise TypeError("cache must be the cache returned by batchnorm_forward")
    dout = check_float_array("dout", dout, ndim=2)
    if dout.shape != cache.x_hat.shape:
        raise ValueError(f"dout must have the shape of the forward output {cache.x_hat.shape}, got {dout.shape}")
    return dout


def _test_mode_backward(dout, cache):
    """In test mode mean and std are constants: BN is the affine map x -> x * gamma/std + const."""
    dbeta = batch_sum(dout)
    dgamma = np.einsum("nd,nd->d", dout, cache.x_hat)
    dx = dout * (cache.gamma * cache.inv_std)
    return dx, dgamma, dbeta


def batchnorm_backward(dout, cache):
    """Backward pass, one node of the computational graph at a time.

    dout: (N, D) upstream gradient dL/dout.   cache: from batchnorm_forward.
    Returns dx (N, D), dgamma (D,), dbeta (D,).

    The forward graph, in forward order (the backward pass visits it from the
    last line to the first):

        mean = mean_i(x)          centre: xc = x - mean     square: sq = xc**2
        var = mean_i(sq)          var_eps = var + eps       std = sqrt(var_eps)
        inv_std = 1 / std         x_hat = xc * inv_std      scaled = gamma * x_hat
        out = scaled + beta

    Each step multiplies the incoming gradient by the node's local gradient.
    Where a value fed two nodes (xc feeds square and multiply; x feeds mean
    and centre) the gradients from both paths are added. Where a (D,) value
    was broadcast over the N rows, its gradient is summed over the rows.
    """
    dout = _check_backward_args(dout, cache)
    if cache.mode == "test":
        return _test_mode_backward(dout, cache)
    N = dout.shape[0]
    # The centre node's value, recomputed from the input instead of cached:
    # the fast path never needs it, so the forward pass does not keep it.
    xc = cache.x - cache.mean

    # shift: out = scaled + beta.  Local gradients 1 and 1; beta was broadcast.
    dbeta = dout.sum(axis=0)
    dscaled = dout
    # scale: scaled = gamma * x_hat.  d/dgamma = x_hat, d/dx_hat = gamma.
    dgamma = np.sum(dscaled * cache.x_hat, axis=0)
    dx_hat = dscaled * cache.gamma
    # multiply: x_hat = xc * inv_std.  d/dxc = inv_std, d/dinv_std = xc (summed over rows).
    dxc = dx_hat * cache.inv_std  # first path into xc
    dinv_std = np.sum(dx_hat * xc, axis=0)
    # reciprocal: inv_std = 1 / std.  d/dstd = -1 / std**2.
    dstd = -dinv_std / cache.std**2
    # sqrt: std = sqrt(var_eps).  d/dvar_eps = 1 / (2 sqrt(var_eps)) = 1 / (2 std).
    dvar_eps = dstd / (2.0 * cache.std)
    # +eps: var_eps = var + eps.  Local gradient 1.
    dvar = dvar_eps
    # variance: var = 1/N sum_i sq_i.  Every sq_i gets dvar / N.
    dsq = np.broadcast_to(dvar / N, dout.shape)
    # square: sq = xc**2.  d/dxc = 2 xc.  Second path into xc: add.
    dxc = dxc + 2.0 * xc * dsq
    # centre: xc = x - mean.  d/dx = 1 (first path into x), d/dmean = -1 summed over rows.
    dmean = -np.sum(dxc, axis=0)
    # mean: mean = 1/N sum_i x_i.  Every x_i gets dmean / N.  Second path into x: add.
    dx = dxc + dmean / N
    return dx, dgamma, dbeta


def batchnorm_backward_fast(dout, cache):
    """Closed-form backward pass; same cache and results as batchnorm_backward.

    dout: (N, D).  Returns dx (N, D), dgamma (D,), dbeta (D,):

        dbeta  = sum_i dout_i
        dgamma = sum_i dout_i * x_hat_i
        dx_i   = gamma * inv_std / N * (N * dout_i - dbeta - x_hat_i * dgamma)

    The two (D,) sums the parameter gradients need are exactly the two batch
    sums that the mean and variance nodes feed back into dx.
    """
    dout = _check_backward_args(dout, cache)
    if cache.mode == "test":
        return _test_mode_backward(dout, cache)
    N = dout.shape[0]
    dbeta = batch_sum(dout)
    dgamma = np.einsum("nd,nd->d", dout, cache.x_hat)
    # Evaluated as gamma*inv_std * (dout - (x_hat*dgamma + dbeta)/N) in one
    # (N, D) buffer: each extra temporary of that size costs as much as the math.
    dx = cache.x_hat * (dgamma / N)
    dx += dbeta / N
    np.subtract(dout, dx, out=dx)
    dx *= cache.gamma * cache.inv_std
    return dx, dgamma, dbeta


def batchnorm_fold(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    """Fold test-mode BN into the affine layer before it.

    The layer computes y = x @ W + b with W (D_in, D_out) and b (D_out,) or
    None (a Linear followed by BN usually has no bias). BN in test mode is
    (y - running_mean) * s + beta with s = gamma / sqrt(running_var + eps), so

        BN(x @ W + b) = x @ (W * s) + ((b - running_mean) * s + beta).

    Returns (W_folded (D_in, D_out), b_folded (D_out,)); inputs are not modified.
    """
    W = check_float_array("W", W, ndim=2)
    D = W.shape[1]
    if b is not None:
        check_vector("b", b, D, what="output feature")
    for name, v in (
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        check_vector(name, v, D, what="output feature of W")
    for name, v in (("W", W), ("b", b), ("gamma", gamma), ("beta", beta)):
        if v is not None:
            check_finite(name, v)
    check_running_stats(running_mean, running_var)
    eps = check_positive("eps", eps)
    scale = gamma / np.sqrt(running_var + eps)
    bias = np.zeros(D, dtype=W.dtype) if b is None else b
    W_folded = (W * scale).astype(W.dtype, copy=False)
    b_folded = ((bias - running_mean) * scale + beta).astype(W.dtype, copy=False)
    return W_folded, b_folded
