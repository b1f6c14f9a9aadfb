"""Per-sample normalizations: LayerNorm and GroupNorm.

Batch normalization takes statistics over the batch, so a sample's output
depends on the other samples and inference needs running statistics. These two
take statistics within each sample instead, and compute the same thing in
training and at test time:

* LayerNorm (Ba, Kiros & Hinton 2016): x (N, D), statistics over the D features
  of each sample;
* GroupNorm (Wu & He 2018): x (N, C, H, W), channels split into G groups of
  C/G channels, statistics over each group's channels and positions. G = 1
  normalizes the whole sample like LayerNorm; G = C is InstanceNorm.

gamma and beta stay per feature (LayerNorm) or per channel (GroupNorm).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from ._checks import check_finite, check_float_array, check_positive, check_vector, listed


class NormCache(NamedTuple):
    """The forward function that made it, x_hat (shape of x), inv_std (one per normalized group,
    broadcastable), gamma, and the group shape."""

    forward: str
    x_hat: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    groups_shape: tuple


def _read_eps(name: str, param) -> float:
    if not isinstance(param, dict):
        raise TypeError(f"{name} must be a dict, got {type(param).__name__}")
    unknown = set(param) - {"eps"}
    if unknown:
        raise ValueError(f"{name} has unknown keys {listed(unknown)}; the only key is 'eps'")
    return check_positive(f"{name}['eps']", param.get("eps", 1e-5))


def standardize(x, axis, eps):
    """x_hat = (x - mean) / sqrt(var + eps), statistics over ``axis`` (kept for broadcasting).

    Returns (x_hat, inv_std) with inv_std shaped like the reduced mean.
    """
    x_hat = x - x.mean(axis=axis, keepdims=True)
    var = np.mean(np.square(x_hat), axis=axis, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat *= inv_std
    return x_hat, inv_std


def standardize_backward(dx_hat, x_hat, inv_std, axis):
    """Gradient through ``standardize``: the batchnorm_backward_fast algebra along ``axis``.

    dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)), means over ``axis``.
    """
    mean_dx_hat = dx_hat.mean(axis=axis, keepdims=True)
    mean_dx_hat_x_hat = np.mean(dx_hat * x_hat, axis=axis, keepdims=True)
    return inv_std * (dx_hat - mean_dx_hat - x_hat * mean_dx_hat_x_hat)


def layernorm_forward(x, gamma, beta, ln_param):
    """LayerNorm forward.  x: (N, D); gamma, beta: (D,); ln_param: {'eps': 1e-5}.

    out = gamma * (x - mean_d x) / sqrt(var_d x + eps) + beta, statistics per sample (axis 1).
    Returns (out (N, D), cache).
    """
    x = check_float_array("x", x, ndim=2)
    D = x.shape[1]
    check_vector("gamma", gamma, D)
    check_vector("beta", beta, D)
    eps = _read_eps("ln_param", ln_param)
    check_finite("x", x)
    gamma, beta = gamma.astype(x.dtype, copy=False), beta.astype(x.dtype, copy=False)
    x_hat, inv_std = standardize(x, axis=1, eps=eps)
    return x_hat * gamma + beta, NormCache("layernorm_forward", x_hat, inv_std, gamma, x.shape)


def layernorm_backward(dout, cache):
    """LayerNorm backward.  dout: (N, D).  Returns dx (N, D), dgamma (D,), dbeta (D,)."""
    dout = _check_dout(dout, cache, "layernorm_forward")
    dgamma = np.sum(dout * cache.x_hat, axis=0)
    dbeta = dout.sum(axis=0)
    dx = standardize_backward(dout * cache.gamma, cache.x_hat, cache.inv_std, axis=1)
    return dx, dgamma, dbeta


def groupnorm_forward(x, gamma, beta, G, gn_param):
    """GroupNorm forward.  x: (N, C, H, W); gamma, beta: (C,); G groups (G divides C); gn_param: {'eps': 1e-5}.

    Each sample's channels are split into G consecutive groups; each group is
    standardized over its C/G channels and H*W positions, then scaled and
    shifted per channel.  Returns (out (N, C, H, W), cache).
    """
    x = check_float_array("x", x, ndim=4)
    N, C, H, W = x.shape
    if isinstance(G, bool) or not isinstance(G, numbers.Integral) or G < 1:
        raise ValueError(f"G (number of groups) must be a positive integer, got {G!r}")
    if C % G:
        raise ValueError(f"G (number of groups) must divide the number of channels C={C}, got G={G}")
    check_vector("gamma", gamma, C, what="channel")
    check_vector("beta", beta, C, what="channel")
    eps = _read_eps("gn_param", gn_param)
    check_finite("x", x)
    gamma, beta = gamma.astype(x.dtype, copy=False), beta.astype(x.dtype, copy=False)
    groups_shape = (N, int(G), -1)
    x_hat, inv_std = standardize(x.reshape(groups_shape), axis=2, eps=eps)
    x_hat = x_hat.reshape(x.shape)
    out = x_hat * gamma[:, None, None] + beta[:, None, None]
    return out, NormCache("groupnorm_forward", x_hat, inv_std, gamma, groups_shape)


def groupnorm_backward(dout, cache):
    """GroupNorm backward.  dout: (N, C, H, W).  Returns dx, dgamma (C,), dbeta (C,)."""
    dout = _check_dout(dout, cache, "groupnorm_forward")
    dgamma = np.sum(dout * cache.x_hat, axis=(0, 2, 3))
    dbeta = dout.sum(axis=(0, 2, 3))
    dx_hat = (dout * cache.gamma[:, None, None]).reshape(cache.groups_shape)
    dx = standardize_backward(dx_hat, cache.x_hat.reshape(cache.groups_shape), cache.inv_std, axis=2)
    return dx.reshape(dout.shape), dgamma, dbeta


def _check_dout(dout, cache, forward_name):
    # Both caches are NormCaches; the other one's arrays would fail deep inside the math.
    if not isinstance(cache, NormCache) or cache.forward != forward_name:
        made_by = f", got one from {cache.forward}" if isinstance(cache, NormCache) else ""
        raise TypeError(f"cache must be the cache returned by {forward_name}{made_by}")
    dout = check_float_array("dout", dout)
    if dout.shape != cache.x_hat.shape:
        raise ValueError(f"dout must have the shape of the forward output {cache.x_hat.shape}, got {dout.shape}")
    return dout
