"""Batch normalization of fully connected activations: forward, two backward passes, folding.

Shapes: ``x`` is (N, D), a batch of N samples with D features. Each feature is
normalized with statistics taken over the batch (axis 0):

    mean    = 1/N * sum_i x_i                      (D,)
    xc_i    = x_i - mean                           (N, D)  the centred batch
    var     = 1/N * sum_i xc_i**2                  (D,)  biased, as in the paper
    x_hat_i = xc_i / sqrt(var + eps)               (N, D)
    out_i   = gamma * x_hat_i + beta               (N, D)

In test mode ``mean`` and ``var`` are the running statistics kept in
``bn_param``, so BN becomes a fixed affine map of each sample on its own.
Each training batch moves the running statistics towards the batch's
(``Convention.update``, in the framework's convention).

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
    check_count,
    check_finite,
    check_float_array,
    check_fraction,
    check_mode,
    check_norm_backward,
    check_norm_inputs,
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

    mode:  'train' or 'test' (in test mode mean and var are constants).
    x:     (N, D) the input, kept by reference, not copied.
    x_hat: (N, D) the normalized input.
    mean:  (D,) the mean that was subtracted (batch or running).
    var:   (D,) the variance it was divided by (batch or running), before eps.
    std:   (D,) sqrt(var + eps).
    gamma: (D,) the scale that was applied.
    """

    mode: str
    x: np.ndarray
    x_hat: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    std: np.ndarray
    gamma: np.ndarray


class BNSettings(NamedTuple):
    """``bn_param`` read and checked: explicit keys, else the convention's defaults.

    The running statistics are in the dtype of x, for the arithmetic;
    ``stats_dtype`` is the dtype they are stored back in (the dtype of the
    arrays passed in, as PyTorch's buffers keep theirs; else that of x).
    ``batches_seen`` counts the training batches before this one (bn_param['num_batches_tracked']).
    """

    mode: str
    convention: Convention
    eps: float
    momentum: float | None
    running_mean: np.ndarray
    running_var: np.ndarray
    batches_seen: int
    stats_dtype: np.dtype


def read_bn_param(bn_param, D, dtype):
    """Validate ``bn_param`` for D features and return its BNSettings.

    Missing running statistics are created here but NOT written back: the
    caller stores them only once the whole forward pass has succeeded.
    """
    if not isinstance(bn_param, dict):
        raise TypeError(f"bn_param must be a dict, got {type(bn_param).__name__}")
    unknown = bn_param.keys() - BN_PARAM_KEYS
    if unknown:
        raise ValueError(f"bn_param has unknown keys {listed(unknown)}; allowed keys are {listed(BN_PARAM_KEYS)}")
    if "mode" not in bn_param:
        raise ValueError("bn_param['mode'] is required: 'train' or 'test'")
    mode = check_mode(bn_param["mode"])
    convention = get_convention(bn_param.get("convention", "course"))
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
    batches_seen = check_count("bn_param['num_batches_tracked']", bn_param.get("num_batches_tracked", 0), minimum=0)
    stats_dtype = np.result_type(running_mean, running_var)
    running_mean = running_mean.astype(dtype, copy=False)
    running_var = running_var.astype(dtype, copy=False)
    return BNSettings(mode, convention, eps, momentum, running_mean, running_var, batches_seen, stats_dtype)


def check_running_stats(running_mean, running_var, mean_name="running_mean", var_name="running_var"):
    """Running statistics must be finite, and the variance non-negative (sqrt(var + eps) needs it)."""
    check_finite(mean_name, running_mean)
    check_finite(var_name, running_var)
    if (running_var < 0).any():
        raise ValueError(f"{var_name} must be non-negative (it is a variance), got minimum {running_var.min()}")


def batchnorm_inputs(x, gamma, beta, bn_param):
    """Every check batchnorm_forward makes, in one call: returns (x, gamma, beta, BNSettings).

    gamma and beta come back in the dtype of x, so that float32 in gives float32 out.
    """
    x, gamma, beta = check_norm_inputs(x, gamma, beta, ndim=2, axis=1, over=0)
    settings = read_bn_param(bn_param, x.shape[1], x.dtype)
    if settings.mode == "train" and x.shape[0] < 2:
        raise ValueError(f"expected more than 1 value per feature when training, got x of shape {x.shape}")
    # Why a dot product: it is finite only if both vectors are (NaN and infinity propagate), and it
    # is one pass where the checks are four scans; they run only to name the culprit (or to find a
    # harmless overflow). Training needs finite statistics only; test mode checks them all.
    if settings.mode == "test" or not math.isfinite(np.vdot(settings.running_mean, settings.running_var)):
        check_running_stats(
            settings.running_mean, settings.running_var, "bn_param['running_mean']", "bn_param['running_var']"
        )
    return x, gamma, beta, settings


def update_running_stats(bn_param, settings, mean, var, n):
    """Write one training batch's update into bn_param, for the BN variants built on BN's bookkeeping.

    mean, var: (D,) the batch's statistics over n values per feature. The
    running statistics move in settings' convention and keep their dtype;
    the batch is counted. (batchnorm_forward writes the same, step by step.)
    """
    running_mean, running_var = settings.convention.update(
        settings.running_mean, settings.running_var, mean, var, n, settings.momentum, settings.batches_seen + 1
    )
    bn_param["running_mean"] = running_mean.astype(settings.stats_dtype, copy=False)
    bn_param["running_var"] = running_var.astype(settings.stats_dtype, copy=False)
    bn_param["num_batches_tracked"] = settings.batches_seen + 1


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalization forward pass.

    x:        (N, D) float32 or float64.
    gamma:    (D,) scale.   beta: (D,) shift.
    bn_param: dict with
        'mode'        'train' (batch statistics) or 'test' (running statistics), required;
        'convention'  'course' (default), 'pytorch', 'keras', 'tf1_layers', 'tf1' or 'cs231n':
                      sets the defaults and update rule below (see bnhelpers.conventions);
        'eps'         added to the variance, default from the convention (course 1e-5);
        'momentum'    running-average momentum in the convention's meaning
                      (course: weight kept on the OLD value, default 0.9);
        'running_mean', 'running_var'  (D,) arrays, created on first use and
                      replaced by updated arrays after each training batch;
        'num_batches_tracked'  training batches seen so far.

    Returns (out, cache), out (N, D) in the dtype of x:

        train:  mean = mean_i x_i,  var = mean_i (x_i - mean)**2
        test:   mean = running_mean,  var = running_var
        x_hat = (x - mean) / sqrt(var + eps),   out = gamma * x_hat + beta

    In training mode the running statistics move towards this batch's, in
    bn_param's convention, and are stored back into bn_param:

        bn_param['running_mean'], bn_param['running_var'] = settings.convention.update(
            settings.running_mean, settings.running_var, mean, var, N, settings.momentum, settings.batches_seen + 1)

    (batches_seen + 1: this batch counts). Test mode changes nothing in bn_param.
    ``settings``, the checked bn_param (BNSettings), holds mode, convention, eps, momentum,
    running_mean, running_var and batches_seen (training batches before this one).

    Bad arguments (wrong shapes or dtypes, NaN or infinity, a negative running
    variance in test mode) raise an error naming them, and leave bn_param unchanged.
    """
    x, gamma, beta, settings = batchnorm_inputs(x, gamma, beta, bn_param)
    ### BEGIN SOLUTION
    if settings.mode == "train":
        N = len(x)
        mean = x.sum(axis=0) / N
        xc = x - mean
        var = (xc**2).sum(axis=0) / N
        bn_param["running_mean"], bn_param["running_var"] = settings.convention.update(
            settings.running_mean, settings.running_var, mean, var, N, settings.momentum, settings.batches_seen + 1
        )
    else:
        mean, var = settings.running_mean, settings.running_var
        xc = x - mean
    std = np.sqrt(var + settings.eps)
    x_hat = xc / std
    out = gamma * x_hat + beta
    ### END SOLUTION
    if settings.mode == "train":
        for key in ("running_mean", "running_var"):  # the buffers keep their own dtype
            if key in bn_param:
                bn_param[key] = bn_param[key].astype(settings.stats_dtype, copy=False)
        bn_param["num_batches_tracked"] = settings.batches_seen + 1
    return out, BatchNormCache(settings.mode, x, x_hat, mean, var, std, gamma)


def _test_mode_backward(dout, cache):
    """In test mode mean and std were constants: BN is the affine map x -> gamma * (x - mean) / std + beta."""
    return dout * (cache.gamma / cache.std), (dout * cache.x_hat).sum(axis=0), dout.sum(axis=0)


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
    dout = check_norm_backward(dout, cache, BatchNormCache, "batchnorm_forward")
    if cache.mode == "test":
        return _test_mode_backward(dout, cache)
    ### BEGIN SOLUTION
    N = len(dout)
    # The forward values of the nodes, from the cache.
    xc = cache.x - cache.mean
    inv_std = 1 / cache.std

    # shift: out = scaled + beta.  Local gradients 1 and 1; beta was broadcast.
    dbeta = dout.sum(axis=0)
    dscaled = dout
    # scale: scaled = gamma * x_hat.  d/dgamma = x_hat, d/dx_hat = gamma.
    dgamma = (dscaled * cache.x_hat).sum(axis=0)
    dx_hat = dscaled * cache.gamma
    # multiply: x_hat = xc * inv_std.  d/dxc = inv_std, d/dinv_std = xc (summed over rows).
    dxc = dx_hat * inv_std  # first path into xc
    dinv_std = (dx_hat * xc).sum(axis=0)
    # reciprocal: inv_std = 1 / std.  d/dstd = -1 / std**2.
    dstd = -dinv_std / cache.std**2
    # sqrt: std = sqrt(var_eps).  d/dvar_eps = 1 / (2 sqrt(var_eps)) = 1 / (2 std).
    dvar_eps = dstd / (2 * cache.std)
    # +eps: var_eps = var + eps.  Local gradient 1.
    dvar = dvar_eps
    # variance: var = 1/N sum_i sq_i.  Every sq_i gets dvar / N.
    dsq = np.ones_like(dout) * dvar / N
    # square: sq = xc**2.  d/dxc = 2 xc.  Second path into xc: add.
    dxc = dxc + 2 * xc * dsq
    # centre: xc = x - mean.  d/dx = 1 (first path into x), d/dmean = -1 summed over rows.
    dmean = -dxc.sum(axis=0)
    # mean: mean = 1/N sum_i x_i.  Every x_i gets dmean / N.  Second path into x: add.
    dx = dxc + dmean / N
    ### END SOLUTION
    return dx, dgamma, dbeta


def batchnorm_backward_fast(dout, cache):
    """Closed-form backward pass; same cache and results as batchnorm_backward.

    dout: (N, D).  Returns dx (N, D), dgamma (D,), dbeta (D,):

        dbeta  = sum_i dout_i
        dgamma = sum_i dout_i * x_hat_i
        dx_i   = gamma / (N * std) * (N * dout_i - dbeta - x_hat_i * dgamma)

    The two (D,) sums the parameter gradients need are exactly the two batch
    sums that the mean and variance nodes feed back into dx.
    """
    dout = check_norm_backward(dout, cache, BatchNormCache, "batchnorm_forward")
    if cache.mode == "test":
        return _test_mode_backward(dout, cache)
    ### BEGIN SOLUTION
    N = len(dout)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache.x_hat).sum(axis=0)
    dx = cache.gamma / (N * cache.std) * (N * dout - dbeta - cache.x_hat * dgamma)
    ### END SOLUTION
    return dx, dgamma, dbeta


def batchnorm_fold_inputs(W, b, gamma, beta, running_mean, running_var, eps):
    """Every check batchnorm_fold makes, in one call: returns (W, b, eps) with b zeros if it was None."""
    W = check_float_array("W", W, ndim=2)
    D = W.shape[1]
    b = np.zeros(D, dtype=W.dtype) if b is None else check_vector("b", b, D, what="output feature")
    for name, v in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        check_vector(name, v, D, what="output feature of W")
    for name, v in (("W", W), ("b", b), ("gamma", gamma), ("beta", beta)):
        check_finite(name, v)
    check_running_stats(running_mean, running_var)
    return W, b, check_positive("eps", eps)


def batchnorm_fold(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    """Fold test-mode BN into the affine layer before it.

    The layer computes y = x @ W + b with W (D_in, D_out) and b (D_out,) or
    None (a Linear followed by BN usually has no bias). BN in test mode is
    (y - running_mean) * scale + beta with scale = gamma / sqrt(running_var + eps), so

        BN(x @ W + b) = x @ (W * scale) + ((b - running_mean) * scale + beta).

    Returns (W_folded (D_in, D_out), b_folded (D_out,)) in the dtype of W; inputs are not modified.
    """
    W, b, eps = batchnorm_fold_inputs(W, b, gamma, beta, running_mean, running_var, eps)
    ### BEGIN SOLUTION
    scale = gamma / np.sqrt(running_var + eps)
    W_folded = W * scale
    b_folded = (b - running_mean) * scale + beta
    ### END SOLUTION
    return W_folded.astype(W.dtype, copy=False), b_folded.astype(W.dtype, copy=False)
